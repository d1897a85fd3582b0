"""How STRING embedding cost grows with network size: eigenmap and graph-autoencoder build times.

Networks are breadth-first subgraphs of the real human STRING subset (score ≥ 0.9) shipped in the
``mossn`` package, at several sizes. Times are printed as ratios against the smallest network's
time for the same method (the named baseline, measured in this run), next to the size ratio, so
the growth rate reads directly: a ratio that tracks the size ratio is linear.

    python benchmarks/bench_string.py [--sizes 500 1000 2000 4000] [--epochs 50] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embhub_string.gnn import TrainingSettings, train_graph_autoencoder  # noqa: E402
from embhub_string.providers import StringSpectral  # noqa: E402
from embhub_string.spectral import laplacian_eigenmap  # noqa: E402
from tests.providers.string_data import mossn_edges, snowball  # noqa: E402


def best_time(run, repeats: int) -> float:
    """The fastest of ``repeats`` runs: the least disturbed by whatever else the machine does."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def build_times(n_genes: int, dim: int, epochs: int, device: str, repeats: int, folder: Path) -> dict[str, float]:
    path = folder / f"edges_{n_genes}.csv"
    snowball(mossn_edges(), n_genes, seed=0).to_csv(path, index=False)
    network = StringSpectral(StringSpectral.Parameters(network=str(path), min_score=900, dim=dim)).network()
    adjacency = network.adjacency()
    features = laplacian_eigenmap(adjacency, dim)
    spectral = best_time(lambda: laplacian_eigenmap(adjacency, dim), repeats)
    settings = TrainingSettings(dim=64, hidden_dim=64, epochs=epochs, device=device)
    gnn = best_time(lambda: train_graph_autoencoder(network.edges, network.scores / 1000.0, features, settings), repeats)
    return {"genes": network.n_nodes, "edges": len(network.edges), "spectral": spectral, "gnn": gnn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--device", default="auto", help="where the GNN trains: auto, cpu, cuda")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the fastest counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = [build_times(n, args.dim, args.epochs, args.device, args.repeats, Path(folder)) for n in sorted(args.sizes)]
    base = rows[0]
    print(f"baseline: the {base['genes']}-gene network (eigenmap dim {args.dim}, GNN {args.epochs} epochs on {args.device})")
    print(f"{'genes':>7} {'edges':>8} {'size×':>6} {'edges×':>7} {'eigenmap s':>11} {'eigenmap×':>10} {'GNN s':>8} {'GNN×':>7}")
    for row in rows:
        print(
            f"{row['genes']:>7} {row['edges']:>8} {row['genes'] / base['genes']:>6.1f} {row['edges'] / base['edges']:>7.1f} "
            f"{row['spectral']:>11.2f} {row['spectral'] / base['spectral']:>10.1f} "
            f"{row['gnn']:>8.2f} {row['gnn'] / base['gnn']:>7.1f}"
        )


if __name__ == "__main__":
    main()
