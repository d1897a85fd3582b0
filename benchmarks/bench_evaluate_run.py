"""Time of a whole ``embhub evaluate`` of one store, as a user runs it, against the CPU run of the same data.

``bench_evaluate.py`` times the kNN protocol of one store × fold; this times everything a one-store run
pays: reading the prepared dataset and the store, each cell line's shared work (response Gram, test ranks),
the store's kNN on every fold, and (unless ``--no-baselines``) the context mean, no-change, random and
idealized controls, metrics and the results table. Data: a synthetic Essential-sized prepared dataset
(default 2,050 perturbations × 6,640 genes, one cell line, 5 folds) and a store whose vectors see the
latent factor driving the responses, both written to ``--workdir`` once and reused.

Each device in ``--devices`` is timed best of ``--repeats`` after one warm-up; the first is the baseline the
others are printed as a ratio to. The numbers of every run are checked to agree with the first (to 1e-9,
relative). Run on 2 cores:  ``taskset -c 0,1 python benchmarks/bench_evaluate_run.py``;
on a GPU machine: ``--devices cpu cuda``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from embhub.datasets.prepared import PreparedDataset, PreparedDatasetWriter
from embhub.evaluate.parallel import available_cores
from embhub.evaluate.runner import evaluate
from embhub.interchange import write_store
from embhub.store import EmbeddingStore

LATENT = 8


def write_dataset(path: Path, n_perts: int, n_genes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    perts = np.array([f"ENSG{i + 100_000:011d}" for i in range(n_perts)])
    genes = np.array([f"ENSG{i:011d}" for i in range(n_genes)])
    latent = rng.normal(size=(n_perts, LATENT))
    lfc = np.tanh(latent @ rng.normal(size=(LATENT, n_genes))) * 0.5 + rng.normal(scale=0.3, size=(n_perts, n_genes))
    manifest = {"dataset": "bench-essential", "kind": "lfc", "entity": "gene", "key_namespace": "ensembl_gene_id",
                "simulated": True}
    writer = PreparedDatasetWriter(path, manifest, genes, [f"G{i}" for i in range(n_genes)])
    writer.add_cell_line("K-562", perts, [f"P{i}" for i in range(n_perts)], rng.permutation(np.arange(n_perts) % 5),
                         lfc, np.full(n_perts, 50), np.full(n_perts, 4))
    writer.finish()
    np.save(path.with_suffix(".latent.npy"), latent)
    return perts


def write_bench_store(path: Path, perts: np.ndarray, latent: np.ndarray, dim: int) -> None:
    rng = np.random.default_rng(dim)
    vectors = (latent @ rng.normal(size=(LATENT, dim)) + rng.normal(scale=2.0, size=(len(perts), dim))).astype(np.float32)
    write_store(path, perts, iter([vectors]), dim, name=f"bench-{dim}", entity="gene", key_namespace="ensembl_gene_id",
                source="benchmarks/bench_evaluate_run.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--perts", type=int, default=2050)
    parser.add_argument("--genes", type=int, default=6640)
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--devices", nargs="+", default=["cpu"], help="cpu, cuda, auto; the first is the baseline")
    parser.add_argument("--no-baselines", action="store_true", help="time the store alone (the references still run)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="where the dataset and stores are written (default: a temp dir)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="embhub-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    dataset_path = workdir / f"essential-{args.perts}x{args.genes}.zarr"
    if not dataset_path.exists():
        start = time.perf_counter()
        write_dataset(dataset_path, args.perts, args.genes)
        print(f"wrote {dataset_path} in {time.perf_counter() - start:.1f} s")
    dataset = PreparedDataset.open(dataset_path)
    perts = dataset.cell_line("K-562").pert_ids
    latent = np.load(dataset_path.with_suffix(".latent.npy"))
    print(f"{available_cores()} cores available; one store, 1 cell line × {dataset.n_folds} folds, "
          f"{'without' if args.no_baselines else 'with'} the no-change / random / idealized controls; "
          f"best of {args.repeats} after a warm-up")
    for dim in args.dims:
        store_path = workdir / f"store-{dim}.zarr"
        if not store_path.exists():
            write_bench_store(store_path, perts, latent, dim)
        store = EmbeddingStore.open(store_path)
        baseline_time, baseline_values = None, None
        for device in args.devices:
            run = lambda: evaluate(dataset, [store], baselines=not args.no_baselines, device=device)  # noqa: E731
            evaluation = run()
            best = np.inf
            for _ in range(args.repeats):
                start = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - start)
            table = evaluation.results.sort_values(["fold", "method", "embedding", "metric", "subset"])
            values = table.value.to_numpy()
            line = (f"d={dim:5d} {device:>5} (kNN on {evaluation.metadata['knn_device']}): {best:.2f} s, "
                    f"{best / dataset.n_folds:.3f} s per fold")
            if baseline_time is None:
                baseline_time, baseline_values = best, values
                line += " (baseline)"
            else:
                agree = np.allclose(values, baseline_values, rtol=1e-9, equal_nan=True)
                line += f" | {baseline_time / best:.1f}x the {args.devices[0]} run | same numbers: {agree}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
