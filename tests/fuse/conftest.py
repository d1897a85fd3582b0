"""A small simulated screen where fusing stores has something to gain.

Each perturbation has two independent latent factors ``a`` and ``b`` (4-d each); its response in cell line c is
``a @ A_c + b @ B_c`` plus measurement noise, over 50 genes. Stores:
  ``store_a``    a noisy random linear image of ``a`` (24-d): half of the signal
  ``store_b``    the same for ``b`` (24-d): the other half
  ``noise``      pure Gaussian noise (16-d), every perturbation
  ``half``       a noisy image of both factors (20-d), for only half of the perturbations
DEG labels are ``sign(lfc)`` where ``|lfc| > 3`` (5 % of perturbations unlabelled). So every single store's kNN
misses part of the signal, and a model reading ``store_a`` and ``store_b``
together can predict both halves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from embhub.datasets.prepared import PreparedDataset, PreparedDatasetWriter
from embhub.interchange import write_store
from embhub.store import EmbeddingStore

N_PERTS = 300
N_GENES = 50
CELL_LINES = ("line-A", "line-B")
STORE_NAMES = ("store_a", "store_b", "noise", "half")


@dataclass
class SimulatedScreen:
    dataset: PreparedDataset
    stores: dict[str, EmbeddingStore]
    pert_ids: np.ndarray
    folds: np.ndarray


def simulate_screen(root: Path, seed: int = 7, n_perts: int = N_PERTS) -> SimulatedScreen:
    rng = np.random.default_rng(seed)
    pert_ids = np.array([f"ENSG{i:011d}" for i in range(n_perts)])
    a = rng.normal(size=(n_perts, 4))
    b = rng.normal(size=(n_perts, 4))
    folds = np.arange(n_perts) % 5
    rng.shuffle(folds)
    writer = PreparedDatasetWriter(
        root / "sim.zarr",
        {"dataset": "sim", "kind": "simulated", "entity": "gene", "key_namespace": "ensembl_gene_id", "simulated": True},
        [f"G{g}" for g in range(N_GENES)],
        [f"gene{g}" for g in range(N_GENES)],
    )
    unlabelled = np.random.default_rng(seed + 1)
    shared_a, shared_b = rng.normal(size=(4, N_GENES)), rng.normal(size=(4, N_GENES))
    for line in CELL_LINES:
        lfc = a @ (shared_a + 0.5 * rng.normal(size=(4, N_GENES))) + b @ (shared_b + 0.5 * rng.normal(size=(4, N_GENES)))
        lfc += 0.3 * rng.normal(size=lfc.shape)
        deg = (np.sign(lfc) * (np.abs(lfc) > 3.0)).astype(np.int8)
        deg_mask = unlabelled.random(n_perts) > 0.05
        writer.add_cell_line(
            line, pert_ids, pert_ids, folds, lfc.astype(np.float32), np.full(n_perts, 50), np.full(n_perts, 2),
            deg=deg, deg_mask=deg_mask,
        )
    dataset = writer.finish()

    def image(latent: np.ndarray, dim: int) -> np.ndarray:
        return latent @ rng.normal(size=(latent.shape[1], dim)) + 0.1 * rng.normal(size=(len(latent), dim))

    half = np.sort(rng.choice(n_perts, n_perts // 2, replace=False))
    vectors = {
        "store_a": (pert_ids, image(a, 24)),
        "store_b": (pert_ids, image(b, 24)),
        "noise": (pert_ids, rng.normal(size=(n_perts, 16))),
        "half": (pert_ids[half], image(np.hstack([a, b])[half], 20)),
    }
    stores = {}
    for name, (ids, matrix) in vectors.items():
        stores[name] = write_store(
            root / f"{name}.zarr", ids, iter([matrix.astype(np.float32)]), matrix.shape[1],
            name=name, entity="gene", key_namespace="ensembl_gene_id", source="simulation",
        )
    return SimulatedScreen(dataset, stores, pert_ids, folds)


@pytest.fixture(scope="session")
def screen(tmp_path_factory) -> SimulatedScreen:
    return simulate_screen(tmp_path_factory.mktemp("fuse-sim"))


def small_config(**changes) -> "FusionConfig":
    """A model small enough for the CPU in a test, converging on the simulated screen in ~20 epochs."""
    from embhub.fuse.config import FusionConfig

    base = dict(d_model=32, n_heads=2, n_layers=2, max_epochs=20, patience=10, lr=5e-3, batch_size=64,
                input_dropout=0.0, warmup_epochs=2)
    return FusionConfig(**{**base, **changes})


@pytest.fixture(scope="session")
def screen_data(screen):
    from embhub.fuse.data import load_fusion_data

    return load_fusion_data(screen.dataset, list(screen.stores.values()))


@pytest.fixture(scope="session")
def fused(screen_data):
    """Fusion on all five folds of the simulated screen (fixed seed, no search), with the concat-kNN rows."""
    from embhub.fuse.run import run_fusion

    return run_fusion(screen_data, trials=0, config=small_config(), cpu_threads=1)
