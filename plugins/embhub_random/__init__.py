"""Seeded random vectors for genes and drugs: the negative control every comparison needs.

Each key's vector is drawn from a generator seeded by (seed, key), so it does not depend on batching,
input order or which other items are embedded — a resumed extraction equals an uninterrupted one, and
two stores with the same seed agree on shared keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from embhub.hookspecs import hookimpl
from embhub.identity.genes import GENE_INPUT_COLUMNS
from embhub.provider import Embedded, Item, Provider


def random_vector(key: str, seed: int, dim: int, distribution: str) -> np.ndarray:
    digest = hashlib.sha256(f"{seed}\t{key}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    if distribution == "uniform":
        return rng.random(dim, dtype=np.float64).astype(np.float32)
    return rng.standard_normal(dim).astype(np.float32)


@dataclass
class RandomParameters:
    dim: int = field(default=100, metadata={"help": "vector length (the study's random baseline uses 100)"})
    seed: int = field(default=0, metadata={"help": "seed; vectors depend only on (seed, key)"})
    distribution: Literal["uniform", "normal"] = field(
        default="uniform", metadata={"help": "uniform on [0, 1) as in the study, or standard normal"}
    )

    def __post_init__(self):
        if self.dim < 1:
            raise ValueError(f"dim must be ≥ 1, got {self.dim}")


class RandomGeneVectors(Provider):
    name = "random-gene"
    entity = "gene"
    id_namespace = "gene"
    key_namespace = "ensembl_gene_id"
    version = "1"
    licence = "Apache-2.0"
    citation = "negative control (Cole et al. 2026 use uniform random 100-d embeddings)"
    description = "seeded random vectors keyed by Ensembl gene id"
    input_columns = GENE_INPUT_COLUMNS
    default_batch_size = 4096
    Parameters = RandomParameters

    @property
    def dim(self) -> int:
        return self.parameters.dim

    def embed(self, items: Sequence[Item]) -> Embedded:
        from embhub.identity.genes import load_gene_identity, resolve_items

        resolved, failures = resolve_items(items, load_gene_identity())
        p = self.parameters
        ids = [item.input_id for item, _ in resolved]
        keys = [r.ensembl_id for _, r in resolved]
        vectors = np.array([random_vector(k, p.seed, p.dim, p.distribution) for k in keys], np.float32).reshape(-1, p.dim)
        return Embedded(ids, keys, vectors, failures, labels={"symbol": [r.symbol or "" for _, r in resolved]})

    def provenance(self):
        from embhub.identity.genes import load_gene_identity

        return {"gene_id_release": load_gene_identity().release}


class RandomDrugVectors(Provider):
    name = "random-drug"
    entity = "drug"
    id_namespace = "smiles"
    key_namespace = "inchikey"
    version = "1"
    licence = "Apache-2.0"
    citation = RandomGeneVectors.citation
    description = "seeded random vectors keyed by InChIKey"
    input_columns = ("smiles", "canonical_smiles", "isomeric_smiles")
    requires = ("rdkit",)
    default_batch_size = 4096
    Parameters = RandomParameters

    @property
    def dim(self) -> int:
        return self.parameters.dim

    def embed(self, items: Sequence[Item]) -> Embedded:
        from embhub.identity.drugs import parse_items

        p = self.parameters
        parsed, failures = parse_items(items)
        keys = [molecule.inchikey for _, molecule in parsed]
        vectors = np.array([random_vector(k, p.seed, p.dim, p.distribution) for k in keys], np.float32).reshape(-1, p.dim)
        return Embedded([item.input_id for item, _ in parsed], keys, vectors, failures)


@hookimpl
def register_providers(register):
    register(RandomGeneVectors)
    register(RandomDrugVectors)
