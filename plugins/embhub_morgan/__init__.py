"""Morgan (ECFP-style) fingerprints from rdkit, as a built-in embhub plugin.

Registered through the ``embhub`` entry-point group like any third-party plugin. rdkit is imported
only when a batch is embedded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from embhub.hookspecs import hookimpl
from embhub.provider import Embedded, Item, Provider


class MorganFingerprints(Provider):
    name = "morgan"
    entity = "drug"
    id_namespace = "smiles"
    key_namespace = "inchikey"
    version = "1"
    licence = "BSD-3-Clause (rdkit)"
    citation = (
        "Rogers & Hahn (2010) Extended-connectivity fingerprints, J. Chem. Inf. Model. 50:742; "
        "RDKit: Open-source cheminformatics, https://www.rdkit.org"
    )
    description = "Morgan/ECFP fingerprints (bits or counts) from rdkit's fingerprint generator"
    requires = ("rdkit",)
    input_columns = ("smiles", "canonical_smiles", "isomeric_smiles")
    default_batch_size = 1024

    @dataclass
    class Parameters:
        radius: int = field(default=2, metadata={"help": "bond radius (2 ~ ECFP4)"})
        n_bits: int = field(default=2048, metadata={"help": "fingerprint length"})
        counts: bool = field(default=False, metadata={"help": "count how often each feature occurs instead of bits"})
        chirality: bool = field(default=False, metadata={"help": "include chirality in atom invariants"})

        def __post_init__(self):
            if self.radius < 0:
                raise ValueError(f"radius must be ≥ 0, got {self.radius}")
            if self.n_bits < 1:
                raise ValueError(f"n_bits must be ≥ 1, got {self.n_bits}")

    @property
    def dim(self) -> int:
        return self.parameters.n_bits

    def _generator(self):
        if getattr(self, "_cached_generator", None) is None:
            from rdkit.Chem import rdFingerprintGenerator

            p = self.parameters
            self._cached_generator = rdFingerprintGenerator.GetMorganGenerator(
                radius=p.radius, fpSize=p.n_bits, includeChirality=p.chirality
            )
        return self._cached_generator

    def embed(self, items: Sequence[Item]) -> Embedded:
        from embhub.identity.drugs import parse_items

        generator = self._generator()
        fingerprint = generator.GetCountFingerprintAsNumPy if self.parameters.counts else generator.GetFingerprintAsNumPy
        parsed, failures = parse_items(items)
        vectors = [fingerprint(molecule.mol).astype(np.float32) for _, molecule in parsed]
        return Embedded(
            [item.input_id for item, _ in parsed],
            [molecule.inchikey for _, molecule in parsed],
            np.stack(vectors) if vectors else np.zeros((0, self.dim), np.float32),
            failures,
            labels={"canonical_smiles": [molecule.canonical_smiles for _, molecule in parsed]},
        )

    def provenance(self):
        from embhub.identity.drugs import rdkit_version

        return {"rdkit": rdkit_version(), "smiles_canonicalisation": "rdkit MolToSmiles; key = rdkit MolToInchiKey"}


@hookimpl
def register_providers(register):
    register(MorganFingerprints)
