"""A small seeded ``embhub datasets demo`` screen and the README demo's gene stores, built the way users do.

Stores: the STRING eigenmap and GNN of the bundled subgraph (``string-spectral-demo``, ``string-gnn-demo``),
``random-gene-100`` (pure noise), and ``half``: the GNN store exported for a seeded half of the
perturbations (``embhub.interchange.write_store``), so one source is missing for the other half.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embhub.datasets.prepared import PreparedDataset
from embhub.interchange import write_store
from embhub.store import EmbeddingStore

from tests.support.cli import run_cli

DEMO_CELLS = 12_000
DEMO_PERTURBATIONS = 200
DEMO_SEED = 0
EXTRACTED = ("string-spectral-demo", "string-gnn-demo", "random-gene-100")
NOISE_STORE = "random-gene-100"
HALF_STORE = "half"
HALF_OF = "string-gnn-demo"


@dataclass
class DemoBench:
    dataset: PreparedDataset
    stores: dict[str, EmbeddingStore]


def build_demo_bench(root: Path) -> DemoBench:
    """Simulate and prepare the demo (no ceiling), extract the stores, and export the half-coverage store."""
    dataset_path, perturbations = root / "demo.zarr", root / "perturbations.tsv"
    _ok(run_cli(
        "datasets", "demo", "--cells", DEMO_CELLS, "--perturbations", DEMO_PERTURBATIONS, "--seed", DEMO_SEED,
        "--no-ceiling", "--out", dataset_path,
    ))
    _ok(run_cli("datasets", "perturbations", dataset_path, "--out", perturbations))
    stores = {}
    for model in EXTRACTED:
        _ok(run_cli("extract", "--model", model, "--input", perturbations, "--out", root / f"{model}.zarr"))
        stores[model] = EmbeddingStore.open(root / f"{model}.zarr")
    stores[HALF_STORE] = half_store(stores[HALF_OF], root / f"{HALF_STORE}.zarr")
    return DemoBench(PreparedDataset.open(dataset_path), stores)


def half_store(store: EmbeddingStore, out: Path, seed: int = DEMO_SEED) -> EmbeddingStore:
    keep = np.sort(np.random.default_rng(seed).choice(len(store), len(store) // 2, replace=False))
    vectors = store.vectors(keep)
    return write_store(
        out, store.ids[keep], iter([vectors]), store.dim, name=HALF_STORE, entity=store.entity,
        key_namespace=store.key_namespace, source=f"half of {store.name}",
    )


def _ok(outcome) -> None:
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
