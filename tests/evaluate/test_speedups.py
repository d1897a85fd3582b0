"""The fast paths against the direct computations they replace: moments-based scaler + PCA for every inner
split, the GIL-free subset eigensolver, the symmetric every-k L2, the sparse neighbour mean, sort-key ranks,
per-row metrics, and threads over stores, splits and rows (same numbers as one thread)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from embhub.evaluate import eigen
from embhub.evaluate.folds import FoldData, LineResponses
from embhub.evaluate.knn import l2_for_every_k, mean_of_neighbours
from embhub.evaluate.metrics import Centred, lfc_metrics, row_ranks
from embhub.evaluate.parallel import pipeline_map
from embhub.evaluate.projection import ScaledPCA, fit_without_each, gram_pca_scores, inner_kfold, pca_scores
from embhub.evaluate.runner import evaluate


def _assert_same_projection(a: ScaledPCA, b: ScaledPCA, rows: np.ndarray) -> None:
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.scale, b.scale, rtol=1e-10)
    ours, direct = a.transform(rows), b.transform(rows)
    np.testing.assert_allclose(np.abs(ours), np.abs(direct), atol=1e-8)
    np.testing.assert_allclose(ours @ ours.T, direct @ direct.T, atol=1e-8)


@pytest.mark.parametrize("shape", [(120, 30), (60, 90), (60, 55)], ids=["scatter", "gram", "gram-inner-scatter-outer"])
def test_fit_without_each_equals_fitting_each_training_split(shape):
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape) @ rng.normal(size=(shape[1], shape[1])) * rng.uniform(0.1, 5, shape[1]) + 40.0
    x[:, 1] = 2.5  # a constant feature: the scaler's scale-1 rule must hold for every split
    blocks = [validation for _, validation in inner_kfold(len(x), 5, 42)]
    held_out = rng.normal(size=(7, shape[1])) + 40.0
    inner, outer = fit_without_each(x, blocks, 10)
    for block, fitted in zip(blocks, inner):
        _assert_same_projection(fitted, ScaledPCA.fit(np.delete(x, block, axis=0), 10), held_out)
    _assert_same_projection(outer, ScaledPCA.fit(x, 10), held_out)
    threaded_inner, threaded_outer = fit_without_each(x, blocks, 10, workers=2)
    for a, b in zip(inner + [outer], threaded_inner + [threaded_outer]):
        np.testing.assert_array_equal(a.transform(held_out), b.transform(held_out))


@pytest.mark.parametrize("shape", [(80, 300), (300, 40)], ids=["wide", "tall"])
def test_pca_scores_from_rows_or_from_their_gram_equal_sklearn(shape):
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(5)
    x = rng.normal(size=shape) @ rng.normal(size=(shape[1], shape[1])) + rng.normal(scale=3.0, size=shape[1])
    q = 25
    expected = PCA(q, svd_solver="full").fit_transform(x)
    for scores in (pca_scores(x, q), gram_pca_scores(x @ x.T, q)):
        assert scores.shape == expected.shape
        np.testing.assert_allclose(scores @ scores.T, expected @ expected.T, atol=1e-8 * np.abs(expected).max() ** 2)
        np.testing.assert_allclose(np.abs(scores), np.abs(expected), atol=1e-8 * np.abs(expected).max())


def test_all_response_gram_holds_the_response_gram_and_the_truth_is_the_same_in_blocks():
    rng = np.random.default_rng(6)
    pert_ids = np.array([f"P{i}" for i in range(50)])
    lfc = rng.normal(size=(50, 30))
    folds = np.arange(50) % 5
    plain = FoldData.from_arrays("K-562", 2, pert_ids, folds, lfc)
    shared = FoldData.from_arrays("K-562", 2, pert_ids, folds, lfc)
    y = np.vstack([shared.y_train, shared.y_test])
    np.testing.assert_allclose(shared.all_response_gram, y @ y.T, rtol=1e-12)
    np.testing.assert_allclose(shared.response_gram, plain.response_gram, rtol=1e-12)
    assert shared.response_gram.flags.c_contiguous
    whole = Centred.of(plain.y_test)
    for field in ("values", "values_norm", "ranks", "ranks_norm", "constant"):
        np.testing.assert_array_equal(getattr(plain.test_truth, field), getattr(whole, field))


def test_a_cell_lines_folds_share_its_gram_and_idealized_scores_and_equal_the_per_fold_computation(monkeypatch):
    from embhub.evaluate import folds as folds_module
    from embhub.evaluate.baselines import idealized_embeddings

    rng = np.random.default_rng(8)
    pert_ids = np.array([f"P{i}" for i in range(60)])
    lfc = rng.normal(size=(60, 40)).astype(np.float32)
    folds = np.arange(60) % 5
    folds[:4] = -1  # in no test fold: always training
    solves = []
    counted = folds_module.gram_pca_scores
    monkeypatch.setattr(folds_module, "gram_pca_scores", lambda *args: solves.append(1) or counted(*args))
    line = LineResponses(lfc)
    for fold in range(5):
        shared = FoldData.from_arrays("K-562", fold, pert_ids, folds, lfc, line=line)
        alone = FoldData.from_arrays("K-562", fold, pert_ids, folds, lfc)
        np.testing.assert_array_equal(shared.y_train, alone.y_train)
        np.testing.assert_array_equal(shared.y_test, alone.y_test)
        np.testing.assert_allclose(shared.response_gram, alone.y_train @ alone.y_train.T, rtol=1e-12)
        ours = np.vstack(shared.idealized_embeddings(7))
        expected = np.vstack(idealized_embeddings(alone.y_train, alone.y_test, 7))
        np.testing.assert_allclose(ours @ ours.T, expected @ expected.T, atol=1e-10)  # same subspace, same scores up to sign
        np.testing.assert_allclose(np.abs(ours), np.abs(expected), atol=1e-10)
    assert len(solves) == 1  # one eigensolve for the five folds


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_pipeline_map_runs_every_stage_in_order_and_raises_the_first_failure(workers):
    seen = []

    def double(value):
        seen.append(("double", value))
        return 2 * value

    def label(value):
        seen.append(("label", value))
        return f"<{value}>"

    assert pipeline_map([double, label], range(7), workers) == [f"<{2 * i}>" for i in range(7)]
    assert sorted(seen) == sorted([("double", i) for i in range(7)] + [("label", 2 * i) for i in range(7)])
    assert pipeline_map([double], [], workers) == []

    def fail_on_three(value):
        if value == 3:
            raise ValueError("item 3")
        return value

    with pytest.raises(ValueError, match="item 3"):
        pipeline_map([fail_on_three, label], range(7), workers)


def test_mean_of_neighbours_equals_the_gathered_mean():
    rng = np.random.default_rng(4)
    y = rng.normal(size=(40, 9))
    neighbours = np.stack([rng.choice(40, 7, replace=False) for _ in range(11)])
    np.testing.assert_allclose(mean_of_neighbours(y, neighbours), y[neighbours].mean(axis=1), rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(mean_of_neighbours(y, neighbours, workers=3), mean_of_neighbours(y, neighbours))
    assert mean_of_neighbours(y, neighbours[:0]).shape == (0, 9)


@pytest.mark.parametrize("m", [60, eigen.SMALL + 50], ids=["numpy-full", "lapack-subset"])
@pytest.mark.parametrize("layout", ["C", "F"])
@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
def test_top_eigenpairs_equal_the_full_decomposition(m, layout, lower):
    rng = np.random.default_rng(m)
    a = rng.normal(size=(m + 30, m))
    full = np.corrcoef(a.T)
    expected_values, expected_vectors = np.linalg.eigh(full)
    q = 25
    stored = np.where(np.tril(np.ones((m, m), bool)) if lower else np.triu(np.ones((m, m), bool)), full, np.nan)
    stored = np.asarray(stored, order=layout)  # only the named triangle holds the matrix; the other is NaN
    values, vectors = eigen.top_eigenpairs(stored, q, lower=lower)
    np.testing.assert_allclose(values, expected_values[::-1][:q], rtol=1e-11)
    projector = expected_vectors[:, -q:] @ expected_vectors[:, -q:].T
    np.testing.assert_allclose(vectors @ vectors.T, projector, atol=1e-10)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(q), atol=1e-12)
    assert not np.isnan(stored[np.tril_indices(m) if lower else np.triu_indices(m)]).any()  # input left readable


def test_subset_eigensolver_is_the_gil_free_lapack_call_with_scipy_as_fallback(monkeypatch):
    assert eigen._dsyevr() is not None  # SciPy's Cython LAPACK table is there: the GIL-free path is the one used
    rng = np.random.default_rng(5)
    m = eigen.SMALL + 20
    matrix = np.cov(rng.normal(size=(m, m + 40)))
    ours = eigen.top_eigenpairs(matrix, 12)
    monkeypatch.setattr(eigen, "_dsyevr", lambda: None)
    fallback = eigen.top_eigenpairs(matrix, 12)
    np.testing.assert_allclose(ours[0], fallback[0], rtol=1e-12)
    np.testing.assert_allclose(np.abs(ours[1].T @ fallback[1]), np.eye(12), atol=1e-9)


def test_workers_hold_the_eigensolvers_blas_to_one_thread_even_when_it_loads_after_numpys():
    """SciPy's LAPACK brings its own BLAS; in a fresh process it is not loaded until the first eigensolve."""
    probe = (
        "import json, numpy as np\n"
        "from threadpoolctl import threadpool_info\n"
        "from embhub.evaluate.parallel import one_blas_thread\n"
        "with one_blas_thread(2):\n"
        "    from embhub.evaluate.eigen import SMALL, top_eigenpairs\n"
        "    top_eigenpairs(np.eye(SMALL + 1), 3)\n"
        "    print(json.dumps([(i['filepath'], i['num_threads']) for i in threadpool_info() if i['user_api'] == 'blas']))\n"
    )
    libraries = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    assert libraries and all(threads == 1 for _, threads in libraries), libraries


def test_every_k_l2_on_an_uneven_grid_in_small_blocks():
    rng = np.random.default_rng(6)
    y = rng.normal(size=(60, 15))
    gram = y @ y.T
    queries = np.arange(9)
    neighbours = np.stack([rng.choice(np.arange(9, 60), 37, replace=False) for _ in queries])
    grid = (37, 2, 11, 3)
    l2 = l2_for_every_k(gram, queries, neighbours, grid, block=4)
    for column, k in enumerate(grid):
        direct = np.linalg.norm(y[queries] - y[neighbours[:, :k]].mean(axis=1), axis=1)
        np.testing.assert_allclose(l2[:, column], direct, rtol=1e-12, atol=1e-12)


def test_row_ranks_equal_scipy_rankdata_on_ties_zeros_extremes_and_near_equal_values():
    from scipy.stats import rankdata

    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, 300))
    x[0, :40] = 0.25  # ties
    x[1, 3], x[1, 9] = -0.0, 0.0  # equal values with different bits
    x[2, 5] = np.nextafter(x[2, 6], np.inf)  # one ulp apart: distinct, ranked apart
    x[3] = rng.normal(size=300) * 10.0 ** rng.integers(-300, 300, 300)  # every magnitude, both signs
    x[4, 7], x[4, 8] = np.inf, -np.inf
    x[5] = 3.0  # a constant row
    np.testing.assert_array_equal(row_ranks(x), rankdata(x, axis=1, method="average"))
    assert row_ranks(x[2:3])[0, 5] == row_ranks(x[2:3])[0, 6] + 1
    assert row_ranks(np.zeros((0, 4))).shape == (0, 4)


def test_fold_scores_per_row_equal_the_metrics_of_any_subset():
    from scipy.stats import pearsonr, spearmanr

    rng = np.random.default_rng(8)
    n, genes = 24, 40
    lfc = rng.normal(size=(n, genes))
    fold = FoldData.from_arrays("K", 0, np.array([f"P{i}" for i in range(n)]), np.arange(n) % 2, lfc)
    predictions = fold.y_test * 0.5 + rng.normal(size=fold.y_test.shape)
    predictions[2] = 0.7  # constant: correlations NaN, errors still scored
    predictions[3, :10] = predictions[3, 10]  # ties among the predicted values
    scores = fold.score(predictions, workers=3)
    for mask in (np.ones(len(predictions), bool), np.arange(len(predictions)) % 3 != 0, np.arange(len(predictions)) == 2):
        y, y_hat = fold.y_test[mask], predictions[mask]
        varying = ~(y_hat == y_hat[:, :1]).all(axis=1)
        expected = {
            "L2": np.linalg.norm(y - y_hat, axis=1).mean(),
            "MSE": np.mean((y - y_hat) ** 2),
            "MAE": np.mean(np.abs(y - y_hat)),
            "Pearson": np.mean([pearsonr(a, b)[0] for a, b in zip(y, y_hat)]) if varying.all() else np.nan,
            "Spearman": np.mean([spearmanr(a, b)[0] for a, b in zip(y, y_hat)]) if varying.all() else np.nan,
        }
        got = scores.summary(mask)
        for metric, value in expected.items():
            assert got[metric] == pytest.approx(value, rel=1e-12, abs=1e-14, nan_ok=True), metric
        assert lfc_metrics(y, y_hat) == pytest.approx(got, rel=1e-12, abs=1e-14, nan_ok=True)
    np.testing.assert_array_equal(fold.score(predictions, workers=1).l2, scores.l2)


def _sorted_table(frame):
    keys = ["cell_line", "fold", "method", "embedding", "metric", "subset"]
    return frame.sort_values(keys).reset_index(drop=True)


@pytest.mark.parametrize("n_stores", [1, 3], ids=["threads-over-splits", "threads-over-stores"])
def test_threads_give_the_same_table_as_one_thread(toy, stores, n_stores):
    from embhub.datasets.prepared import PreparedDataset

    dataset = PreparedDataset.open(toy.path)
    chosen = list(stores.values())[:n_stores]
    serial = evaluate(dataset, chosen, folds=[0, 1], jobs=1).results
    threaded = evaluate(dataset, chosen, folds=[0, 1], jobs=2).results
    a, b = _sorted_table(serial), _sorted_table(threaded)
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.drop(columns="value").to_numpy(), b.drop(columns="value").to_numpy())
    np.testing.assert_allclose(a.value.to_numpy(), b.value.to_numpy(), rtol=1e-12, equal_nan=True)
