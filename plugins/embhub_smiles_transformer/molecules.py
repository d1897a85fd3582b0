"""Canonical SMILES and InChIKeys for a batch of inputs, in this process or a pool of worker processes.

rdkit holds the GIL, and computing an InChIKey costs several times a small model's forward pass per
molecule, so on a GPU this step sets the pace; worker processes (started with ``spawn``, never
``fork``, because the parent holds torch and possibly CUDA) spread it over CPU cores.
"""

from __future__ import annotations

from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Sequence

from embhub.identity.drugs import InvalidMolecule, parse_smiles

Identified = tuple[str, str] | str
"""``(canonical_smiles, inchikey)``, or the one-line reason the SMILES was refused."""


def identify(smiles: str) -> Identified:
    try:
        molecule = parse_smiles(smiles)
    except InvalidMolecule as exc:
        return str(exc)
    return molecule.canonical_smiles, molecule.inchikey


def identify_all(values: Sequence[str], pool: Executor | None, workers: int) -> list[Identified]:
    """One result per value, in order."""
    if pool is None or len(values) < 2 * workers:
        return [identify(value) for value in values]
    chunk = max(1, len(values) // (4 * workers))
    return list(pool.map(identify, values, chunksize=chunk))


def worker_pool(workers: int) -> Executor | None:
    if workers < 1:
        return None
    import multiprocessing

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
