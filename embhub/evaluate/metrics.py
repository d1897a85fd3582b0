"""The study's metrics (``pkg/task/regression_evaluate.py``, ``pkg/task/metrics.py``).

LFC, for responses ``y`` and predictions ``ŷ`` of shape ``(n_test, n_genes)`` with aligned rows:
L2 = mean over perturbations of ‖y_i − ŷ_i‖₂ (not divided by G; primary), MSE and MAE over all entries,
Pearson and Spearman = mean over perturbations of the correlation across genes (NaN when a prediction is
constant, as scipy's ``pearsonr`` gives, so the no-change baseline has NaN correlations as in the study).

DEG, for labels and predicted classes in {−1, 0, +1} of shape ``(n_test, n_genes)``: per gene, F1 (recall,
precision) per class with zero division → 0, averaged over the classes present in that gene's true labels;
then the mean over genes.
"""

from __future__ import annotations

import numpy as np

DEG_CLASSES = (-1, 0, 1)


def l2_per_row(y: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """‖y_i − ŷ_i‖₂ per row ``(n,)``."""
    diff = np.asarray(y, dtype=np.float64) - np.asarray(y_hat, dtype=np.float64)
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def _row_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
    numerator = np.einsum("ij,ij->i", a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = numerator / denominator
    r[denominator == 0] = np.nan
    return np.clip(r, -1.0, 1.0)


def _constant_rows(x: np.ndarray) -> np.ndarray:
    return (x == x[:, :1]).all(axis=1)


def row_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank) along each row, ``(n, G)`` float64.

    One unstable sort per row; rows holding ties are re-ranked by scipy's ``rankdata`` (exact averages).
    """
    x = np.asarray(x)
    if x.size == 0:
        return np.zeros(x.shape)
    order = np.argsort(x, axis=1)
    ordered = np.take_along_axis(x, order, axis=1)
    ranks = np.empty(x.shape)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(1.0, x.shape[1] + 1), x.shape), axis=1)
    tied = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    if tied.any():
        from scipy.stats import rankdata

        ranks[tied] = rankdata(x[tied], axis=1, method="average")
    return ranks


def lfc_metrics(
    y: np.ndarray, y_hat: np.ndarray, y_ranks: np.ndarray | None = None, y_hat_ranks: np.ndarray | None = None
) -> dict[str, float]:
    """L2, MSE, MAE, Pearson, Spearman of predictions ``(n, G)``; ``y_ranks`` / ``y_hat_ranks`` may pass
    precomputed :func:`row_ranks` of y and of the predictions."""
    y = np.asarray(y, dtype=np.float64)
    y_hat = np.asarray(y_hat, dtype=np.float64)
    if y.shape != y_hat.shape:
        raise ValueError(f"responses {y.shape} and predictions {y_hat.shape} differ in shape")
    if y.shape[0] == 0:
        return {"L2": np.nan, "MSE": np.nan, "MAE": np.nan, "Pearson": np.nan, "Spearman": np.nan}
    diff = y - y_hat
    constant = _constant_rows(y_hat) | _constant_rows(y)
    pearson = _row_correlation(y, y_hat)
    pearson[constant] = np.nan
    ranks_y = row_ranks(y) if y_ranks is None else y_ranks
    spearman = _row_correlation(ranks_y, row_ranks(y_hat) if y_hat_ranks is None else y_hat_ranks)
    spearman[constant] = np.nan
    return {
        "L2": float(np.sqrt(np.einsum("ij,ij->i", diff, diff)).mean()),
        "MSE": float(np.mean(diff * diff)),
        "MAE": float(np.mean(np.abs(diff))),
        "Pearson": float(np.mean(pearson)),
        "Spearman": float(np.mean(spearman)),
    }


def deg_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Macro F1, recall and precision over present classes per gene, averaged over genes.

    ``truth`` and ``predicted``: ``(n_test, n_genes)`` class labels in {−1, 0, +1}.
    """
    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise ValueError(f"labels {truth.shape} and predictions {predicted.shape} differ in shape")
    f1 = np.zeros(truth.shape[1])
    recall = np.zeros(truth.shape[1])
    precision = np.zeros(truth.shape[1])
    n_present = np.zeros(truth.shape[1])
    for label in DEG_CLASSES:
        is_true = truth == label
        is_pred = predicted == label
        tp = (is_true & is_pred).sum(axis=0).astype(np.float64)
        support = is_true.sum(axis=0).astype(np.float64)
        predicted_count = is_pred.sum(axis=0).astype(np.float64)
        present = support > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            f1_class = np.where(support + predicted_count > 0, 2 * tp / (support + predicted_count), 0.0)
            recall_class = np.where(support > 0, tp / support, 0.0)
            precision_class = np.where(predicted_count > 0, tp / predicted_count, 0.0)
        f1 += f1_class * present
        recall += recall_class * present
        precision += precision_class * present
        n_present += present
    return {
        "F1": float(np.mean(f1 / n_present)),
        "recall": float(np.mean(recall / n_present)),
        "precision": float(np.mean(precision / n_present)),
    }
