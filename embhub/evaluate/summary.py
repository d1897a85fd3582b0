"""Per cell line summaries of a results table: mean ± sd over folds, median, rank, fraction of gap closed.

The study's figures use the **median over the 5 folds** per cell line; ranks here follow that median
(lower L2 first; higher is better for correlations and F1). Fraction of gap closed (protocol §5.4):

    (median L2 of context mean − median L2 of model) / (median L2 of context mean − median L2 of ceiling)

given only where the dataset has an experimental-error ceiling. Positive controls (idealized PCA,
ceiling) are listed but not ranked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from embhub.evaluate import results as R

UNRANKED = {R.IDEALIZED, R.CEILING}


def label_of(method: str, embedding: str) -> str:
    if method in ("baseline", "ceiling"):
        return embedding
    return f"{method}: {embedding}"


def summarise(frame: pd.DataFrame, metric: str = "L2", subset: str = "all") -> pd.DataFrame:
    """One row per (cell line, method, embedding): n_folds, mean, sd, median, rank, gap_closed."""
    rows = frame[(frame["metric"] == metric) & (frame["subset"] == subset)]
    columns = ["cell_line", "method", "embedding", "label", "n_folds", "mean", "sd", "median", "rank", "gap_closed", "n_test", "n_covered"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    grouped = rows.groupby(["cell_line", "method", "embedding"], sort=False)
    table = grouped["value"].agg(n_folds="count", mean="mean", sd="std", median="median").reset_index()
    counts = grouped[["n_test", "n_covered"]].sum().reset_index(drop=True)
    table[["n_test", "n_covered"]] = counts.values
    table["label"] = [label_of(m, e) for m, e in zip(table["method"], table["embedding"])]
    ascending = R.LOWER_IS_BETTER.get(metric, True)
    table["rank"] = np.nan
    table["gap_closed"] = np.nan
    for cell_line, part in table.groupby("cell_line", sort=False):
        rankable = part[~part["embedding"].isin(UNRANKED)]
        ranks = rankable["median"].rank(ascending=ascending, method="min")
        table.loc[ranks.index, "rank"] = ranks
        if metric == "L2":
            reference = part[(part["method"] == "baseline") & (part["embedding"] == R.CONTEXT_MEAN)]["median"]
            ceiling = part[part["method"] == "ceiling"]["median"]
            if len(reference) and len(ceiling):
                gap = float(reference.iloc[0]) - float(ceiling.iloc[0])
                if gap != 0:
                    table.loc[part.index, "gap_closed"] = (float(reference.iloc[0]) - part["median"]) / gap
    table = table.sort_values(["cell_line", "rank", "median"], na_position="last", kind="stable")
    return table[columns].reset_index(drop=True)


def rank_table(frame: pd.DataFrame, metric: str = "L2", subset: str = "all") -> pd.DataFrame:
    """Ranks ``(label × cell line)`` of the rankable methods, plus their mean rank across cell lines."""
    summary = summarise(frame, metric, subset)
    ranked = summary.dropna(subset=["rank"])
    if ranked.empty:
        return pd.DataFrame()
    wide = ranked.pivot_table(index="label", columns="cell_line", values="rank", aggfunc="first")
    wide["mean_rank"] = wide.mean(axis=1)
    return wide.sort_values("mean_rank")
