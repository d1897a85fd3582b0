"""A graph autoencoder (Kipf & Welling 2016) trained self-supervised on a gene graph, in torch.

Encoder: two graph-convolution layers, ``Z = Â relu(Â X W1) W2`` with ``Â = D̃^{-1/2}(A + I)D̃^{-1/2}``
(weighted by combined score). Decoder: ``σ(z_i · z_j)``. Each epoch scores every network edge
against as many node pairs drawn uniformly at random (negative sampling) with binary
cross-entropy. ``X`` is the graph's Laplacian eigenmap, so the start is already structured.

On the CPU a run is deterministic for a given seed (seeded generators, deterministic algorithms
only); on a GPU sparse kernels may add float rounding noise between runs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

EpochCallback = Callable[[int, int, float], None]
"""Called after each epoch with (epoch, total epochs, loss)."""


@dataclass
class TrainingSettings:
    dim: int = 256
    hidden_dim: int = 256
    epochs: int = 200
    learning_rate: float = 0.01
    negatives_per_edge: float = 1.0
    seed: int = 0
    device: str = "auto"


@dataclass
class TrainingResult:
    embedding: np.ndarray
    """``(n_nodes, dim)`` float32 node embeddings."""
    losses: list[float]
    device: str


def train_graph_autoencoder(
    edges: np.ndarray,
    weights: np.ndarray,
    features: np.ndarray,
    settings: TrainingSettings,
    on_epoch: EpochCallback | None = None,
) -> TrainingResult:
    """Train on ``edges`` ``(n_edges, 2)`` (undirected, each pair once) with node ``features`` ``(n_nodes, f)``."""
    import torch

    from embhub.accel import pick_device

    device = pick_device(settings.device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    try:
        torch.manual_seed(settings.seed)
        generator = torch.Generator(device="cpu").manual_seed(settings.seed)
        n_nodes = features.shape[0]
        propagation = _normalised_adjacency(edges, weights, n_nodes).to(device)
        x = torch.as_tensor(features, dtype=torch.float32, device=device)
        model = _build_encoder(features.shape[1], settings.hidden_dim, settings.dim).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
        positives = torch.as_tensor(edges, dtype=torch.long, device=device)
        n_negatives = max(1, int(round(len(edges) * settings.negatives_per_edge)))
        losses: list[float] = []
        for epoch in range(1, settings.epochs + 1):
            model.train()
            optimiser.zero_grad()
            z = model(x, propagation)
            negatives = torch.randint(0, n_nodes, (n_negatives, 2), generator=generator).to(device)
            loss = _link_loss(z, positives, negatives)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            if on_epoch:
                on_epoch(epoch, settings.epochs, losses[-1])
        model.eval()
        with torch.no_grad():
            embedding = model(x, propagation).float().cpu().numpy()
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    return TrainingResult(embedding=embedding.astype(np.float32), losses=losses, device=str(device))


def _normalised_adjacency(edges: np.ndarray, weights: np.ndarray, n_nodes: int):
    import torch

    loops = np.arange(n_nodes)
    rows = np.concatenate([edges[:, 0], edges[:, 1], loops])
    cols = np.concatenate([edges[:, 1], edges[:, 0], loops])
    values = np.concatenate([weights, weights, np.ones(n_nodes)])
    degree = np.bincount(rows, weights=values, minlength=n_nodes)
    values = values / np.sqrt(degree[rows] * degree[cols])
    order = np.lexsort((cols, rows))
    indices = torch.as_tensor(np.stack([rows[order], cols[order]]), dtype=torch.long)
    values = torch.as_tensor(values[order], dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
        matrix = torch.sparse_coo_tensor(indices, values, (n_nodes, n_nodes), check_invariants=True).coalesce()
        return matrix.to_sparse_csr()


def _link_loss(z, positives, negatives):
    import torch
    import torch.nn.functional as F

    positive_logits = (z[positives[:, 0]] * z[positives[:, 1]]).sum(dim=1)
    negative_logits = (z[negatives[:, 0]] * z[negatives[:, 1]]).sum(dim=1)
    logits = torch.cat([positive_logits, negative_logits])
    targets = torch.cat([torch.ones_like(positive_logits), torch.zeros_like(negative_logits)])
    return F.binary_cross_entropy_with_logits(logits, targets)


def _build_encoder(n_features: int, hidden_dim: int, dim: int):
    """Two graph-convolution layers; defined here so torch is imported only when training."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self, n_features: int, hidden_dim: int, dim: int):
            super().__init__()
            self.first = torch.nn.Linear(n_features, hidden_dim)
            self.second = torch.nn.Linear(hidden_dim, dim)

        def forward(self, x, propagation):
            hidden = torch.relu(torch.sparse.mm(propagation, self.first(x)))
            return torch.sparse.mm(propagation, self.second(hidden))

    return Encoder(n_features, hidden_dim, dim)
