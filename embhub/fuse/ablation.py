"""Which sources the fusion model relies on: attention per source and leave-one-source-out retraining.

Attention: for every covered test perturbation, the CLS token's attention weights over the tokens (the last
encoder layer by default, or the mean over all layers), averaged over heads; a missing source has weight
exactly 0. Per (fold, cell line, token) the table gives the mean over all test perturbations
(``attention``, missing counted as 0: how much of the CLS's reading goes to this source) and the mean over
those that have the source (``attention_when_present``). Attention is a view of what the model reads, not a
causal attribution; leave-one-source-out answers the causal question: the fold's chosen configuration is
retrained without one source (no new search) and the change in test L2 is reported (positive: the model got
worse without the source).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from embhub.evaluate.metrics import lfc_metrics
from embhub.fuse.data import FusionData

CLS_TOKEN = "[CLS]"
CELL_LINE_TOKEN = "[cell line]"
ATTENTION_COLUMNS = ("fold", "cell_line", "token", "kind", "attention", "attention_when_present", "n_present", "n_test", "layers")
LEAVE_ONE_OUT_COLUMNS = ("fold", "cell_line", "removed", "L2", "L2_all_sources", "delta_L2", "n_test")


def token_names(data: FusionData, cell_line_mode: str) -> list[tuple[str, str]]:
    """(name, kind) of each token in model order."""
    tokens = [(CLS_TOKEN, "cls")] + [(name, "source") for name in data.source_names]
    return tokens + [(CELL_LINE_TOKEN, "cell_line")] if cell_line_mode == "token" else tokens


def attention_table(
    weights: np.ndarray, data: FusionData, rows: np.ndarray, fold: int, cell_line_mode: str, layers: str
) -> list[dict[str, Any]]:
    """Rows of the attention table from CLS weights ``(n_rows, T)`` of covered test ``rows``."""
    tokens = token_names(data, cell_line_mode)
    present = data.present[data.row_pert[rows]]
    out = []
    for line_index, line in enumerate(data.cell_lines):
        in_line = data.row_cell_line[rows] == line_index
        if not in_line.any():
            continue
        for t, (name, kind) in enumerate(tokens):
            values = weights[in_line, t]
            has = present[in_line, t - 1] if kind == "source" else np.ones(in_line.sum(), bool)
            out.append({
                "fold": fold,
                "cell_line": line,
                "token": name,
                "kind": kind,
                "attention": float(values.mean()),
                "attention_when_present": float(values[has].mean()) if has.any() else float("nan"),
                "n_present": int(has.sum()),
                "n_test": int(in_line.sum()),
                "layers": layers,
            })
    return out


def attention_summary(attention: pd.DataFrame) -> pd.DataFrame:
    """Per token: mean and standard deviation over (fold, cell line) of ``attention``, highest first."""
    if attention.empty:
        return pd.DataFrame(columns=["token", "kind", "attention", "attention_sd", "attention_when_present"])
    grouped = attention.groupby(["token", "kind"], sort=False)
    summary = grouped.agg(
        attention=("attention", "mean"),
        attention_sd=("attention", "std"),
        attention_when_present=("attention_when_present", "mean"),
    ).reset_index()
    return summary.sort_values("attention", ascending=False, ignore_index=True)


def leave_one_out_rows(
    data: FusionData,
    fold: int,
    full_l2: dict[str, float],
    predict_without: Callable[[FusionData], dict[str, tuple[np.ndarray, np.ndarray]]],
) -> list[dict[str, Any]]:
    """Retrain without each source in turn; ``predict_without(reduced)`` → per cell line (test rows, predictions).

    ``full_l2``: per cell line, the test L2 ("all" subset) of the model with every source.
    """
    out = []
    for name in data.source_names:
        reduced = data.without_source(name)
        if not reduced.source_info:
            continue
        for line, (test, predictions) in predict_without(reduced).items():
            l2 = lfc_metrics(data.lfc[test], predictions)["L2"]
            out.append({
                "fold": fold,
                "cell_line": line,
                "removed": name,
                "L2": l2,
                "L2_all_sources": full_l2[line],
                "delta_L2": l2 - full_l2[line],
                "n_test": len(test),
            })
    return out


def leave_one_out_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per removed source: mean ΔL2 over (fold, cell line) and its standard deviation, most needed first."""
    if table.empty:
        return pd.DataFrame(columns=["removed", "delta_L2", "delta_L2_sd"])
    summary = table.groupby("removed", sort=False).agg(delta_L2=("delta_L2", "mean"), delta_L2_sd=("delta_L2", "std"))
    return summary.reset_index().sort_values("delta_L2", ascending=False, ignore_index=True)
