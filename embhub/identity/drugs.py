"""Drug identity: a SMILES becomes an rdkit molecule, its canonical SMILES and its InChIKey.

Drug stores are keyed by InChIKey, so two spellings of one molecule meet under one key. rdkit is
imported on first use, never when embhub is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class Molecule:
    mol: Any
    canonical_smiles: str
    inchikey: str


class InvalidMolecule(ValueError):
    """The SMILES cannot be parsed or has no InChIKey; the message says which."""


@lru_cache(maxsize=1)
def _rdkit():
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    return Chem


def parse_smiles(smiles: str) -> Molecule:
    Chem = _rdkit()
    text = smiles.strip()
    if not text:
        raise InvalidMolecule("empty SMILES")
    mol = Chem.MolFromSmiles(text)
    if mol is None:
        raise InvalidMolecule(f"invalid SMILES '{_short(text)}' (rdkit cannot parse it)")
    inchikey = Chem.MolToInchiKey(mol)
    if not inchikey:
        raise InvalidMolecule(f"SMILES '{_short(text)}' has no InChIKey")
    return Molecule(mol=mol, canonical_smiles=Chem.MolToSmiles(mol), inchikey=inchikey)


def rdkit_version() -> str:
    from rdkit import rdBase

    return rdBase.rdkitVersion


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
