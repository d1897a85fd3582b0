"""Gene → canonical protein sequence, from a UniProt FASTA file the user gives.

UniProt headers look like ``>sp|P04637|P53_HUMAN Cellular tumor antigen p53 OS=Homo sapiens OX=9606
GN=TP53 PE=1 SV=4``; ``sp`` marks reviewed (Swiss-Prot) and ``tr`` unreviewed (TrEMBL) entries, and an
accession with a dash (``P04637-2``) is an isoform. A bare ``>ACCESSION`` header is accepted too.

A record belongs to a gene when its accession, or else its ``GN=`` symbol, resolves to that gene's
Ensembl id through the gene identity layer. When several records belong to one gene the canonical one
is chosen by, in order: reviewed before unreviewed; canonical entry before isoform; the accession's
position in the identity table's UniProt list for the gene (Ensembl's order); the longer sequence; the
accession. The choice is deterministic and recorded per gene (:attr:`GeneSequence.accession`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from embhub.errors import InputError
from embhub.inputs import data_file_text

GENE_NAME = re.compile(r"\bGN=(\S+)")


@dataclass(frozen=True)
class ProteinRecord:
    accession: str
    reviewed: bool
    gene_name: str | None
    sequence: str

    @property
    def is_isoform(self) -> bool:
        return "-" in self.accession


@dataclass(frozen=True)
class GeneSequence:
    ensembl_id: str
    accession: str
    sequence: str


def read_fasta(path: Path) -> list[ProteinRecord]:
    """Every record of a (UniProt-style) protein FASTA file, sequences upper-cased, ``*`` stripped."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"protein FASTA {path} does not exist; pass a UniProt FASTA with fasta: PATH")
    records, header, chunks = [], None, []
    with data_file_text(path, "protein FASTA") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if header is not None:
                    records.append(_record(header, chunks))
                header, chunks = line[1:], []
            elif header is None:
                raise InputError(f"{path} line {number} holds sequence before any '>' header; is it a FASTA file?")
            else:
                chunks.append(line)
    if header is not None:
        records.append(_record(header, chunks))
    if not records:
        raise InputError(f"protein FASTA {path} holds no records")
    return records


def _record(header: str, chunks: list[str]) -> ProteinRecord:
    identifier = header.split(maxsplit=1)[0]
    parts = identifier.split("|")
    if len(parts) >= 2 and parts[0] in ("sp", "tr"):
        accession, reviewed = parts[1], parts[0] == "sp"
    else:
        accession, reviewed = identifier, False
    gene = GENE_NAME.search(header)
    return ProteinRecord(accession, reviewed, gene.group(1) if gene else None, "".join(chunks).upper().rstrip("*"))


def canonical_sequences(records: list[ProteinRecord], ident) -> dict[str, GeneSequence]:
    """Ensembl gene id → its canonical sequence (rules in the module docstring); unmatched records are ignored."""
    candidates: dict[str, list[ProteinRecord]] = {}
    for record in records:
        gene = _gene_of(record, ident)
        if gene is not None and record.sequence:
            candidates.setdefault(gene, []).append(record)
    chosen = {}
    for gene, records_of_gene in candidates.items():
        order = {accession: rank for rank, accession in enumerate(ident.uniprot_of(gene))}
        best = min(
            records_of_gene,
            key=lambda r: (
                not r.reviewed,
                r.is_isoform,
                order.get(r.accession.split("-")[0], len(order)),
                -len(r.sequence),
                r.accession,
            ),
        )
        chosen[gene] = GeneSequence(gene, best.accession, best.sequence)
    return chosen


def _gene_of(record: ProteinRecord, ident) -> str | None:
    """The gene a record belongs to: by UniProt accession, else by its ``GN=`` symbol."""
    by_accession = ident.resolve(record.accession.split("-")[0])
    if by_accession.resolved and by_accession.matched_by == "uniprot":
        return by_accession.ensembl_id
    if record.gene_name:
        by_symbol = ident.resolve(record.gene_name)
        if by_symbol.resolved and by_symbol.matched_by in ("symbol", "previous_symbol", "alias"):
            return by_symbol.ensembl_id
    return None
