"""The simple fusion baseline: the kNN protocol on the concatenation of standardised stores.

Each source is z-scored with statistics of the training perturbations that have it (so a 4,352-d and a 128-d
store enter on the same per-dimension scale), a missing source becomes zeros after standardisation (its
training mean), and the blocks are concatenated. The concatenation then goes through the study's kNN pipeline
(StandardScaler → PCA(100) → uniform kNN, k from the protocol grid by inner KFold(5, shuffle, seed 42) on
−mean L2, refit on all training perturbations; benchmark-protocol.md §5), per cell line and fold. Perturbations
that no store covers are left out of training and predicted by the cell line's training mean, as the
protocol does for a single store.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from embhub.evaluate.protocol import ProtocolSettings
from embhub.fuse.data import FusionData


def concatenated_sources(data: FusionData, train_perts: np.ndarray) -> np.ndarray:
    """``(n_perts, Σ dim_s)``: every source z-scored on ``train_perts`` that have it, missing → 0."""
    blocks = []
    for s, matrix in enumerate(data.sources):
        have = train_perts[data.present[train_perts, s]]
        values = matrix[have].astype(np.float64)
        mean = values.mean(axis=0) if have.size else np.zeros(matrix.shape[1])
        scale = values.std(axis=0) if have.size else np.ones(matrix.shape[1])
        scale[scale < 1e-8] = 1.0
        block = (matrix - mean) / scale
        block[~data.present[:, s]] = 0.0
        blocks.append(block.astype(np.float32))
    return np.concatenate(blocks, axis=1)


def protocol_knn(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, settings: ProtocolSettings) -> tuple[np.ndarray, dict[str, Any]]:
    """Predictions ``(n_test, G)`` of the protocol kNN and the chosen parameters.

    PCA keeps ``min(pca_components, dim, smallest inner training set)`` components and the k grid is cut to
    k ≤ the smallest inner training set (both only bite on small data; the chosen values are returned).
    """
    from sklearn.decomposition import PCA
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    inner_train = len(train_x) - -(-len(train_x) // settings.inner_folds)
    components = int(min(settings.pca_components, train_x.shape[1], inner_train))
    grid = [k for k in settings.k_grid if k <= inner_train] or [max(1, inner_train)]
    pipeline = Pipeline([
        ("scaler", StandardScaler()),
        ("pca", PCA(n_components=components, random_state=settings.inner_seed)),
        ("knn", KNeighborsRegressor()),
    ])
    search = GridSearchCV(
        pipeline,
        {"knn__n_neighbors": grid},
        cv=KFold(settings.inner_folds, shuffle=True, random_state=settings.inner_seed),
        scoring=make_scorer(_negative_mean_l2),
    )
    search.fit(train_x, train_y)
    params = {"k": int(search.best_params_["knn__n_neighbors"]), "pca_components": components, "k_grid": grid}
    return search.predict(test_x).astype(np.float32), params


def _negative_mean_l2(y: np.ndarray, y_hat: np.ndarray) -> float:
    return -float(np.linalg.norm(np.asarray(y) - np.asarray(y_hat), axis=1).mean())


def concat_knn_predictions(data: FusionData, fold: int, settings: ProtocolSettings) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]]:
    """Per cell line: (test rows, predictions ``(n_test, G)``, covered mask ``(n_test,)``, chosen params)."""
    out = {}
    covered = data.row_covered
    for line_index, line in enumerate(data.cell_lines):
        in_line = data.row_cell_line == line_index
        train = np.flatnonzero(in_line & (data.row_fold != fold))
        test = np.flatnonzero(in_line & (data.row_fold == fold))
        if not test.size:
            continue
        fallback = data.lfc[train].mean(axis=0)
        train_covered = train[covered[train]]
        features = concatenated_sources(data, np.unique(data.row_pert[train_covered]))
        predictions = np.tile(fallback, (len(test), 1)).astype(np.float32)
        test_covered = covered[test]
        params: dict[str, Any] = {"sources": data.source_names, "standardised": "per source, then concatenated"}
        if test_covered.any() and len(train_covered) >= 2:
            predicted, chosen = protocol_knn(
                features[data.row_pert[train_covered]], data.lfc[train_covered],
                features[data.row_pert[test[test_covered]]], settings,
            )
            predictions[test_covered] = predicted
            params.update(chosen)
        out[line] = (test, predictions, test_covered, params)
    return out


def params_json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
