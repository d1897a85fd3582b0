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

from dataclasses import dataclass

import numpy as np

DEG_CLASSES = (-1, 0, 1)


def l2_per_row(y: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """‖y_i − ŷ_i‖₂ per row ``(n,)``."""
    diff = np.asarray(y, dtype=np.float64) - np.asarray(y_hat, dtype=np.float64)
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


@dataclass
class Centred:
    """Rows of a response matrix centred on their means, the centred row ranks, and their norms: what the
    Pearson and Spearman correlations need of the true responses, computed once per fold for every store.
    ``constant`` marks rows with one value across genes (their correlations are NaN)."""

    values: np.ndarray
    values_norm: np.ndarray
    ranks: np.ndarray
    ranks_norm: np.ndarray
    constant: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray) -> "Centred":
        y = np.asarray(y, dtype=np.float64)
        values = y - y.mean(axis=1, keepdims=True)
        ranks = row_ranks(y)
        ranks -= (y.shape[1] + 1) / 2.0  # average ranks always sum to G(G+1)/2
        return cls(values, _row_norms(values), ranks, _row_norms(ranks), _constant_rows(y))

    @classmethod
    def concat(cls, parts: list["Centred"]) -> "Centred":
        fields = ("values", "values_norm", "ranks", "ranks_norm", "constant")
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))

    def rows(self, selection: slice | np.ndarray) -> "Centred":
        return Centred(self.values[selection], self.values_norm[selection], self.ranks[selection],
                       self.ranks_norm[selection], self.constant[selection])


@dataclass
class RowScores:
    """The LFC metrics of each test row, so that any subset of rows is scored by averaging, not recomputing."""

    l2: np.ndarray
    squared_error: np.ndarray
    """Sum over genes of the squared error, per row."""
    absolute_error: np.ndarray
    pearson: np.ndarray
    spearman: np.ndarray
    n_genes: int

    @classmethod
    def concat(cls, parts: list["RowScores"]) -> "RowScores":
        columns = ("l2", "squared_error", "absolute_error", "pearson", "spearman")
        return cls(*(np.concatenate([getattr(p, c) for p in parts]) for c in columns), parts[0].n_genes)

    def summary(self, mask: np.ndarray | None = None) -> dict[str, float]:
        """L2, MSE, MAE, Pearson, Spearman over the rows in ``mask`` (all rows by default)."""
        if mask is None:
            mask = np.ones(len(self.l2), bool)
        if not mask.any():
            return {"L2": np.nan, "MSE": np.nan, "MAE": np.nan, "Pearson": np.nan, "Spearman": np.nan}
        entries = int(mask.sum()) * self.n_genes
        return {
            "L2": float(self.l2[mask].mean()),
            "MSE": float(self.squared_error[mask].sum() / entries),
            "MAE": float(self.absolute_error[mask].sum() / entries),
            "Pearson": float(np.mean(self.pearson[mask])),
            "Spearman": float(np.mean(self.spearman[mask])),
        }


def lfc_row_scores(y: np.ndarray, y_hat: np.ndarray, truth: Centred | None = None) -> RowScores:
    """Per-row LFC metrics of predictions ``y_hat`` for responses ``y`` ``(n, G)``; ``truth`` may pass
    :meth:`Centred.of` of ``y`` (shared by every store of a fold). Ranks of constant predictions are not
    computed: their correlations are NaN."""
    y = np.asarray(y, dtype=np.float64)
    y_hat = np.asarray(y_hat, dtype=np.float64)
    if y.shape != y_hat.shape:
        raise ValueError(f"responses {y.shape} and predictions {y_hat.shape} differ in shape")
    truth = Centred.of(y) if truth is None else truth
    diff = y - y_hat
    squared = np.einsum("ij,ij->i", diff, diff)
    absolute = np.abs(diff, out=diff).sum(axis=1)
    constant = _constant_rows(y_hat) | truth.constant
    centred = y_hat - y_hat.mean(axis=1, keepdims=True)
    pearson = _correlation(truth.values, truth.values_norm, centred, constant)
    spearman = np.full(len(y), np.nan)
    varying = ~constant
    if varying.any():
        ranks = row_ranks(y_hat[varying] if not varying.all() else y_hat)
        ranks -= (y.shape[1] + 1) / 2.0
        spearman[varying] = _correlation(truth.ranks[varying], truth.ranks_norm[varying], ranks, np.zeros(len(ranks), bool))
    return RowScores(np.sqrt(squared), squared, absolute, pearson, spearman, y.shape[1])


def lfc_metrics(y: np.ndarray, y_hat: np.ndarray) -> dict[str, float]:
    """L2, MSE, MAE, Pearson, Spearman of predictions ``(n, G)``."""
    if np.shape(y)[0] == 0:
        return RowScores(*(np.zeros(0) for _ in range(5)), np.shape(y)[1]).summary()
    return lfc_row_scores(y, y_hat).summary()


def _row_norms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", x, x))


def _correlation(a: np.ndarray, a_norm: np.ndarray, b: np.ndarray, undefined: np.ndarray) -> np.ndarray:
    """Row correlations of centred rows ``a`` (norms ``a_norm``) and ``b``; NaN where ``undefined`` or a norm is 0."""
    denominator = a_norm * _row_norms(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.einsum("ij,ij->i", a, b) / denominator
    r[(denominator == 0) | undefined] = np.nan
    return np.clip(r, -1.0, 1.0)


def _constant_rows(x: np.ndarray) -> np.ndarray:
    return (x == x[:, :1]).all(axis=1) if x.shape[1] else np.ones(len(x), bool)


def row_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank) along each row, ``(n, G)`` float64.

    Each value becomes an order-preserving integer whose lowest bits are replaced by its column, so one
    plain (SIMD) sort per row gives the order. Rows where two keys agree above those bits (ties, values
    within ~2⁻³⁹ of each other) or holding NaN/inf are ranked again exactly by scipy's ``rankdata``.
    """
    x = np.asarray(x, dtype=np.float64)
    n, g = x.shape
    if x.size == 0:
        return np.zeros(x.shape)
    bits = max(1, (g - 1).bit_length())
    low = np.int64((1 << bits) - 1)
    keys = (x + 0.0).view(np.int64)  # + 0.0 turns −0.0 into +0.0
    flip = keys >> 63
    flip &= np.int64(0x7FFFFFFFFFFFFFFF)
    keys ^= flip  # negative floats: reverse their order
    keys &= ~low
    keys |= np.arange(g, dtype=np.int64)
    keys.sort(axis=1)
    order = keys & low
    keys >>= bits
    unsure = (keys[:, 1:] == keys[:, :-1]).any(axis=1) | ~np.isfinite(x).all(axis=1)
    order += np.arange(0, n * g, g, dtype=np.int64)[:, None]
    ranks = np.empty(x.shape)
    np.put(ranks, order, np.arange(1.0, g + 1))  # the g values repeat for every row
    if unsure.any():
        from scipy.stats import rankdata

        ranks[unsure] = rankdata(x[unsure], axis=1, method="average")
    return ranks


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
