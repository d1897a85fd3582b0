"""The simple fusion baseline: the kNN protocol on the concatenation of standardised stores.

Each source is z-scored with statistics of the training perturbations that have it (so a 4,352-d and a 128-d
store enter on the same per-dimension scale), a missing source becomes zeros after standardisation (its
training mean), and the blocks are concatenated. The concatenation then goes through the study's kNN pipeline
(StandardScaler → PCA(100) → uniform kNN, k from the protocol grid by inner KFold(5, shuffle, seed 42) on
−mean L2, refit on all training perturbations; benchmark-protocol.md §5) of :mod:`embhub.evaluate.knn`, per
cell line and fold. Perturbations
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
    """Predictions ``(n_test, G)`` of ``embhub evaluate``'s protocol kNN and the chosen parameters."""
    from embhub.evaluate.knn import CVProjections, knn_cv_predict

    projections = CVProjections.fit(train_x, test_x, settings.pca_components, settings.inner_folds, settings.inner_seed)
    y = np.asarray(train_y, dtype=np.float64)
    fit = knn_cv_predict(projections, y @ y.T, np.arange(len(y)), y, settings.k_grid)
    params = {"k": fit.k, "pca_components": projections.n_components, "cv_l2": fit.cv_l2}
    return fit.predictions.astype(np.float32), params


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
