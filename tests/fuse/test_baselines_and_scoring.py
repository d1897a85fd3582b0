"""The concatenation kNN baseline and the scoring of fusion predictions against independent computations."""

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from embhub.evaluate.protocol import ProtocolSettings
from embhub.fuse.concat_knn import concat_knn_predictions, concatenated_sources
from embhub.fuse.run import _predict_fold
from embhub.fuse.scoring import score_rows


def test_concatenation_standardises_each_source_on_training_perturbations_and_zeroes_missing(screen_data):
    train = np.unique(screen_data.row_pert[screen_data.row_fold != 0])
    features = concatenated_sources(screen_data, train)
    dims = np.cumsum([0] + [m.shape[1] for m in screen_data.sources])
    for s, matrix in enumerate(screen_data.sources):
        block = features[:, dims[s] : dims[s + 1]]
        have = train[screen_data.present[train, s]]
        expected = (matrix - matrix[have].mean(0)) / matrix[have].std(0)
        present = screen_data.present[:, s]
        np.testing.assert_allclose(block[present], expected[present], rtol=1e-4, atol=1e-4)
        assert np.all(block[~present] == 0)
        np.testing.assert_allclose(block[have].mean(0), 0, atol=1e-4)


def negative_mean_l2(y, y_hat):
    return -np.linalg.norm(y - y_hat, axis=1).mean()


def test_concat_knn_matches_a_scikit_learn_grid_search(screen_data):
    settings = ProtocolSettings()
    fold = 2
    predicted = concat_knn_predictions(screen_data, fold, settings)
    test, predictions, covered, params = predicted["line-A"]
    assert covered.all()
    line = screen_data.row_cell_line == 0
    train = np.flatnonzero(line & (screen_data.row_fold != fold))
    features = concatenated_sources(screen_data, np.unique(screen_data.row_pert[train]))
    x_train, x_test = features[screen_data.row_pert[train]], features[screen_data.row_pert[test]]
    components = min(100, x_train.shape[1], len(train) - len(train) // 5)
    search = GridSearchCV(
        Pipeline([("scale", StandardScaler()), ("pca", PCA(components)), ("knn", KNeighborsRegressor())]),
        {"knn__n_neighbors": [20, 40, 60, 80, 100]},
        cv=KFold(5, shuffle=True, random_state=42),
        scoring=make_scorer(negative_mean_l2),
    ).fit(x_train.astype(np.float64), screen_data.lfc[train])
    assert params["k"] == search.best_params_["knn__n_neighbors"]
    np.testing.assert_allclose(predictions, search.predict(x_test), rtol=1e-4, atol=1e-4)


def test_uncovered_test_rows_get_the_cell_lines_training_mean_and_are_scored(screen_data):
    half_only = screen_data.without_source("store_a").without_source("store_b").without_source("noise")
    fold = 0
    test_rows = np.flatnonzero(half_only.row_fold == fold)
    predicted = _predict_fold(half_only, test_rows, fold, "lfc", lambda rows: np.zeros((len(rows), half_only.lfc.shape[1])))
    for index, line in enumerate(half_only.cell_lines):
        test, predictions, covered = predicted[line]
        train = (half_only.row_cell_line == index) & (half_only.row_fold != fold)
        context_mean = half_only.lfc[train].mean(axis=0)
        assert 0 < covered.sum() < len(test)
        np.testing.assert_allclose(predictions[~covered], np.tile(context_mean, ((~covered).sum(), 1)), rtol=1e-6)
        assert np.all(predictions[covered] == 0)
        rows = score_rows(
            half_only, "lfc", fold, test, predictions, covered, method="fusion", embedding="f", store_path="p",
            store_id="i", params="{}", cell_line=line,
        )
        l2_all = next(r for r in rows if r["metric"] == "L2" and r["subset"] == "all")
        truth = half_only.lfc[test]
        assert np.isclose(l2_all["value"], np.linalg.norm(truth - predictions, axis=1).mean())
        assert (l2_all["n_test"], l2_all["n_covered"]) == (len(test), covered.sum())
        common = next(r for r in rows if r["metric"] == "L2" and r["subset"] == "common")
        assert common["n_test"] == covered.sum()
        assert np.isclose(common["value"], np.linalg.norm(truth[covered], axis=1).mean())
