"""The study's baselines and controls (``pkg/benchmark/bench_*_lfc.py``; protocol §4.4).

- no change: predict zeros; context mean: the mean training response of the cell line (DummyRegressor);
- random embeddings: uniform [0, 1) vectors of the PCA size, drawn independently for training and test
  rows, run through the same scaler/PCA/estimator pipeline. The study drew them unseeded; embhub seeds
  them from :data:`~embhub.evaluate.protocol.RANDOM_EMBEDDING_SEED`, the cell line and the fold;
- idealized PCA (positive control, *leaks test labels on purpose*): the PCA scores of the responses of
  the training **and** test perturbations, used as the embedding without scaler or second PCA.
"""

from __future__ import annotations

import zlib

import numpy as np

from embhub.evaluate.projection import pca_scores


def random_embeddings(n_train: int, n_test: int, dim: int, seed: int, cell_line: str, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded uniform random embeddings ``(n_train, dim)`` and ``(n_test, dim)`` (independent draws)."""
    rng = np.random.default_rng([seed, zlib.crc32(cell_line.encode()), fold])
    return rng.random((n_train, dim)), rng.random((n_test, dim))


def idealized_embeddings(y_train: np.ndarray, y_test: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA(n_components) scores of ``concat(y_train, y_test)``, split back into train and test rows."""
    scores = pca_scores(np.vstack([y_train, y_test]), n_components)
    return scores[: len(y_train)], scores[len(y_train) :]


def most_frequent_class(labels: np.ndarray) -> np.ndarray:
    """Per-gene most frequent training class ``(G,)`` in {−1, 0, +1}, counting one extra row per class
    (the study's DummyClassifier fitted with one dummy row per class); ties go to the lowest class."""
    counts = np.stack([(labels == c).sum(axis=0) + 1 for c in (-1, 0, 1)])
    return np.array([-1, 0, 1], dtype=np.int8)[np.argmax(counts, axis=0)]
