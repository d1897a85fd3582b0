"""Importing GenePT's published gene embeddings (a pickled ``dict``: gene symbol → vector) as a store.

GenePT ships its vectors as Python pickles (e.g. ``GenePT_gene_embedding_ada_text.pickle``, 1,536-d
OpenAI ada-002 embeddings of NCBI summaries). Unpickling can run arbitrary code, so these files are read
with :class:`RestrictedUnpickler`, which resolves only the few globals that plain containers and
numpy arrays need (:data:`ALLOWED_GLOBALS`) and refuses everything else before it is called. Dicts,
lists, tuples, floats and strings need no globals at all. This closes the code-execution path of
``pickle.load``; what remains is a file that is large or malformed, which fails with an error.

Symbols are mapped to Ensembl ids through the gene identity layer; symbols that are unknown,
ambiguous, hold no finite vector of the common length, or map to an Ensembl id another symbol already
took are left out and listed in the store's provenance (``skipped``).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embhub.errors import InputError

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}
"""(module, name) pairs a GenePT pickle may reference: numpy array and scalar reconstruction only."""


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in an embedding file")
        return super().find_class(module, name)


def load_genept_pickle(path: Path) -> dict[str, Any]:
    """The pickled mapping, read without resolving any global outside :data:`ALLOWED_GLOBALS`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"GenePT file {path} does not exist")
    with open(path, "rb") as handle:
        try:
            data = RestrictedUnpickler(handle).load()
        except pickle.UnpicklingError as exc:
            raise InputError(f"{path} was refused: {exc}; only a dict of gene symbol → vector can be imported") from exc
        except (EOFError, ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"{path} is not a readable pickle ({exc}); is it a GenePT embedding file?") from exc
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path} holds a {type(data).__name__}, not a non-empty dict of gene symbol → vector")
    return data


@dataclass
class SkippedGene:
    symbol: str
    reason: str


@dataclass
class GeneptImport:
    store: Any
    imported: int
    skipped: list[SkippedGene]


def genept_vectors(data: dict[str, Any], ident) -> tuple[list[str], list[str], np.ndarray, list[SkippedGene]]:
    """(Ensembl ids, symbols, vectors ``(n, dim)``, skipped genes) from a symbol → vector mapping.

    A gene that several entries map to (its symbol, an alias, a previous symbol) keeps the entry filed
    under its approved symbol, else the first in the file.
    """
    arrays = {}
    skipped = []
    for symbol, value in data.items():
        try:
            arrays[str(symbol)] = np.asarray(value, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            skipped.append(SkippedGene(str(symbol), "value is not a numeric vector"))
    lengths = [len(v) for v in arrays.values()]
    if not lengths:
        raise InputError("the GenePT file holds no numeric vectors")
    dim = max(set(lengths), key=lengths.count)
    candidates = []
    for symbol, vector in arrays.items():
        if len(vector) != dim:
            skipped.append(SkippedGene(symbol, f"vector has length {len(vector)}; the file's vectors have {dim}"))
            continue
        if not np.isfinite(vector).all():
            skipped.append(SkippedGene(symbol, "vector holds non-finite values (NaN or infinity)"))
            continue
        resolution = ident.resolve(symbol)
        if not resolution.resolved:
            skipped.append(SkippedGene(symbol, ident.failure_reason(resolution)))
            continue
        candidates.append((symbol, vector, resolution))
    kept: dict[str, str] = {}
    for symbol, _, resolution in candidates:
        if resolution.ensembl_id not in kept or symbol == resolution.symbol:
            kept[resolution.ensembl_id] = symbol
    keys, symbols, rows = [], [], []
    for symbol, vector, resolution in candidates:
        if kept[resolution.ensembl_id] != symbol:
            skipped.append(SkippedGene(symbol, f"maps to {resolution.ensembl_id}, already taken by '{kept[resolution.ensembl_id]}'"))
            continue
        keys.append(resolution.ensembl_id)
        symbols.append(symbol)
        rows.append(vector)
    if not rows:
        raise InputError("no gene symbol of the GenePT file resolved to an Ensembl gene; is it a human gene file?")
    return keys, symbols, np.stack(rows).astype(np.float32), skipped


def import_genept(path: Path, out: Path, *, name: str | None = None, overwrite: bool = False) -> GeneptImport:
    """Write GenePT's pickled vectors as a gene store keyed by Ensembl id, labelled by symbol."""
    from embhub.identity.genes import load_gene_identity
    from embhub.interchange import write_store

    ident = load_gene_identity()
    keys, symbols, vectors, skipped = genept_vectors(load_genept_pickle(path), ident)
    store = write_store(
        Path(out),
        np.array(keys),
        iter([vectors]),
        vectors.shape[1],
        name=name or Path(path).stem,
        entity="gene",
        key_namespace="ensembl_gene_id",
        source=str(path),
        labels={"symbol": np.array(symbols)},
        extra={
            "format": "GenePT pickle (dict of gene symbol → vector), read with a restricted unpickler",
            "gene_id_release": ident.release,
            "symbols_in_file": len(keys) + len(skipped),
            "skipped": [{"symbol": s.symbol, "reason": s.reason} for s in skipped],
        },
        overwrite=overwrite,
    )
    return GeneptImport(store, len(keys), skipped)
