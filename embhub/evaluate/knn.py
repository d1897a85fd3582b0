"""kNN regression with the study's inner grid search, every k from one sorted neighbour search.

The study (``GridSearchCV(Pipeline([StandardScaler(), PCA(100), KNeighborsRegressor(k)]), k ∈ grid,
cv=KFold(5, shuffle=True, random_state=42), scoring=−mean L2)``) refits scaler, PCA and the neighbour
index for every k and inner split. Here each inner split's scaler/PCA is fitted once (see
:mod:`embhub.evaluate.projection`), its validation rows' neighbours are sorted once up to the largest k,
and the validation L2 of *every* k comes from the Gram matrix K = Y Yᵀ of the training responses:

    ‖y_i − (1/k) Σ_{j≤k} y_{n_j}‖² = K_ii − (2/k) Σ_{j≤k} K_{i n_j} + (1/k²) Σ_{j,l≤k} K_{n_j n_l}

so no prediction is formed until the refit. Selection follows GridSearchCV: highest mean score, first
grid value on ties. Grid values above the smallest inner training split are dropped (documented rule;
scikit-learn would fail those fits); if none is left, k = that split size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from embhub.evaluate.parallel import parallel_map, row_blocks
from embhub.evaluate.projection import fit_without_each, inner_kfold


def sorted_neighbours(train: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Indices ``(n_query, k)`` of each query's k nearest training rows (Euclidean), nearest first."""
    k = min(k, train.shape[0])
    squared = (
        np.einsum("ij,ij->i", query, query)[:, None]
        - 2.0 * (query @ train.T)
        + np.einsum("ij,ij->i", train, train)[None, :]
    )
    if k < train.shape[0]:
        candidates = np.argpartition(squared, k - 1, axis=1)[:, :k]
    else:
        candidates = np.broadcast_to(np.arange(train.shape[0]), squared.shape).copy()
    order = np.argsort(np.take_along_axis(squared, candidates, axis=1), axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


def l2_for_every_k(gram: np.ndarray, query_rows: np.ndarray, neighbour_rows: np.ndarray, k_grid: tuple[int, ...],
                   block: int = 128) -> np.ndarray:
    """Validation L2 ``(n_query, len(k_grid))`` of the mean-of-k-neighbours prediction, from the Gram matrix.

    ``query_rows`` ``(n_query,)`` and ``neighbour_rows`` ``(n_query, k_max)`` index rows of ``gram``. The
    sum of K over each query's first k neighbours (both sides) needs only the pairs j ≤ l of its k_max
    neighbours (K is symmetric): they are gathered for ``block`` queries at a time, grouped by the grid
    bands the two neighbour ranks fall in, and summed per band pair; every k is then a sum of band blocks.
    """
    n = gram.shape[0]
    flat = gram.ravel()
    own = flat.take(query_rows * (n + 1))
    cross = np.cumsum(flat.take(query_rows[:, None] * n + neighbour_rows), axis=1)
    grid = sorted(set(int(k) for k in k_grid))
    first, second, weight, starts, band_pairs = _band_pairs(tuple(grid))
    index_type = np.int32 if n * n < 2**31 else np.int64
    blocks = np.zeros((len(query_rows), len(grid), len(grid)))
    for start in range(0, len(query_rows), block):
        neighbours = neighbour_rows[start : start + block, : grid[-1]].astype(index_type)
        offsets = neighbours * index_type(n)
        pairs = flat.take(offsets[:, first] + neighbours[:, second])
        pairs *= weight
        blocks[start : start + block, band_pairs[0], band_pairs[1]] = np.add.reduceat(pairs, starts, axis=1)
    among = np.cumsum(np.cumsum(blocks, axis=1), axis=2)
    out = np.empty((len(query_rows), len(k_grid)))
    for column, k in enumerate(k_grid):
        band = grid.index(int(k))
        squared = own - 2.0 * cross[:, k - 1] / k + among[:, band, band] / (k * k)
        out[:, column] = np.sqrt(np.clip(squared, 0.0, None))
    return out


@lru_cache(maxsize=8)
def _band_pairs(grid: tuple[int, ...]):
    """Neighbour-rank pairs j ≤ l < max(grid), ordered by (band of j, band of l) where band b holds ranks
    grid[b−1] ≤ r < grid[b]; their weights (1 on the diagonal, 2 off it: K is symmetric); where each band
    pair's run starts; and the band pair of each run."""
    band = np.searchsorted(np.asarray(grid), np.arange(grid[-1]), side="right")
    first, second = np.triu_indices(grid[-1])
    key = band[first] * len(grid) + band[second]
    order = np.argsort(key, kind="stable")
    first, second, key = first[order], second[order], key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    weight = np.where(first == second, 1.0, 2.0)
    return first, second, weight, starts, (band[first[starts]], band[second[starts]])


def usable_grid(grid: tuple[int, ...], smallest_fit: int) -> tuple[int, ...]:
    usable = tuple(k for k in grid if k <= smallest_fit)
    return usable or (smallest_fit,)


@dataclass
class CVProjections:
    """Scaler/PCA scores for each inner split and for the refit on all training rows.

    ``splits[i] = (train_index, validation_index, train_scores, validation_scores)``; ``train_scores``
    / ``test_scores`` are the refit's scores of all training rows and of the test rows.
    """

    splits: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    train_scores: np.ndarray
    test_scores: np.ndarray
    n_components: int | None

    @classmethod
    def fit(
        cls,
        x_train: np.ndarray,
        x_test: np.ndarray,
        n_components: int | None,
        n_splits: int,
        seed: int | None,
        workers: int = 1,
    ) -> "CVProjections":
        """``n_components=None``: use the features as they are (no scaler, no PCA: the idealized control)."""
        x_train = np.asarray(x_train, dtype=np.float64)
        x_test = np.asarray(x_test, dtype=np.float64)
        index_pairs = inner_kfold(len(x_train), n_splits, seed)
        if n_components is None:
            splits = [(tr, va, x_train[tr], x_train[va]) for tr, va in index_pairs]
            return cls(splits, x_train, x_test, None)
        smallest = min(len(tr) for tr, _ in index_pairs)
        q = min(n_components, x_train.shape[1], smallest)
        inner, outer = fit_without_each(x_train, [va for _, va in index_pairs], q, workers)
        jobs = [(pca, tr, va) for (tr, va), pca in zip(index_pairs, inner)] + [(outer, None, None)]

        def scores(job):
            pca, tr, va = job
            if tr is None:
                return (pca.transform(x_train) if pca.fit_scores is None else pca.fit_scores), pca.transform(x_test)
            if pca.fit_scores is not None:
                return pca.fit_scores, pca.transform(x_train[va])
            every_row = pca.transform(x_train)
            return every_row[tr], every_row[va]

        *inner_scores, (train_scores, test_scores) = parallel_map(scores, jobs, workers)
        splits = [(tr, va, a, b) for (tr, va), (a, b) in zip(index_pairs, inner_scores)]
        return cls(splits, train_scores, test_scores, q)

    @property
    def smallest_fit(self) -> int:
        return min(len(tr) for tr, _, _, _ in self.splits)


@dataclass
class KnnFit:
    predictions: np.ndarray
    """``(n_test, G)`` predictions of the refitted model."""
    k: int
    cv_l2: dict[int, float]
    """Mean inner-validation L2 per k (the negative of GridSearchCV's mean_test_score)."""


def knn_cv_predict(
    projections: CVProjections,
    gram: np.ndarray,
    train_rows: np.ndarray,
    y_train: np.ndarray,
    k_grid: tuple[int, ...],
    workers: int = 1,
) -> KnnFit:
    """Select k by inner CV and predict the test rows.

    ``train_rows`` ``(n,)`` maps the projected training rows to rows of ``gram`` / ``y_train`` (the
    outer fold's training responses); only perturbations with an embedding are among them.
    """
    grid = usable_grid(tuple(k_grid), projections.smallest_fit)
    k_max = max(grid)

    def validation_l2(task) -> np.ndarray:
        (tr, va, train_scores, validation_scores), rows = task
        neighbours = sorted_neighbours(train_scores, validation_scores[rows], k_max)
        return l2_for_every_k(gram, train_rows[va[rows]], train_rows[tr][neighbours], grid)

    pieces = 1 if workers <= 1 else 2  # halves of each split even out five splits on two threads
    tasks = [(split, rows) for split in projections.splits for rows in row_blocks(len(split[1]), pieces)]
    per_row = parallel_map(validation_l2, tasks, workers)
    # each split's mean over all its rows at once: the same sums whether it ran in one piece or two
    split_means = np.stack([np.concatenate(per_row[i * pieces : (i + 1) * pieces]).mean(axis=0) for i in range(len(projections.splits))])
    scores = -split_means.mean(axis=0)
    best = int(np.argmax(scores))
    k = grid[best]
    neighbours = sorted_neighbours(projections.train_scores, projections.test_scores, k)
    predictions = mean_of_neighbours(y_train, train_rows[neighbours], workers)
    return KnnFit(predictions, k, {kk: float(-s) for kk, s in zip(grid, scores)})


def mean_of_neighbours(y: np.ndarray, neighbours: np.ndarray, workers: int = 1) -> np.ndarray:
    """Uniform-weight kNN prediction ``(n_query, G)``: mean of the rows ``y[neighbours[i]]``.

    A sparse 0/1 selection matrix times ``y`` sums each query's rows without materialising the
    ``(n_query, k, G)`` gather; the sum is then divided by k, as the mean is. Blocks of queries run on up
    to ``workers`` threads.
    """
    if neighbours.shape[0] == 0:
        return np.zeros((0, y.shape[1]))
    blocks = row_blocks(len(neighbours), workers)
    sums = parallel_map(lambda rows: np.asarray(selection_matrix(neighbours[rows], y.shape[0]) @ y), blocks, workers)
    return np.concatenate(sums) / neighbours.shape[1]


def selection_matrix(rows: np.ndarray, n_columns: int):
    """Sparse 0/1 ``(len(rows), n_columns)``: row i selects the columns ``rows[i]``; times a matrix, it sums
    the chosen rows of that matrix without materialising them."""
    import scipy.sparse as sp

    n, width = rows.shape
    return sp.csr_matrix((np.ones(n * width), rows.ravel(), np.arange(0, n * width + 1, width)), shape=(n, n_columns))
