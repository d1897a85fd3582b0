"""Per cell line summaries of a results table: mean ± sd over folds, median, rank, coverage, fraction of gap closed.

The study's figures use the **median over the 5 folds** per cell line; ranks here follow that median
(lower L2, MSE, MAE first; higher first for correlations and the DEG metrics). Fraction of gap closed
(protocol §5.4), from medians over folds:

    (reference − model) / (reference − ceiling)

where the reference is the context mean for the response metrics and the most-frequent-class prior for the
DEG metrics (the study's "train mean"); the same ratio serves metrics where higher is better. It is given
only where the results hold a ceiling row of that metric, and left empty (``ceiling_not_better``) where the
ceiling does not beat the reference (sciPlex's two-plate noise floors): the ratio means nothing there.
Positive controls (idealized PCA, ceiling) are listed but not ranked. ``coverage`` is the fraction of the
test perturbations (summed over folds) that had the method's own prediction rather than the fallback.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from embhub.errors import InputError
from embhub.evaluate import results as R

UNRANKED = {R.IDEALIZED, R.CEILING, R.DEG_CEILING}
HEADLINE_METRICS = ("L2", "F1")
SUMMARY_COLUMNS = ["cell_line", "metric", "subset", "method", "embedding", "label", "n_folds", "mean", "sd", "median",
                   "rank", "gap_closed", "ceiling_not_better", "coverage", "n_test", "n_covered"]


def label_of(method: str, embedding: str) -> str:
    if method in ("baseline", "ceiling"):
        return embedding
    return f"{method}: {embedding}"


def reference_embedding(metric: str) -> str:
    """The baseline a metric's gap is measured from: the context mean, or the prior class for DEG metrics."""
    return R.MOST_FREQUENT if metric in R.DEG_METRICS else R.CONTEXT_MEAN


def headline_metrics(frame: pd.DataFrame) -> list[str]:
    """The metrics summarised by default: L2, and F1 when the results hold DEG rows."""
    present = set(frame["metric"])
    return [metric for metric in HEADLINE_METRICS if metric in present]


def resolve_metric(frame: pd.DataFrame, metric: str) -> str:
    """``metric`` spelled as the results spell it (any case); one-line error when unknown or absent."""
    known = {name.lower(): name for name in (*R.LFC_METRICS, *R.DEG_METRICS)}
    name = known.get(metric.lower())
    if name is None:
        raise InputError(f"unknown metric '{metric}'; choose one of {', '.join(known.values())}")
    present = [m for m in known.values() if m in set(frame["metric"])]
    if name not in present:
        hint = " (DEG metrics come from 'embhub evaluate --deg')" if name in R.DEG_METRICS else ""
        raise InputError(f"these results hold no {name} scores{hint}; choose one of {', '.join(present)}")
    return name


def check_subset(frame: pd.DataFrame, metric: str, subset: str) -> None:
    """One-line error for an unknown subset, or for a ``common`` subset that holds no test perturbation."""
    if subset not in R.SUBSETS:
        raise InputError(f"unknown subset '{subset}'; choose {' or '.join(R.SUBSETS)}")
    if not ((frame["metric"] == metric) & (frame["subset"] == subset)).any():
        raise InputError(f"the {subset} subset holds no {metric} scores: no test perturbation is covered by every "
                         f"compared store; use --subset all")


def summarise(frame: pd.DataFrame, metric: str = "L2", subset: str = "all") -> pd.DataFrame:
    """One row per (cell line, method, embedding) in :data:`SUMMARY_COLUMNS` order, best first per cell line."""
    rows = frame[(frame["metric"] == metric) & (frame["subset"] == subset)]
    if rows.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    grouped = rows.groupby(["cell_line", "method", "embedding"], sort=False)
    table = grouped["value"].agg(n_folds="count", mean="mean", sd="std", median="median").reset_index()
    counts = grouped[["n_test", "n_covered"]].sum().reset_index(drop=True)
    table[["n_test", "n_covered"]] = counts.values
    table["coverage"] = table["n_covered"] / table["n_test"].where(table["n_test"] > 0)
    table["label"] = [label_of(m, e) for m, e in zip(table["method"], table["embedding"])]
    table["metric"] = metric
    table["subset"] = subset
    lower_is_better = R.LOWER_IS_BETTER.get(metric, True)
    table["rank"] = np.nan
    table["gap_closed"] = np.nan
    table["ceiling_not_better"] = False
    for _, part in table.groupby("cell_line", sort=False):
        rankable = part[~part["embedding"].isin(UNRANKED) & (part["method"] != "ceiling")]
        ranks = rankable["median"].rank(ascending=lower_is_better, method="min")
        table.loc[ranks.index, "rank"] = ranks
        reference = part[(part["method"] == "baseline") & (part["embedding"] == reference_embedding(metric))]["median"]
        ceiling = part[part["method"] == "ceiling"]["median"]
        if not (len(reference) and len(ceiling)):
            continue
        reference, ceiling = float(reference.iloc[0]), float(ceiling.iloc[0])
        gap = reference - ceiling
        if (gap <= 0) if lower_is_better else (gap >= 0):
            table.loc[part.index, "ceiling_not_better"] = True
        else:
            table.loc[part.index, "gap_closed"] = (reference - part["median"]) / gap
    table = table.sort_values(["cell_line", "rank", "median"], ascending=[True, True, lower_is_better],
                              na_position="last", kind="stable")
    return table[SUMMARY_COLUMNS].reset_index(drop=True)


def summary_table(frame: pd.DataFrame, metrics: list[str], subsets: list[str]) -> pd.DataFrame:
    """:func:`summarise` for every metric × subset, stacked (the ``metric`` and ``subset`` columns tell them apart)."""
    parts = [summarise(frame, metric, subset) for metric in metrics for subset in subsets]
    parts = [part for part in parts if not part.empty]
    if not parts:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def rank_table(frame: pd.DataFrame, metric: str = "L2", subset: str = "all") -> pd.DataFrame:
    """Ranks ``(label × cell line)`` of the rankable methods, plus their mean rank across cell lines."""
    summary = summarise(frame, metric, subset)
    ranked = summary.dropna(subset=["rank"])
    if ranked.empty:
        return pd.DataFrame()
    wide = ranked.pivot_table(index="label", columns="cell_line", values="rank", aggfunc="first")
    wide["mean_rank"] = wide.mean(axis=1)
    return wide.sort_values("mean_rank")
