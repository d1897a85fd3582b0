"""Lasso regression with the study's inner grid search over alpha.

The study's ``GridSearchCV(Pipeline([StandardScaler(), PCA(100), Lasso(alpha)]), alpha ∈ {1e-3, 1e-2,
1e-1, 1}, cv=KFold(5, shuffle=True, random_state=42), scoring=−mean L2)``. scikit-learn's ``Lasso``
(defaults: intercept, max_iter 1000, tol 1e-4; one independent lasso per gene) is fitted on the scaler/PCA
scores of each inner split, computed once per split and shared with kNN (:class:`CVProjections`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from embhub.evaluate.knn import CVProjections
from embhub.evaluate.metrics import l2_per_row


@dataclass
class LassoFit:
    predictions: np.ndarray
    alpha: float
    cv_l2: dict[float, float]


def _lasso(alpha: float):
    from sklearn.linear_model import Lasso

    return Lasso(alpha=alpha)


def lasso_cv_predict(projections: CVProjections, train_rows: np.ndarray, y_train: np.ndarray, alpha_grid: tuple[float, ...]) -> LassoFit:
    """Select alpha by inner CV and predict the test rows ``(n_test, G)``; rows as in :func:`knn_cv_predict`."""
    from sklearn.exceptions import ConvergenceWarning

    y = y_train[train_rows]
    scores = np.zeros(len(alpha_grid))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for tr, va, train_scores, validation_scores in projections.splits:
            for column, alpha in enumerate(alpha_grid):
                model = _lasso(alpha).fit(train_scores, y[tr])
                scores[column] += -l2_per_row(y[va], model.predict(validation_scores)).mean()
        scores /= len(projections.splits)
        best = int(np.argmax(scores))
        model = _lasso(alpha_grid[best]).fit(projections.train_scores, y)
        predictions = model.predict(projections.test_scores)
    return LassoFit(predictions, float(alpha_grid[best]), {float(a): float(-s) for a, s in zip(alpha_grid, scores)})
