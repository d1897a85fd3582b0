"""Real STRING data for the STRING provider tests: the human subset (combined score ≥ 0.9, gene
symbols) shipped in the ``mossn`` package, from STRING (Szklarczyk et al. 2023, CC BY 4.0)."""

from __future__ import annotations

from collections import deque
from importlib.resources import files

import numpy as np
import pandas as pd


def mossn_edges() -> pd.DataFrame:
    """Columns ``gene_a, gene_b, score`` (0–1), one row per undirected edge."""
    table = pd.read_csv(files("mossn") / "data" / "string_links.csv")
    return table.rename(columns={"protein1": "gene_a", "protein2": "gene_b"})[["gene_a", "gene_b", "score"]]


def snowball(edges: pd.DataFrame, n_genes: int, seed: int) -> pd.DataFrame:
    """The edges among the first ``n_genes`` genes reached breadth-first from a random gene.

    Breadth-first (snowball) sampling keeps the local structure that a random gene sample would
    destroy, so a small subgraph still has real complexes and pathways in it.
    """
    neighbours: dict[str, list[str]] = {}
    for a, b in zip(edges["gene_a"], edges["gene_b"]):
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    genes = sorted(neighbours)
    rng = np.random.default_rng(seed)
    start = genes[rng.integers(len(genes))]
    seen, queue = {start}, deque([start])
    while queue and len(seen) < n_genes:
        for other in sorted(neighbours[queue.popleft()]):
            if other not in seen and len(seen) < n_genes:
                seen.add(other)
                queue.append(other)
    keep = edges["gene_a"].isin(seen) & edges["gene_b"].isin(seen)
    return edges[keep].reset_index(drop=True)
