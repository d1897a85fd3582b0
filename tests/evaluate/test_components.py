"""Building blocks against direct computations: inner KFold, scaler + PCA, neighbour search, all-k L2."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.model_selection import KFold
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from embhub.evaluate.knn import l2_for_every_k, sorted_neighbours
from embhub.evaluate.metrics import lfc_metrics
from embhub.evaluate.projection import ScaledPCA, fit_without_each, inner_kfold


@pytest.mark.parametrize("n", [7, 100, 163])
@pytest.mark.parametrize("seed", [42, None])
def test_inner_kfold_equals_sklearn(n, seed):
    ours = inner_kfold(n, 5, seed)
    theirs = KFold(5, shuffle=seed is not None, random_state=seed).split(np.zeros(n))
    for (a_train, a_val), (b_train, b_val) in zip(ours, theirs):
        np.testing.assert_array_equal(a_train, b_train)
        np.testing.assert_array_equal(a_val, b_val)


@pytest.mark.parametrize("shape", [(60, 20), (30, 80)])
def test_scaled_pca_spans_sklearn_subspace(shape):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape) * rng.uniform(0.1, 5, shape[1]) + 3
    x[:, 2] = 7.0
    held_out = rng.normal(size=(9, shape[1]))
    q = 10
    ours = ScaledPCA.fit(x, q)
    scaler = StandardScaler().fit(x)
    pca = PCA(q, svd_solver="full").fit(scaler.transform(x))
    reference = pca.transform(scaler.transform(held_out))
    mine = ours.transform(held_out)
    np.testing.assert_allclose(np.abs(mine), np.abs(reference), atol=1e-9)
    np.testing.assert_allclose(mine @ mine.T, reference @ reference.T, atol=1e-8)


def test_neighbours_and_every_k_l2():
    rng = np.random.default_rng(2)
    train, query = rng.normal(size=(50, 6)), rng.normal(size=(8, 6))
    y = rng.normal(size=(50, 12))
    neighbours = sorted_neighbours(train, query, 30)
    _, reference = NearestNeighbors(n_neighbors=30).fit(train).kneighbors(query)
    np.testing.assert_array_equal(neighbours, reference)
    # queries are rows 0..7 of an extended response matrix; their neighbours rows 8.. of it
    y_query = rng.normal(size=(8, 12))
    stacked = np.vstack([y_query, y])
    gram = stacked @ stacked.T
    grid = (1, 5, 30)
    l2 = l2_for_every_k(gram, np.arange(8), neighbours + 8, grid)
    for column, k in enumerate(grid):
        direct = np.linalg.norm(y_query - y[neighbours[:, :k]].mean(axis=1), axis=1)
        np.testing.assert_allclose(l2[:, column], direct, atol=1e-10)


def test_lfc_metrics_against_scipy():
    from scipy.stats import pearsonr, spearmanr

    rng = np.random.default_rng(3)
    y, y_hat = rng.normal(size=(6, 30)), rng.normal(size=(6, 30))
    y_hat[0, :5] = y_hat[0, 5]
    got = lfc_metrics(y, y_hat)
    assert got["Pearson"] == pytest.approx(np.mean([pearsonr(a, b)[0] for a, b in zip(y, y_hat)]), abs=1e-12)
    assert got["Spearman"] == pytest.approx(np.mean([spearmanr(a, b)[0] for a, b in zip(y, y_hat)]), abs=1e-12)
    assert got["L2"] == pytest.approx(np.linalg.norm(y - y_hat, axis=1).mean(), abs=1e-12)
    assert np.isnan(lfc_metrics(y, np.zeros_like(y))["Pearson"])


def _wide_rows(n, d, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, d)), rng.uniform(size=(9, d))


def _assert_scores_of_rank_deficient_fit(mine, x, held_out):
    """With as many components as rows, the centred rows span one dimension fewer: the last component holds
    no training variance, so held-out rows score 0 there; the others equal scikit-learn's up to sign."""
    n = len(x)
    scaler = StandardScaler().fit(x)
    reference = PCA(n, svd_solver="full").fit(scaler.transform(x)).transform(scaler.transform(held_out))
    np.testing.assert_allclose(np.abs(mine[:, : n - 1]), np.abs(reference[:, : n - 1]), atol=1e-8)
    np.testing.assert_allclose(mine[:, n - 1], 0.0, atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_as_many_components_as_rows_gives_finite_scores(seed):
    x, held_out = _wide_rows(45, 100, seed)
    _assert_scores_of_rank_deficient_fit(ScaledPCA.fit(x, len(x)).transform(held_out), x, held_out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inner_splits_with_as_many_components_as_rows_give_finite_scores(seed):
    x, held_out = _wide_rows(48, 100, seed)
    blocks = [validation for _, validation in inner_kfold(len(x), 5, 42)]
    q = min(len(x) - len(block) for block in blocks)
    inner, _ = fit_without_each(x, blocks, q)
    for block, fit in zip(blocks, inner):
        rows = np.setdiff1d(np.arange(len(x)), block)
        if len(rows) == q:
            _assert_scores_of_rank_deficient_fit(fit.transform(held_out), x[rows], held_out)
