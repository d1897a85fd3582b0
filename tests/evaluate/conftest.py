"""Small prepared datasets and stores built in tmp dirs: responses driven by a latent gene factor, so an
embedding that sees the factor beats the context mean."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from embhub.datasets.prepared import PreparedDatasetWriter, write_ceiling
from embhub.interchange import write_store

N_PERTS = 200
N_GENES = 40
LATENT = 6


@dataclass
class Toy:
    path: Path
    pert_ids: np.ndarray
    latent: np.ndarray
    lfc: dict[str, np.ndarray]
    folds: dict[str, np.ndarray]
    deg: dict[str, np.ndarray]


def gene_ids(n: int, offset: int = 0) -> np.ndarray:
    return np.array([f"ENSG{i + offset:011d}" for i in range(n)])


def build_dataset(path: Path, cell_lines=("K-562", "Hep-G2"), n_perts=N_PERTS, n_genes=N_GENES, seed=0, name="toy",
                  entity="gene", key_namespace="ensembl_gene_id", with_deg=True, with_ceiling=True) -> Toy:
    rng = np.random.default_rng(seed)
    perts = gene_ids(n_perts, offset=1000)
    latent = rng.normal(size=(n_perts, LATENT))
    writer = PreparedDatasetWriter(
        path,
        {"dataset": name, "kind": "lfc", "entity": entity, "key_namespace": key_namespace, "simulated": True},
        gene_ids(n_genes),
        [f"G{i}" for i in range(n_genes)],
    )
    lfcs, folds_by_line, degs = {}, {}, {}
    for line in cell_lines:
        loading = rng.normal(size=(LATENT, n_genes))
        lfc = np.tanh(latent @ loading) * 0.5 + rng.normal(scale=0.3, size=(n_perts, n_genes)) + rng.normal(scale=0.2, size=n_genes)
        folds = rng.permutation(np.arange(n_perts) % 5)
        deg = np.where(lfc > 0.45, 1, np.where(lfc < -0.45, -1, 0)).astype(np.int8)
        deg_mask = np.ones(n_perts, bool)
        deg_mask[rng.choice(n_perts, 7, replace=False)] = False
        writer.add_cell_line(line, perts, [f"P{i}" for i in range(n_perts)], folds, lfc, np.full(n_perts, 50),
                             np.full(n_perts, 4), deg=deg if with_deg else None, deg_mask=deg_mask if with_deg else None)
        lfcs[line], folds_by_line[line], degs[line] = lfc.astype(np.float32), folds, deg
    writer.finish()
    if with_ceiling:
        for line in cell_lines:
            l2 = rng.uniform(1.0, 2.0, size=(n_perts, 2))
            l2.sort(axis=1)
            write_ceiling(path, line, [0.5, 0.9], l2)
    return Toy(path, perts, latent, lfcs, folds_by_line, degs)


def build_store(path: Path, ids, vectors, name: str, entity="gene", key_namespace="ensembl_gene_id"):
    vectors = np.asarray(vectors, dtype=np.float32)
    return write_store(path, np.asarray(ids), iter([vectors]), vectors.shape[1], name=name, entity=entity,
                       key_namespace=key_namespace, source="test fixture")


def informative_vectors(toy: Toy, dim: int, seed: int, noise: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(LATENT, dim))
    return toy.latent @ mixing + rng.normal(scale=noise, size=(len(toy.pert_ids), dim)) + rng.normal(size=dim) * 3


@pytest.fixture
def toy(tmp_path) -> Toy:
    return build_dataset(tmp_path / "toy.zarr")


@pytest.fixture
def stores(tmp_path, toy):
    """Three stores: wide (d=150, full coverage), partial (d=110, 90% coverage + unknown extra ids),
    narrow (d=40 < PCA size)."""
    rng = np.random.default_rng(5)
    wide = build_store(tmp_path / "wide.zarr", toy.pert_ids, informative_vectors(toy, 150, 1), "wide")
    keep = np.sort(rng.choice(len(toy.pert_ids), int(0.9 * len(toy.pert_ids)), replace=False))
    extra = gene_ids(15, offset=900000)
    partial_vectors = np.vstack([informative_vectors(toy, 110, 2)[keep], rng.normal(size=(15, 110))])
    partial = build_store(tmp_path / "partial.zarr", np.concatenate([toy.pert_ids[keep], extra]), partial_vectors, "partial")
    narrow = build_store(tmp_path / "narrow.zarr", toy.pert_ids, informative_vectors(toy, 40, 3, noise=1.0), "narrow")
    return {"wide": wide, "partial": partial, "narrow": narrow}


@pytest.fixture(autouse=True)
def single_blas_thread():
    """Tiny matrices: one BLAS thread is faster and avoids oversubscription on busy CI machines."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
