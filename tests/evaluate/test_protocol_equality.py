"""Every kNN, Lasso and baseline number of `evaluate` equals an independent scikit-learn run of the
study's protocol (GridSearchCV pipelines), to 1e-6, selected k / alpha included."""

import json

import numpy as np
import pytest

from embhub.datasets.prepared import PreparedDataset
from embhub.evaluate import results as R
from embhub.evaluate.baselines import random_embeddings
from embhub.evaluate.protocol import settings_for
from embhub.evaluate.runner import evaluate
from tests.evaluate.study_reference import study_metrics, study_predict

TOLERANCE = 1e-6


def _value(frame, method, embedding, cell_line, fold, metric, subset="all"):
    row = frame[(frame.method == method) & (frame.embedding == embedding) & (frame.cell_line == cell_line)
                & (frame.fold == fold) & (frame.metric == metric) & (frame.subset == subset)]
    assert len(row) == 1, (method, embedding, cell_line, fold, metric, subset)
    return row.iloc[0]


def _assert_metrics(frame, method, embedding, cell_line, fold, expected, subset="all"):
    for metric, value in expected.items():
        got = _value(frame, method, embedding, cell_line, fold, metric, subset)["value"]
        if np.isnan(value):
            assert np.isnan(got), (method, embedding, metric)
        else:
            assert got == pytest.approx(value, abs=TOLERANCE, rel=0), (method, embedding, cell_line, fold, metric)


@pytest.mark.parametrize("estimator", ["knn", "lasso"])
def test_stores_and_baselines_equal_sklearn_protocol(toy, stores, estimator):
    dataset = PreparedDataset.open(toy.path)
    cell_lines, folds = (["Hep-G2"], [3]) if estimator == "lasso" else (["K-562", "Hep-G2"], [0, 4])
    evaluation = evaluate(dataset, list(stores.values()), estimators=(estimator,), folds=folds, cell_lines=cell_lines)
    frame = evaluation.results
    settings = settings_for("toy")
    for cell_line in cell_lines:
        y = toy.lfc[cell_line].astype(np.float64)
        for fold in folds:
            test = toy.folds[cell_line] == fold
            train = ~test
            y_train, y_test = y[train], y[test]
            for name, store in stores.items():
                found, vectors = store.lookup(toy.pert_ids)
                x = np.zeros((len(toy.pert_ids), store.dim))
                x[found] = vectors
                available_train, available_test = found[train], found[test]
                inner = int(available_train.sum()) - -(-int(available_train.sum()) // 5)
                n_components = min(100, store.dim, inner)
                predictions, selected = study_predict(estimator, x[train], y_train, x[test], available_train, available_test,
                                                      y_train, n_components)
                _assert_metrics(frame, estimator, name, cell_line, fold, study_metrics(y_test, predictions))
                params = json.loads(_value(frame, estimator, name, cell_line, fold, "L2")["estimator_params"])
                assert params["k" if estimator == "knn" else "alpha"] == selected
                assert params["pca_components"] == n_components
            _assert_metrics(frame, "baseline", R.CONTEXT_MEAN, cell_line, fold,
                            study_metrics(y_test, np.broadcast_to(y_train.mean(axis=0), y_test.shape)))
            _assert_metrics(frame, "baseline", R.NO_CHANGE, cell_line, fold, study_metrics(y_test, np.zeros_like(y_test)))
            x_train, x_test = random_embeddings(train.sum(), test.sum(), 100, settings.random_seed, cell_line, fold)
            everything_train, everything_test = np.ones(train.sum(), bool), np.ones(test.sum(), bool)
            predictions, _ = study_predict(estimator, x_train, y_train, x_test, everything_train, everything_test, y_train, 100)
            _assert_metrics(frame, estimator, R.RANDOM, cell_line, fold, study_metrics(y_test, predictions))
            from sklearn.decomposition import PCA

            ideal = PCA(n_components=min(100, y.shape[1]), svd_solver="full").fit_transform(np.vstack([y_train, y_test]))
            predictions, _ = study_predict(estimator, ideal[: train.sum()], y_train, ideal[train.sum():], everything_train,
                                           everything_test, y_train, None)
            _assert_metrics(frame, estimator, R.IDEALIZED, cell_line, fold, study_metrics(y_test, predictions))


def test_common_subset_and_ceiling(toy, stores):
    dataset = PreparedDataset.open(toy.path)
    evaluation = evaluate(dataset, list(stores.values()), cell_lines=["K-562"], folds=[1])
    frame = evaluation.results
    found, _ = stores["partial"].lookup(toy.pert_ids)
    test = toy.folds["K-562"] == 1
    common = found[test]
    row = _value(frame, "knn", "wide", "K-562", 1, "L2", subset="common")
    assert row["n_test"] == common.sum() < test.sum()
    partial = _value(frame, "knn", "partial", "K-562", 1, "L2")
    assert partial["n_covered"] == common.sum() and partial["n_test"] == test.sum()
    y_test = toy.lfc["K-562"][test].astype(np.float64)
    mean = toy.lfc["K-562"][~test].astype(np.float64).mean(axis=0)
    expected = study_metrics(y_test[common], np.broadcast_to(mean, y_test[common].shape))
    _assert_metrics(frame, "baseline", R.CONTEXT_MEAN, "K-562", 1, expected, subset="common")
    ceiling = PreparedDataset.open(toy.path).cell_line("K-562").ceiling_l2(0.9)
    assert _value(frame, "ceiling", R.CEILING, "K-562", 1, "L2")["value"] == pytest.approx(ceiling[test].mean(), abs=1e-6)
    coverage = evaluation.coverage.set_index(["embedding", "cell_line"])
    assert coverage.loc[("partial", "K-562"), "n_covered"] == found.sum()
    assert coverage.loc[("wide", "K-562"), "fraction"] == 1.0


def test_parallel_stores_give_the_same_table(toy, stores):
    dataset = PreparedDataset.open(toy.path)
    serial = evaluate(dataset, list(stores.values()), cell_lines=["Hep-G2"], folds=[2], baselines=False).results
    parallel = evaluate(dataset, list(stores.values()), cell_lines=["Hep-G2"], folds=[2], baselines=False, jobs=3).results
    key = ["embedding", "metric", "subset"]
    serial, parallel = serial.sort_values(key).reset_index(drop=True), parallel.sort_values(key).reset_index(drop=True)
    np.testing.assert_allclose(parallel.value, serial.value, rtol=0, atol=1e-10)
    assert list(parallel.estimator_params) == list(serial.estimator_params)
