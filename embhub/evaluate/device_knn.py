"""The kNN protocol on a CUDA GPU: the same computation as :mod:`embhub.evaluate.knn`, in float64 torch.

Scaler, PCA (a full symmetric eigendecomposition of the smaller of scatter and Gram matrix), neighbour
search, the validation L2 of every k from the response Gram matrix, and the refit's prediction all run on the
device; only the projections and predictions come back. Results equal the CPU path to rounding; where two
training rows lie at exactly the same distance from a query across the k-th place, the GPU's top-k may
order them differently from the CPU's stable sort (scikit-learn's order).

``device`` is any torch device, so the tests run this code on the CPU against the NumPy path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embhub.evaluate.knn import CVProjections, KnnFit, usable_grid
from embhub.evaluate.projection import inner_kfold, inverse, scaler_scale, spanned_roots


def cuda_device(requested: str) -> Any | None:
    """The CUDA device evaluate's kNN runs on for ``--device`` ``requested``, or None for the NumPy path.

    Imports torch only when a GPU can be there (an NVIDIA driver is loaded, or the user asked for CUDA). It also
    makes the first CUDA linear-algebra call here, on the calling thread: torch loads that library lazily, and
    a first call from several worker threads at once fails ("lazy wrapper should be called at most once",
    pytorch/pytorch#90613).
    """
    import os

    if requested in ("cpu", "mps"):
        return None
    if requested == "auto" and not os.path.exists("/proc/driver/nvidia/version"):
        return None
    import torch

    from embhub.accel import pick_device

    device = pick_device(requested)
    if device.type != "cuda":
        return None
    torch.linalg.eigh(torch.eye(2, dtype=torch.float64, device=device))
    return device


def _scaled_scores(torch, x: Any, rows: Any, q: int, others: list[Any]) -> list[Any]:
    """Scaler + PCA fitted on ``x[rows]``; the scores of those rows, then of each tensor in ``others``."""
    fit = x[rows]
    n, d = fit.shape
    mean = fit.mean(dim=0)
    var = ((fit - mean) ** 2).mean(dim=0)
    scale = torch.as_tensor(scaler_scale(mean.cpu().numpy(), var.cpu().numpy(), n), device=x.device)
    z = (fit - mean) / scale
    centre = z.mean(dim=0)
    z = z - centre
    if d <= n:
        basis = torch.linalg.eigh(z.T @ z).eigenvectors[:, -q:].flip(1)
    else:
        values, vectors = torch.linalg.eigh(z @ z.T)
        values, vectors = values[-q:].flip(0), vectors[:, -q:].flip(1)
        inverse_roots = inverse(spanned_roots(values.cpu().numpy(), n))
        basis = (z.T @ vectors) * torch.as_tensor(inverse_roots, device=x.device)
    return [z @ basis] + [(((other - mean) / scale) - centre) @ basis for other in others]


def fit_projections(
    x_train: np.ndarray, x_test: np.ndarray, n_components: int, n_splits: int, seed: int | None, device: Any
) -> CVProjections:
    """:meth:`CVProjections.fit` computed on ``device`` (scaler + PCA per inner split and for the refit)."""
    import torch

    x = torch.as_tensor(np.asarray(x_train, dtype=np.float64), device=device)
    test = torch.as_tensor(np.asarray(x_test, dtype=np.float64), device=device)
    index_pairs = inner_kfold(len(x_train), n_splits, seed)
    q = min(n_components, x.shape[1], min(len(tr) for tr, _ in index_pairs))
    splits = []
    for tr, va in index_pairs:
        train_scores, validation_scores = _scaled_scores(
            torch, x, torch.as_tensor(tr, device=device), q, [x[torch.as_tensor(va, device=device)]]
        )
        splits.append((tr, va, train_scores.cpu().numpy(), validation_scores.cpu().numpy()))
    everything = torch.arange(len(x_train), device=device)
    train_scores, test_scores = _scaled_scores(torch, x, everything, q, [test])
    return CVProjections(splits, train_scores.cpu().numpy(), test_scores.cpu().numpy(), q)


def _sorted_neighbours(torch, train: Any, query: Any, k: int) -> Any:
    k = min(k, train.shape[0])
    squared = (query * query).sum(1)[:, None] - 2.0 * (query @ train.T) + (train * train).sum(1)[None, :]
    return torch.topk(squared, k, dim=1, largest=False, sorted=True).indices


def knn_predict(
    projections: CVProjections,
    gram: np.ndarray,
    train_rows: np.ndarray,
    y_train: np.ndarray,
    k_grid: tuple[int, ...],
    device: Any,
) -> KnnFit:
    """:func:`embhub.evaluate.knn.knn_cv_predict` computed on ``device``."""
    import torch

    grid = usable_grid(tuple(k_grid), projections.smallest_fit)
    k_max = max(grid)
    gram_t = torch.as_tensor(gram, dtype=torch.float64, device=device)
    rows = torch.as_tensor(train_rows, device=device)
    scores = np.zeros(len(grid))
    for tr, va, train_scores, validation_scores in projections.splits:
        neighbours = _sorted_neighbours(
            torch, torch.as_tensor(train_scores, device=device), torch.as_tensor(validation_scores, device=device), k_max
        )
        query = rows[torch.as_tensor(va, device=device)]
        chosen = rows[torch.as_tensor(tr, device=device)][neighbours]
        own = gram_t[query, query]
        cross = gram_t[query[:, None], chosen].cumsum(dim=1)
        among = gram_t[chosen[:, :, None], chosen[:, None, :]].cumsum(dim=1).cumsum(dim=2)
        for column, k in enumerate(grid):
            squared = own - 2.0 * cross[:, k - 1] / k + among[:, k - 1, k - 1] / (k * k)
            scores[column] -= float(squared.clamp(min=0.0).sqrt().mean())
    scores /= len(projections.splits)
    best = int(np.argmax(scores))
    k = grid[best]
    neighbours = _sorted_neighbours(
        torch, torch.as_tensor(projections.train_scores, device=device), torch.as_tensor(projections.test_scores, device=device), k
    )
    y = torch.as_tensor(np.asarray(y_train, dtype=np.float64), device=device)[rows]
    selection = torch.zeros((neighbours.shape[0], y.shape[0]), dtype=torch.float64, device=device)
    selection.scatter_(1, neighbours, 1.0)
    predictions = ((selection @ y) / k).cpu().numpy()
    return KnnFit(predictions, k, {kk: float(-s) for kk, s in zip(grid, scores)})
