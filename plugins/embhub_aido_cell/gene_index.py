"""AIDO.Cell's fixed 19,264-gene input index, keyed to Ensembl through embhub's gene identity layer.

The index (``OS_scRNA_gene_index.19264.tsv``, columns ``gene_name`` and ``index``) is the gene order of
scFoundation's pretraining data, reused unchanged by AIDO.Cell: a cell enters the model as the expression
vector over these genes in this order, so position *i* *is* gene *i* (see :mod:`embhub_aido_cell.checkpoint`).
GenBio ships it in its ``modelgenerator`` package under a non-commercial licence, so embhub does not bundle it:
it is read from an installed ``modelgenerator`` (found without importing it) or from a path the user gives.
Its names are HGNC symbols of the time; each is resolved by the identity layer (approved symbol, then
previous symbol, then alias). Names that do not resolve to exactly one Ensembl gene cannot be keyed and are
left out. When two positions resolve to one Ensembl gene, the position whose name is the gene's approved
symbol wins, else the lower position; the other is left out too (counted in the provenance).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from embhub.errors import InputError
from embhub.identity.genes import GeneIdentity

INDEX_FILE = "OS_scRNA_gene_index.19264.tsv"
INDEX_SIZE = 19264


@dataclass(frozen=True)
class IndexGene:
    position: int
    index_symbol: str
    ensembl_id: str
    symbol: str


@dataclass
class KeyedGeneIndex:
    """The index genes that map to one Ensembl id each: ``by_ensembl`` (Ensembl id → gene)."""

    size: int
    sha256: str
    by_ensembl: dict[str, IndexGene]
    unresolved: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def locate_gene_index(given: str = "") -> Path:
    """``given``, or the index file inside an installed ``modelgenerator``; a one-line error when neither exists."""
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise InputError(f"gene_index {path} does not exist; give the path of {INDEX_FILE}")
        return path
    spec = importlib.util.find_spec("modelgenerator")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "cell" / "gene_lists" / INDEX_FILE
        if path.is_file():
            return path
    raise InputError(
        f"AIDO.Cell's gene index {INDEX_FILE} ships with GenBio's modelgenerator package (GenBio AI Community "
        "License, non-commercial): 'pip install --no-deps modelgenerator', or set gene_index=PATH to the file"
    )


@lru_cache(maxsize=4)
def index_symbols(path: Path) -> tuple[tuple[str, ...], str]:
    """The index's gene names in position order, and the file's sha256; the file's layout is checked."""
    raw = Path(path).read_bytes()
    try:
        lines = raw.decode().splitlines()
        rows = [line.split("\t") for line in lines[1:]]
        layout_ok = lines[0].split("\t") == ["gene_name", "index"] and [int(r[1]) for r in rows] == list(range(INDEX_SIZE))
    except (UnicodeDecodeError, IndexError, ValueError):
        layout_ok = False
    if not layout_ok:
        raise InputError(
            f"{path} is not AIDO.Cell's {INDEX_FILE} (columns gene_name, index; positions 0–{INDEX_SIZE - 1} in "
            "order); give the file from GenBio's modelgenerator"
        )
    return tuple(r[0] for r in rows), hashlib.sha256(raw).hexdigest()


def key_gene_index(ident: GeneIdentity, path: Path) -> KeyedGeneIndex:
    """Resolve every index name of the file at ``path`` to an Ensembl id; see the module docstring for the rules."""
    names, sha256 = index_symbols(Path(path))
    keyed = KeyedGeneIndex(size=len(names), sha256=sha256, by_ensembl={})
    for position, name in enumerate(names):
        resolution = ident.resolve(name)
        if not resolution.resolved:
            keyed.unresolved.append(name)
            continue
        gene = IndexGene(position, name, resolution.ensembl_id, resolution.symbol)
        held = keyed.by_ensembl.get(gene.ensembl_id)
        if held is None:
            keyed.by_ensembl[gene.ensembl_id] = gene
        elif held.index_symbol != held.symbol and name == gene.symbol:
            keyed.by_ensembl[gene.ensembl_id] = gene
            keyed.duplicates.append(held.index_symbol)
        else:
            keyed.duplicates.append(name)
    return keyed
