"""The text that describes each gene, looked up by Ensembl gene id.

Two sources:

* the **shipped offline table** (``data/gene_text.tsv.gz``, built by ``scripts/build_gene_text.py`` from
  NCBI Gene and GO annotations via Bioconductor's org.Hs.eg.db and GO.db; see ``data/gene_text.json``);
  a gene's text follows :data:`GO_TEMPLATE`, e.g.
  ``"TP53: tumor protein p53. Biological process: …; …. Molecular function: …. Cellular component: …."``
  with at most ``max_go_terms`` terms per ontology, most specific first (fewest annotated genes);
* **NCBI gene summaries** the user supplies (the GenePT recipe, Chen & Zou 2024): a TSV/CSV with a gene id
  column and a ``summary`` column; the text is :data:`SUMMARY_TEMPLATE`.

A gene finds its row through the gene identity layer: by its Entrez ids first, then by its Ensembl id,
then by its approved symbol. Genes with no row have no text (the provider reports them as failures).
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from embhub.errors import InputError
from embhub.inputs import data_file_text

ONTOLOGY_TITLES = {"go_bp": "Biological process", "go_mf": "Molecular function", "go_cc": "Cellular component"}
GO_TEMPLATE = "{symbol}: {name}.{go_sections}"
"""``go_sections`` is `` Biological process: t1; t2.`` and so on, for each ontology the gene has terms in."""
SUMMARY_TEMPLATE = "{symbol}: {name}. {summary}"
ENTREZ_COLUMNS = ("entrez", "entrez_id", "gene_id", "geneid")
SYMBOL_COLUMNS = ("symbol", "gene_symbol", "gene")
SUMMARY_ID_COLUMNS = (*ENTREZ_COLUMNS, "ensembl_gene_id", "ensembl_id", *SYMBOL_COLUMNS)


@dataclass(frozen=True)
class GeneRow:
    """One row of a gene-text table; ``go`` maps ``go_bp``/``go_mf``/``go_cc`` to numeric GO ids."""

    entrez: str
    symbol: str
    ensembl: tuple[str, ...]
    name: str
    go: dict[str, tuple[str, ...]] | None = None
    summary: str | None = None


class GeneTextIndex:
    """Rows indexed by Entrez id, Ensembl id and symbol, answering :meth:`row_of` for an Ensembl gene."""

    def __init__(self, rows: list[GeneRow]):
        self.by_entrez: dict[str, GeneRow] = {}
        self.by_ensembl: dict[str, GeneRow] = {}
        self.by_symbol: dict[str, GeneRow] = {}
        for row in rows:
            if row.entrez:
                self.by_entrez.setdefault(row.entrez, row)
            for ensembl in row.ensembl:
                self.by_ensembl.setdefault(ensembl, row)
            if row.symbol:
                self.by_symbol.setdefault(row.symbol, row)

    def row_of(self, ensembl_id: str, ident) -> GeneRow | None:
        for entrez in ident.entrez_of_all(ensembl_id):
            if entrez in self.by_entrez:
                return self.by_entrez[entrez]
        if ensembl_id in self.by_ensembl:
            return self.by_ensembl[ensembl_id]
        return self.by_symbol.get(ident.symbol_of(ensembl_id) or "")


class OfflineGeneText:
    """Descriptions built from the shipped NCBI Gene + GO table (:data:`GO_TEMPLATE`)."""

    kind = "ncbi_gene_go"

    def __init__(self, max_go_terms: int = 10):
        self.max_go_terms = max_go_terms
        self.index, self.terms = _shipped_index()

    def text_of(self, ensembl_id: str, ident) -> str | None:
        row = self.index.row_of(ensembl_id, ident)
        if row is None:
            return None
        sections = ""
        for column, title in ONTOLOGY_TITLES.items():
            names = [self.terms[go_id] for go_id in row.go[column][: self.max_go_terms]]
            if names:
                sections += f" {title}: {'; '.join(names)}."
        return GO_TEMPLATE.format(symbol=row.symbol, name=row.name, go_sections=sections)

    def describe(self) -> dict:
        info = shipped_table_info()
        return {"text_source": "shipped NCBI Gene + GO table", "template": GO_TEMPLATE,
                "max_go_terms": self.max_go_terms, **info["sources"], "table_sha256": info["sha256"]}


class SummaryGeneText:
    """Descriptions from a user table of NCBI gene summaries (:data:`SUMMARY_TEMPLATE`)."""

    kind = "ncbi_summary"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.index = GeneTextIndex(read_summaries(self.path))

    def text_of(self, ensembl_id: str, ident) -> str | None:
        row = self.index.row_of(ensembl_id, ident)
        if row is None:
            return None
        symbol = ident.symbol_of(ensembl_id) or row.symbol
        name = ident.name_of(ensembl_id) or row.name or symbol
        return SUMMARY_TEMPLATE.format(symbol=symbol, name=name, summary=row.summary)

    def describe(self) -> dict:
        return {"text_source": f"NCBI gene summaries from {self.path}", "template": SUMMARY_TEMPLATE}


def shipped_table_info() -> dict:
    return json.loads((files("embhub_genept") / "data" / "gene_text.json").read_text())


@lru_cache(maxsize=1)
def _shipped_index() -> tuple[GeneTextIndex, dict[str, str]]:
    data = files("embhub_genept") / "data"
    with gzip.open(data / "go_terms.tsv.gz", "rt", encoding="utf-8") as handle:
        handle.readline()
        terms = dict(line.rstrip("\n").split("\t", 1) for line in handle)
    rows = []
    with gzip.open(data / "gene_text.tsv.gz", "rt", encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        for line in handle:
            record = dict(zip(header, line.rstrip("\n").split("\t")))
            go = {column: tuple(record[column].split("|")) if record[column] else () for column in ONTOLOGY_TITLES}
            ensembl = tuple(record["ensembl"].split("|")) if record["ensembl"] else ()
            rows.append(GeneRow(record["entrez"], record["symbol"], ensembl, record["name"], go=go))
    return GeneTextIndex(rows), terms


def read_summaries(path: Path) -> list[GeneRow]:
    """Rows of a summary table: one gene id column (Entrez, Ensembl or symbol) and ``summary``."""
    if not path.is_file():
        raise InputError(f"NCBI summary table {path} does not exist; pass a TSV with a gene id and a 'summary' column")
    dialect = "excel" if path.name.lower().removesuffix(".gz").endswith(".csv") else "excel-tab"
    with data_file_text(path, "NCBI summary table") as handle:
        return _summary_rows(path, csv.DictReader(handle, dialect=dialect))


def _summary_rows(path: Path, reader: csv.DictReader) -> list[GeneRow]:
    columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    if "summary" not in columns:
        raise InputError(f"{path} has no 'summary' column (columns: {', '.join(columns)}); add one")
    present = [c for c in SUMMARY_ID_COLUMNS if c in columns]
    if not present:
        raise InputError(f"{path} needs a gene id column named one of {', '.join(SUMMARY_ID_COLUMNS)}")
    rows = []
    for record in reader:
        summary = (record[columns["summary"]] or "").strip()
        if not summary:
            continue
        values = {c: (record[columns[c]] or "").strip() for c in present}
        ensembl = tuple(v.split(".")[0].upper() for v in values.values() if v.upper().startswith("ENSG"))
        entrez = _first(values, ENTREZ_COLUMNS, lambda v: v.isdigit())
        symbol = _first(values, SYMBOL_COLUMNS, lambda v: not v.upper().startswith("ENSG") and not v.isdigit())
        rows.append(GeneRow(entrez, symbol, ensembl, name="", summary=summary))
    return rows


def _first(values: dict[str, str], columns: tuple[str, ...], accept) -> str:
    return next((values[c] for c in columns if c in values and values[c] and accept(values[c])), "")
