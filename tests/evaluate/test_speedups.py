"""The fast paths against the direct computations they replace: moments-based scaler + PCA for every inner
split, the sparse neighbour mean, and threads over stores and splits (same table as one thread)."""

import numpy as np
import pytest

from embhub.evaluate.knn import mean_of_neighbours
from embhub.evaluate.projection import ScaledPCA, fit_without_each, inner_kfold
from embhub.evaluate.runner import evaluate


def _assert_same_projection(a: ScaledPCA, b: ScaledPCA, rows: np.ndarray) -> None:
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.scale, b.scale, rtol=1e-10)
    ours, direct = a.transform(rows), b.transform(rows)
    np.testing.assert_allclose(np.abs(ours), np.abs(direct), atol=1e-8)
    np.testing.assert_allclose(ours @ ours.T, direct @ direct.T, atol=1e-8)


@pytest.mark.parametrize("shape", [(120, 30), (60, 90)], ids=["scatter", "gram"])
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


def test_mean_of_neighbours_equals_the_gathered_mean():
    rng = np.random.default_rng(4)
    y = rng.normal(size=(40, 9))
    neighbours = np.stack([rng.choice(40, 7, replace=False) for _ in range(11)])
    np.testing.assert_allclose(mean_of_neighbours(y, neighbours), y[neighbours].mean(axis=1), rtol=1e-14, atol=1e-15)
    assert mean_of_neighbours(y, neighbours[:0]).shape == (0, 9)


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
