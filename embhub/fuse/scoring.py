"""Turning one fold's fusion predictions into rows of the shared results table.

Rows of a cell line's test fold that no source covers get the protocol's fallback (the cell line's mean
training response for LFC, each gene's most frequent training class for DEG), so subset "all" scores every
test perturbation exactly like the kNN rows of ``embhub evaluate``; subset "common" scores only those every
fusion source covers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embhub.evaluate.baselines import most_frequent_class
from embhub.evaluate.metrics import deg_scores, lfc_metrics
from embhub.fuse.data import FusionData


def fallback_prediction(data: FusionData, train_rows: np.ndarray, task: str) -> np.ndarray:
    """LFC: mean training response ``(G,)``; DEG: per-gene most frequent training class ``(G,)`` (as ``evaluate``)."""
    if task == "lfc":
        return data.lfc[train_rows].mean(axis=0)
    return most_frequent_class(data.deg[train_rows])


def score_rows(
    data: FusionData,
    task: str,
    fold: int,
    test_rows: np.ndarray,
    predictions: np.ndarray,
    covered: np.ndarray,
    *,
    method: str,
    embedding: str,
    store_path: str,
    store_id: str,
    params: str,
    cell_line: str,
) -> list[dict[str, Any]]:
    """Results rows for one (cell line, fold): subsets "all" and "common", every metric of the task."""
    truth = data.lfc[test_rows] if task == "lfc" else data.deg[test_rows]
    common = data.present[data.row_pert[test_rows]].all(axis=1)
    scorer = lfc_metrics if task == "lfc" else deg_scores
    rows = []
    for subset, mask in (("all", np.ones(len(test_rows), bool)), ("common", common)):
        if not mask.any():
            continue
        for metric, value in scorer(truth[mask], predictions[mask]).items():
            rows.append({
                "dataset": data.dataset,
                "dataset_id": data.dataset_id,
                "cell_line": cell_line,
                "fold": fold,
                "method": method,
                "embedding": embedding,
                "store_path": store_path,
                "store_id": store_id,
                "estimator_params": params,
                "metric": metric,
                "value": value,
                "n_test": int(mask.sum()),
                "n_covered": int((covered & mask).sum()),
                "subset": subset,
            })
    return rows
