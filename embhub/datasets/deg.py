"""DEG labels (−1 / 0 / +1 per gene) from group moments: Welch t-test, Benjamini–Hochberg, plate vote.

This reproduces scanpy's ``rank_genes_groups(method="t-test", corr_method="benjamini-hochberg")`` from
sufficient statistics, so the cells never need to be in memory together: per group the mean and the
unbiased (ddof=1) variance, a Welch t statistic against the reference group, NaN scores set to 0 and NaN
p-values to 1 (as scanpy does), BH adjustment over the genes of one comparison, and
``label = sign(score) where p_adj < 0.05`` (``benchmark-protocol-details.md`` §2.1).
"""

from __future__ import annotations

import numpy as np

ALPHA = 0.05


def moments(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means and ddof=1 variances ``(n_groups, G)`` from per-group sums, sums of squares and cell counts."""
    counts = np.asarray(counts, dtype=np.float64)[:, None]
    means = sums / np.maximum(counts, 1)
    variances = (squares - counts * means**2) / np.maximum(counts - 1, 1)
    return means, np.maximum(variances, 0.0)


def welch_scores(
    mean: np.ndarray, var: np.ndarray, n: np.ndarray, ref_mean: np.ndarray, ref_var: np.ndarray, n_ref: float
) -> tuple[np.ndarray, np.ndarray]:
    """Welch t scores and two-sided p-values ``(n_groups, G)`` of each group against one reference group."""
    from scipy import stats

    n = np.asarray(n, dtype=np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        scores, pvalues = stats.ttest_ind_from_stats(
            mean, np.sqrt(var), n, ref_mean[None, :], np.sqrt(ref_var)[None, :], float(n_ref), equal_var=False
        )
    scores = np.where(np.isnan(scores), 0.0, scores)
    pvalues = np.where(np.isnan(pvalues), 1.0, pvalues)
    return scores, pvalues


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values along the last axis (step-up, monotone, capped at 1)."""
    pvalues = np.asarray(pvalues, dtype=np.float64)
    m = pvalues.shape[-1]
    order = np.argsort(pvalues, axis=-1, kind="stable")
    ranked = np.take_along_axis(pvalues, order, axis=-1) * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[..., ::-1], axis=-1)[..., ::-1]
    adjusted = np.empty_like(ranked)
    np.put_along_axis(adjusted, order, np.minimum(ranked, 1.0), axis=-1)
    return adjusted


def deg_labels(scores: np.ndarray, pvalues: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """int8 labels ``sign(score)`` where the BH-adjusted p-value is below ``alpha``, else 0."""
    adjusted = benjamini_hochberg(pvalues)
    return (np.sign(scores) * (adjusted < alpha)).astype(np.int8)


def plate_vote(labels: np.ndarray) -> np.ndarray:
    """Majority vote over batches ``(n_batches, G) -> (G,)``; ties take the sign of the sum of tied classes.

    {0,+1} → +1, {0,−1} → −1, {+1,−1} → 0, {+1,0,−1} → 0 (``benchmark-protocol.md`` §3).
    """
    labels = np.asarray(labels)
    votes = np.stack([(labels == c).sum(axis=0) for c in (-1, 0, 1)])
    winners = votes == votes.max(axis=0, keepdims=True)
    classes = np.array([-1, 0, 1])[:, None]
    return np.sign((winners * classes).sum(axis=0)).astype(np.int8)
