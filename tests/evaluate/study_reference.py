"""An independent implementation of the study's LFC protocol with scikit-learn, written as the study's
benchmark scripts do it (GridSearchCV over a StandardScaler → PCA → estimator pipeline, KFold(5, shuffle,
random_state=42), scoring −mean L2; DummyRegressor fallback for perturbations without an embedding).
PCA uses the exact solver (embhub's documented deterministic choice)."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.decomposition import PCA
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import Lasso
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def neg_l2(y, y_hat):
    return -np.mean(np.linalg.norm(y - y_hat, axis=1))


def study_metrics(y, y_hat):
    y = np.asarray(y, dtype=np.float64)
    y_hat = np.asarray(y_hat, dtype=np.float64)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pearson = [pearsonr(a, b)[0] if np.ptp(b) > 0 else np.nan for a, b in zip(y, y_hat)]
            spearman = [spearmanr(a, b)[0] if np.ptp(b) > 0 else np.nan for a, b in zip(y, y_hat)]
    return {
        "L2": float(np.mean(np.linalg.norm(y - y_hat, axis=1))),
        "MSE": float(np.mean((y - y_hat) ** 2)),
        "MAE": float(np.mean(np.abs(y - y_hat))),
        "Pearson": float(np.mean(pearson)),
        "Spearman": float(np.mean(spearman)),
    }


def grid_search(estimator: str, n_components: int | None, k_grid, alpha_grid):
    steps = []
    if n_components is not None:
        steps = [("scaler", StandardScaler()), ("pca", PCA(n_components=n_components, svd_solver="full"))]
    if estimator == "knn":
        steps.append(("model", KNeighborsRegressor()))
        grid = {"model__n_neighbors": list(k_grid)}
    else:
        steps.append(("model", Lasso()))
        grid = {"model__alpha": list(alpha_grid)}
    return GridSearchCV(Pipeline(steps), grid, cv=KFold(n_splits=5, shuffle=True, random_state=42), scoring=make_scorer(neg_l2))


def study_predict(estimator, x_train, y_train, x_test, available_train, available_test, y_train_all, n_components,
                  k_grid=(20, 40, 60, 80, 100), alpha_grid=(1e-3, 1e-2, 1e-1, 1.0)):
    """Predictions for every test row and the selected hyperparameter."""
    search = grid_search(estimator, n_components, k_grid, alpha_grid).fit(x_train[available_train], y_train[available_train])
    fallback = DummyRegressor().fit(np.zeros((len(y_train_all), 1)), y_train_all)
    predictions = fallback.predict(np.zeros((len(available_test), 1)))
    if available_test.any():
        predictions[available_test] = search.predict(x_test[available_test])
    selected = next(iter(search.best_params_.values()))
    return predictions, selected
