"""Reading the STRING human network in its distribution formats into a gene graph keyed by Ensembl id.

Two layouts are read:

* STRING's own download files: ``9606.protein.links.v12.0.txt.gz`` (space-separated
  ``protein1 protein2 combined_score`` with ``9606.ENSP…`` ids; the ``.detailed``/``.full`` variants
  and the physical subnetwork's ``protein.physical.links…`` too) plus ``9606.protein.info.v12.0.txt.gz`` (tab-separated, ``#string_protein_id preferred_name
  protein_size annotation``). Proteins become genes through ``preferred_name`` and the gene identity
  layer.
* A gene edge list (CSV/TSV, optionally gzipped) with two gene-id columns and a combined score,
  e.g. embhub's bundled demo (``gene_a gene_b combined_score``), STRING's web export (``#node1
  node2 … combined_score``) or the ``mossn`` package's file (``protein1 protein2 score``).

Scores are in STRING's 0–1000 units; a file whose scores are all ≤ 1 is read as 0–1 and scaled.
Nothing is dropped silently: every gene or network name that does not become a node is kept in
:attr:`GeneNetwork.excluded` with its reason.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from embhub.errors import InputError
from embhub.identity.genes import GeneIdentity
from embhub.inputs import data_file_text

GENE_COLUMN_PAIRS = (
    ("gene_a", "gene_b"),
    ("#node1", "node2"),
    ("node1", "node2"),
    ("preferredname_a", "preferredname_b"),
    ("preferred_name_a", "preferred_name_b"),
    ("symbol_a", "symbol_b"),
    ("source", "target"),
    ("protein1", "protein2"),
)
SCORE_COLUMNS = ("combined_score", "score")
STRING_LINKS = re.compile(r"protein\.(physical\.)?links(\.detailed|\.full)?\.")


@dataclass
class GeneNetwork:
    """A thresholded, undirected gene graph.

    ``genes[i]`` (Ensembl id) and ``symbols[i]`` name node ``i``; ``edges`` is ``(n_edges, 2)``
    node indices with ``i < j``, ``scores`` their combined scores (0–1000, the highest when several
    network names map to one gene pair). ``excluded`` maps the Ensembl id of a gene in the file that
    is not a node to why; ``unresolved`` maps each network name the identity layer cannot turn into
    one gene to why.
    """

    genes: list[str]
    symbols: list[str]
    edges: np.ndarray
    scores: np.ndarray
    excluded: dict[str, str] = field(default_factory=dict)
    unresolved: dict[str, str] = field(default_factory=dict)
    edges_read: int = 0
    edges_below_threshold: int = 0
    edges_without_gene: int = 0

    @property
    def n_nodes(self) -> int:
        return len(self.genes)

    def adjacency(self, weighted: bool = True):
        """Symmetric scipy CSR matrix ``(n_nodes, n_nodes)``; weights are scores / 1000 (or 1)."""
        import scipy.sparse as sp

        values = self.scores / 1000.0 if weighted else np.ones(len(self.scores))
        i, j = self.edges[:, 0], self.edges[:, 1]
        matrix = sp.coo_matrix(
            (np.concatenate([values, values]), (np.concatenate([i, j]), np.concatenate([j, i]))),
            shape=(self.n_nodes, self.n_nodes),
        )
        return matrix.tocsr()

    def subgraph(self, keep: np.ndarray, reason_of: Callable[[int], str]) -> GeneNetwork:
        """The graph on the nodes where ``keep`` is True; dropped node ``i`` is excluded with ``reason_of(i)``."""
        index = np.full(self.n_nodes, -1)
        index[keep] = np.arange(int(keep.sum()))
        inside = keep[self.edges[:, 0]] & keep[self.edges[:, 1]]
        excluded = dict(self.excluded)
        for node in np.flatnonzero(~keep):
            excluded[self.genes[node]] = reason_of(node)
        return GeneNetwork(
            genes=[g for g, k in zip(self.genes, keep) if k],
            symbols=[s for s, k in zip(self.symbols, keep) if k],
            edges=index[self.edges[inside]],
            scores=self.scores[inside],
            excluded=excluded,
            unresolved=self.unresolved,
            edges_read=self.edges_read,
            edges_below_threshold=self.edges_below_threshold,
            edges_without_gene=self.edges_without_gene,
        )

    def largest_component(self) -> GeneNetwork:
        from scipy.sparse.csgraph import connected_components

        n_components, labels = connected_components(self.adjacency(weighted=False), directed=False)
        if n_components <= 1:
            return self
        sizes = np.bincount(labels)
        largest = int(np.argmax(sizes))
        return self.subgraph(
            labels == largest,
            lambda node: f"in a component of {sizes[labels[node]]} genes, apart from the largest ({sizes[largest]} genes)",
        )


def read_network(path: Path, min_score: float, identity: GeneIdentity, protein_info: Path | None = None) -> GeneNetwork:
    """Read ``path`` in whichever layout it has, keep edges scoring ≥ ``min_score``, key nodes by gene."""
    if not path.exists():
        raise InputError(f"STRING network file {path} does not exist; download it or fix the 'network' parameter")
    if STRING_LINKS.search(path.name):
        info = protein_info or sibling_info_file(path)
        names_a, names_b, scores = _read_string_links(path, info)
    else:
        names_a, names_b, scores = _read_edge_list(path)
    if scores.size and scores.max() <= 1.0:
        scores = scores * 1000.0
    return _build(names_a, names_b, scores, min_score, identity)


def sibling_info_file(links: Path) -> Path:
    candidate = links.with_name(STRING_LINKS.sub("protein.info.", links.name))
    if not candidate.exists():
        raise InputError(
            f"STRING links file {links.name} needs its protein.info file to name genes; put {candidate.name} "
            "next to it or set the 'protein_info' parameter"
        )
    return candidate


def _read_string_links(links: Path, info: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    preferred = _read_protein_info(info)
    with data_file_text(links, "STRING links file") as handle:
        header = handle.readline().split()
        if header[:2] != ["protein1", "protein2"] or "combined_score" not in header:
            raise InputError(
                f"{links}: first line is {' '.join(header)!r}, expected STRING's 'protein1 protein2 … combined_score'"
            )
        score_index = header.index("combined_score")
        names_a, names_b, scores = [], [], []
        for number, line in enumerate(handle, start=2):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != len(header):
                raise InputError(f"{links}: line {number} has {len(fields)} fields, the header has {len(header)}")
            names_a.append(preferred.get(fields[0], fields[0]))
            names_b.append(preferred.get(fields[1], fields[1]))
            scores.append(float(fields[score_index]))
    return np.array(names_a, dtype=object), np.array(names_b, dtype=object), np.array(scores, dtype=float)


def _read_protein_info(info: Path) -> dict[str, str]:
    """``9606.ENSP…`` → preferred name (a gene symbol), from STRING's protein.info file."""
    with data_file_text(info, "STRING protein.info file") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = [h.lstrip("#").strip() for h in next(reader, [])]
        if "string_protein_id" not in header or "preferred_name" not in header:
            raise InputError(f"{info}: expected STRING's protein.info columns string_protein_id and preferred_name")
        protein, name = header.index("string_protein_id"), header.index("preferred_name")
        return {row[protein]: row[name] for row in reader if len(row) > max(protein, name)}


def _read_edge_list(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    name = path.name.lower().removesuffix(".gz")
    separator = "," if name.endswith(".csv") else ("\t" if name.endswith((".tsv", ".tab")) else r"\s+")
    with data_file_text(path, "STRING network file") as handle:
        try:
            table = pd.read_csv(handle, sep=separator, dtype=str, engine="python" if separator == r"\s+" else "c")
        except pd.errors.ParserError as error:
            reason = " ".join(str(error).split())
            raise InputError(f"STRING network file {path} is not a well-formed table ({reason}); fix that line") from None
    lowered = {c.strip().lower(): c for c in table.columns}
    pair = next(((lowered[a], lowered[b]) for a, b in GENE_COLUMN_PAIRS if a in lowered and b in lowered), None)
    score = next((lowered[c] for c in SCORE_COLUMNS if c in lowered), None)
    if pair is None or score is None:
        raise InputError(
            f"{path}: cannot find two gene columns and a score column (columns: {', '.join(table.columns)}); "
            "name them gene_a, gene_b, combined_score"
        )
    scores = pd.to_numeric(table[score], errors="coerce").to_numpy(float)
    if np.isnan(scores).any():
        row = int(np.flatnonzero(np.isnan(scores))[0]) + 2
        raise InputError(f"{path}: row {row} has a non-numeric score in column '{score}'")
    return table[pair[0]].to_numpy(object), table[pair[1]].to_numpy(object), scores


def _build(names_a, names_b, scores, min_score: float, identity: GeneIdentity) -> GeneNetwork:
    above = scores >= min_score
    gene_of: dict[str, str | None] = {}
    excluded: dict[str, str] = {}
    unresolved: dict[str, str] = {}
    for name in dict.fromkeys(np.concatenate([names_a, names_b]).tolist()):
        resolution = identity.resolve(name)
        gene_of[name] = resolution.ensembl_id if resolution.resolved else None
        if not resolution.resolved:
            unresolved[name] = identity.failure_reason(resolution)
    pairs: dict[tuple[str, str], float] = {}
    without_gene = 0
    for a, b, s in zip(names_a[above], names_b[above], scores[above]):
        gene_a, gene_b = gene_of[a], gene_of[b]
        if gene_a is None or gene_b is None:
            without_gene += 1
            continue
        if gene_a == gene_b:
            continue
        key = (gene_a, gene_b) if gene_a < gene_b else (gene_b, gene_a)
        if s > pairs.get(key, -1.0):
            pairs[key] = float(s)
    genes = sorted({g for pair in pairs for g in pair})
    index = {g: i for i, g in enumerate(genes)}
    for name, gene in gene_of.items():
        if gene is not None and gene not in index:
            excluded[gene] = f"no edge to another gene scores ≥ min_score {min_score:g} in the network file"
    edges = np.array([(index[a], index[b]) for a, b in pairs], dtype=np.int64).reshape(-1, 2)
    return GeneNetwork(
        genes=genes,
        symbols=[identity.symbol_of(g) or g for g in genes],
        edges=edges,
        scores=np.array(list(pairs.values()), dtype=float),
        excluded=excluded,
        unresolved=unresolved,
        edges_read=len(scores),
        edges_below_threshold=int((~above).sum()),
        edges_without_gene=without_gene,
    )
