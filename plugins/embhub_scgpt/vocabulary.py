"""Which scGPT vocabulary token stands for which Ensembl gene.

scGPT's vocabulary is keyed by gene symbols of the release its training data used, so some tokens are
symbols the gene identity table knows as previous symbols or aliases (``SMIM11`` for ``SMIM11A``, ``PHB1``
for ``PHB``), and some genes have several tokens (``PEX1`` and its previous symbol ``ZWS1``).

Each gene token is resolved through the identity layer as a user's gene id would be. A gene then takes, in
order of preference: the token equal to its approved symbol (or Ensembl id); a token that is one of its
approved symbols up to case; its one previous-symbol token; its one alias token. Two equally preferred tokens
(``TAZ`` has the previous symbols ``EFE2`` and ``CMD3A``) are a conflict, never a guess. A token that the
identity layer finds ambiguous (a previous symbol of two genes) stands for neither gene.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

MATCH_PREFERENCE = ("ensembl", "symbol", "previous_symbol", "alias")
"""How a token may name a gene, most trusted first; tokens matched as Entrez or UniProt ids are not genes' names."""


@dataclass(frozen=True)
class GeneTokens:
    """Ensembl id → its vocabulary token, how the token matched, and the genes that could not get one."""

    token: dict[str, str]
    matched_by: dict[str, str]
    conflicts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Genes with several equally preferred tokens → those tokens."""
    shared: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Genes named only by tokens the identity layer finds ambiguous → those tokens."""


def match_gene_tokens(tokens: Iterable[str], ident) -> GeneTokens:
    """Assign vocabulary ``tokens`` (special tokens already removed) to Ensembl genes of ``ident``."""
    candidates: dict[str, list[tuple[tuple[int, int], str, str]]] = defaultdict(list)
    shared: dict[str, list[str]] = defaultdict(list)
    for token in tokens:
        resolution = ident.resolve(token)
        if resolution.resolved and resolution.matched_by in MATCH_PREFERENCE:
            gene = resolution.ensembl_id
            exact = token in (gene, ident.symbol_of(gene))
            rank = (MATCH_PREFERENCE.index(resolution.matched_by), not exact)
            candidates[gene].append((rank, token, resolution.matched_by))
        elif resolution.status == "ambiguous":
            for gene in resolution.candidates:
                shared[gene].append(token)
    chosen, matched_by, conflicts = {}, {}, {}
    for gene, options in candidates.items():
        best = min(rank for rank, _, _ in options)
        top = sorted((token, kind) for rank, token, kind in options if rank == best)
        if len(top) == 1:
            chosen[gene], matched_by[gene] = top[0]
        else:
            conflicts[gene] = tuple(token for token, _ in top)
    unnamed = {gene: tuple(sorted(tokens)) for gene, tokens in shared.items() if gene not in candidates}
    return GeneTokens(chosen, matched_by, conflicts, unnamed)
