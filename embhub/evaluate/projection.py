"""StandardScaler → PCA(q), as scikit-learn computes them, without scikit-learn.

The study fits ``Pipeline([StandardScaler(), PCA(100), estimator])`` inside ``GridSearchCV``, so scaler and
PCA are refitted on every inner training split. kNN and Lasso only need the *scores* (the PCA
coordinates), and those are fixed by the top-q principal subspace; we get that subspace from a symmetric
eigendecomposition of whichever is smaller, the Gram matrix ``Z Zᵀ`` (n×n) or the scatter matrix ``Zᵀ Z``
(d×d), instead of a full SVD. Distances and linear fits do not depend on the basis chosen inside the
subspace (sign flips, rotations), so results equal ``PCA(svd_solver="full")`` to rounding.

Documented deviation: the study used ``svd_solver="auto"`` with no seed, which picks a randomized solver
for wide inputs; results here are deterministic and equal to the exact ("full") solver.

Number of components: ``min(q, d, n_fit)`` where n_fit is the smallest training split the pipeline is
fitted on (the study never had d < 100; PCA(100) would fail there).

Every inner training split is the outer training set minus one validation block, so when the scatter
matrix is the smaller side (d ≤ n) :func:`fit_without_each` forms each block's scatter once and gets every
split's mean, variance and correlation matrix by subtraction — one pass over the data instead of six.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embhub.evaluate.eigen import top_eigenpairs
from embhub.evaluate.parallel import parallel_map, pipeline_map


def standard_scaler(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale ``(d,)`` of :class:`sklearn.preprocessing.StandardScaler` (population std;
    near-constant features, by scikit-learn's rule, get scale 1)."""
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    return mean, scaler_scale(mean, var, x.shape[0])


def scaler_scale(mean: np.ndarray, var: np.ndarray, n: int) -> np.ndarray:
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return scale


@dataclass
class Moments:
    """Count, sum and scatter matrix of rows shifted by ``shift``: enough to fit scaler + PCA."""

    shift: np.ndarray
    count: int
    total: np.ndarray
    scatter: np.ndarray

    @classmethod
    def of(cls, shifted: np.ndarray, shift: np.ndarray) -> "Moments":
        """NumPy's product rather than BLAS's syrk: it releases the GIL (blocks run on threads) and OpenBLAS's
        gemm ran faster here than its syrk despite twice the arithmetic."""
        return cls(shift, len(shifted), shifted.sum(axis=0), shifted.T @ shifted)

    def __add__(self, other: "Moments") -> "Moments":
        return Moments(self.shift, self.count + other.count, self.total + other.total, self.scatter + other.scatter)

    def __sub__(self, other: "Moments") -> "Moments":
        return Moments(self.shift, self.count - other.count, self.total - other.total, self.scatter - other.scatter)


def fit_without_each(
    x: np.ndarray, blocks: list[np.ndarray], n_components: int, workers: int = 1
) -> tuple[list[ScaledPCA], ScaledPCA]:
    """Scaler + PCA fitted on ``x`` without each of the disjoint row ``blocks`` (which cover every row), and
    on all of ``x`` (last). Same results as :meth:`ScaledPCA.fit` on each subset, to rounding."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    shift = x.mean(axis=0)
    shifted = x - shift
    if d > min(n - len(block) for block in blocks):
        return _fit_wide(shifted, shift, blocks, n_components, workers)
    parts = parallel_map(lambda block: Moments.of(shifted[block], shift), blocks, workers)
    everything = parts[0]
    for part in parts[1:]:
        everything = everything + part
    moments = [everything - part for part in parts] + [everything]
    fits = parallel_map(lambda m: ScaledPCA.from_moments(m, n_components), moments, workers)
    return fits[:-1], fits[-1]


def _fit_wide(shifted: np.ndarray, shift: np.ndarray, blocks: list[np.ndarray], n_components: int,
              workers: int) -> tuple[list[ScaledPCA], ScaledPCA]:
    """:func:`fit_without_each` where a training split has fewer rows than features, so each fit
    eigendecomposes its own product matrix (the Gram matrix, or the scatter matrix where that is smaller).
    Every split's scaler comes from per-block column sums; the largest fit (all rows) is queued first and
    each fit's eigensolve as soon as its product is ready (:func:`pipeline_map`)."""
    n, d = shifted.shape

    def column_sums(block):
        rows = shifted[block]
        return rows.sum(axis=0), np.einsum("ij,ij->j", rows, rows)

    sums = parallel_map(column_sums, blocks, workers)
    total, squares = sum(s for s, _ in sums), sum(q for _, q in sums)
    everything = np.ones(n, dtype=bool)
    jobs = [(everything, total, squares)]
    for block, (block_total, block_squares) in zip(blocks, sums):
        keep = everything.copy()
        keep[block] = False
        jobs.append((keep, total - block_total, squares - block_squares))

    def product(job):
        keep, column_total, column_squares = job
        count = int(keep.sum())
        delta = column_total / count
        variance = np.clip(column_squares / count - delta * delta, 0.0, None)
        scale = scaler_scale(shift + delta, variance, count)
        z = shifted[keep]  # a copy
        z -= delta
        z /= scale
        return keep, delta, scale, (z.T @ z if d <= count else z @ z.T)

    def solve(state):
        keep, delta, scale, matrix = state
        q = min(n_components, len(matrix))
        values, vectors = top_eigenpairs(matrix, q, overwrite=True)
        if len(matrix) == d:
            return ScaledPCA(shift + delta, scale, np.zeros(d), vectors)
        roots = spanned_roots(values, len(matrix))
        every_row = np.zeros((n, q))
        every_row[keep] = vectors
        # Zᵀ V / √λ with Z = (shifted rows − delta) / scale, without Z: V ⊥ 1 (Z's rows are centred), so delta drops out
        basis = (shifted.T @ every_row) / scale[:, None] * inverse(roots)
        return ScaledPCA(shift + delta, scale, np.zeros(d), basis, vectors * roots)

    outer, *inner = pipeline_map([product, solve], jobs, workers)
    return inner, outer


@dataclass
class ScaledPCA:
    """A fitted scaler + PCA. ``transform(x)`` gives the ``(n, q)`` scores in an orthonormal basis."""

    mean: np.ndarray
    scale: np.ndarray
    centre: np.ndarray
    basis: np.ndarray
    """``(d, q)`` orthonormal basis of the top-q principal subspace of the standardised training rows."""
    fit_scores: np.ndarray | None = field(default=None, repr=False)
    """Scores of the rows it was fitted on, where the fit gives them for free (the Gram path: V·√λ)."""

    @classmethod
    def fit(cls, x: np.ndarray, n_components: int, standardise: bool = True) -> "ScaledPCA":
        """Fit on training rows ``x`` ``(n, d)`` (float64)."""
        x = np.asarray(x, dtype=np.float64)
        n, d = x.shape
        q = min(n_components, n, d)
        if standardise:
            mean, scale = standard_scaler(x)
        else:
            mean, scale = np.zeros(d), np.ones(d)
        z = (x - mean) / scale
        centre = z.mean(axis=0)
        z -= centre
        basis, fit_scores = _top_subspace(z, q)
        return cls(mean, scale, centre, basis, fit_scores)

    @classmethod
    def from_moments(cls, moments: "Moments", n_components: int) -> "ScaledPCA":
        """Fit from summary moments of the training rows (scaler, then PCA of the correlation matrix)."""
        count = moments.count
        delta = moments.total / count
        mean = moments.shift + delta
        correlation = moments.scatter / count
        correlation -= np.outer(delta, delta)
        variance = np.clip(np.diag(correlation), 0.0, None)
        scale = scaler_scale(mean, variance, count)
        correlation /= scale[:, None]
        correlation /= scale[None, :]
        q = min(n_components, count, len(mean))
        basis = top_eigenpairs(correlation, q, overwrite=True)[1]
        return cls(mean, scale, np.zeros(len(mean)), basis)

    @property
    def n_components(self) -> int:
        return self.basis.shape[1]

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``((x − mean) / scale − centre) @ basis``, with the scale folded into the basis (one pass over x)."""
        centred = np.asarray(x, dtype=np.float64) - self.mean
        return centred @ (self.basis / self.scale[:, None]) - self.centre @ self.basis


def _top_subspace(z: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Basis of the top-q principal subspace of centred rows ``z``, and the rows' scores when they come free."""
    n, d = z.shape
    if d <= n:
        return top_eigenpairs(z.T @ z, q)[1], None
    values, vectors = top_eigenpairs(z @ z.T, q, overwrite=True)
    roots = spanned_roots(values, n)
    return (z.T @ vectors) * inverse(roots), vectors * roots  # Z·basis = Z Zᵀ V / √λ = V √λ


def spanned_roots(values: np.ndarray, size: int) -> np.ndarray:
    """√λ of a Gram matrix's eigenvalues, 0 for those within rounding of 0. n centred rows span at most
    n − 1 directions, so with as many components as rows (or repeated rows) some λ are only rounding
    noise, and Zᵀv/√λ would turn that noise into a huge basis vector; such a component gets a zero basis
    vector instead (every training row scores 0 on it, so held-out rows do too)."""
    floor = max(float(values.max(initial=0.0)), 0.0) * size * np.finfo(np.float64).eps
    return np.sqrt(np.where(values > floor, values, 0.0))


def inverse(roots: np.ndarray) -> np.ndarray:
    return np.divide(1.0, roots, out=np.zeros_like(roots), where=roots > 0)


def pca_scores(x: np.ndarray, n_components: int) -> np.ndarray:
    """``PCA(n_components).fit_transform(x)`` up to the basis: scores ``(n, q)`` of the centred rows."""
    x = np.asarray(x, dtype=np.float64)
    pca = ScaledPCA.fit(x, n_components, standardise=False)
    return pca.fit_scores if pca.fit_scores is not None else pca.transform(x)


def gram_pca_scores(gram: np.ndarray, n_components: int) -> np.ndarray:
    """:func:`pca_scores` of rows given only by their Gram matrix ``X Xᵀ`` ``(n, n)`` (uncentred): the
    doubly centred Gram is the centred rows' Gram, and its top eigenpairs give the scores ``V √λ``."""
    gram = np.asarray(gram, dtype=np.float64)
    row_means = gram.mean(axis=1)
    centred = gram - row_means[:, None]
    centred -= row_means[None, :]
    centred += row_means.mean()
    q = min(n_components, len(gram))
    values, vectors = top_eigenpairs(centred, q, overwrite=True)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def inner_kfold(n: int, n_splits: int, seed: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) index pairs of ``sklearn.model_selection.KFold(n_splits, shuffle=seed is not
    None, random_state=seed)``: a RandomState permutation cut into n_splits consecutive near-equal chunks."""
    indices = np.arange(n)
    if seed is not None:
        np.random.RandomState(seed).shuffle(indices)
    sizes = np.full(n_splits, n // n_splits, dtype=np.int64)
    sizes[: n % n_splits] += 1
    splits = []
    start = 0
    for size in sizes:
        validation = np.sort(indices[start : start + size])
        mask = np.ones(n, dtype=bool)
        mask[validation] = False
        splits.append((np.arange(n)[mask], validation))
        start += size
    return splits
