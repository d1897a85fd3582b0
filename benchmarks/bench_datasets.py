"""Dataset preparation and ceiling throughput (cells/s) as ratios to a straightforward in-memory computation.

Baseline (same data, same machine, run in this script): read the whole h5ad into memory, densify,
normalise with numpy, take per-(perturbation, GEM group) means with pandas, Welch t-tests with
``scipy.stats.ttest_ind`` per perturbation; for the ceiling, the two-stage bootstrap with numpy fancy
indexing on the dense matrix. embhub streams the file in blocks and never densifies it.

Peak memory (max RSS of a fresh process preparing the file) is printed at three sizes: it should stay flat as
the number of cells grows, while the dense size grows linearly.

    python benchmarks/bench_datasets.py [--cells 20000 80000 320000] [--genes 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.datasets.bounded import write_large_replogle  # noqa: E402

PREPARE_IN_CHILD = """
import json, sys, time
import anndata.io, h5py, scipy.sparse, scipy.stats, zarr  # imported before timing, like the baseline's imports
from embhub.datasets.prepare import prepare_dataset
from embhub.datasets.ceiling import ceiling_of_prepared
from embhub_datasets.essential import Essential
raw, out, ceiling = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
start = time.perf_counter()
prepare_dataset(Essential(), [raw], out)
prepared_s = time.perf_counter() - start
with open("/proc/self/status") as handle:  # VmHWM: ru_maxrss can report the parent's size at fork
    peak_prepare = next(int(line.split()[1]) for line in handle if line.startswith("VmHWM"))
start = time.perf_counter()
if ceiling:
    ceiling_of_prepared(out, n_jobs=2, deg=False)
ceiling_s = time.perf_counter() - start
start = time.perf_counter()
if ceiling:
    ceiling_of_prepared(out, n_jobs=2, deg=True)
deg_ceiling_s = time.perf_counter() - start - ceiling_s
print(json.dumps({
    "prepare_s": prepared_s, "ceiling_s": ceiling_s, "deg_ceiling_s": deg_ceiling_s, "peak_prepare_kb": peak_prepare
}))
"""


def embhub_run(raw: Path, out: Path, ceiling: bool) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", PREPARE_IN_CHILD, str(raw), str(out), "1" if ceiling else "0"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def in_memory_prepare(raw: Path) -> float:
    import anndata as ad
    import pandas as pd
    from scipy import stats

    start = time.perf_counter()
    adata = ad.read_h5ad(raw)
    counts = np.asarray(adata.X.todense(), dtype=np.float64)
    x = np.log1p(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) * 1e4)
    obs = adata.obs
    for line in obs["cell_line"].unique():
        mine = (obs["cell_line"] == line).to_numpy()
        frame = pd.DataFrame(x[mine])
        keys = obs.loc[mine, ["gene_id", "gem_group"]]
        means = frame.groupby([keys["gene_id"].to_numpy(), keys["gem_group"].to_numpy()]).mean()
        per_pert = means.groupby(level=0).mean()
        control = per_pert.loc["non-targeting"].to_numpy()
        _ = per_pert.to_numpy() - control
        controls = x[mine][keys["gene_id"].to_numpy() == "non-targeting"]
        for pert in keys["gene_id"].unique():
            rows = keys["gene_id"].to_numpy() == pert
            if pert != "non-targeting" and rows.sum() > 30:
                stats.ttest_ind(x[mine][rows], controls, equal_var=False)
    return time.perf_counter() - start


def in_memory_ceiling(raw: Path, n_outer: int = 10, n_inner: int = 10) -> float:
    import anndata as ad

    start = time.perf_counter()
    adata = ad.read_h5ad(raw)
    counts = np.asarray(adata.X.todense(), dtype=np.float64)
    x = np.log1p(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) * 1e4)
    obs = adata.obs.reset_index(drop=True)
    root = np.random.SeedSequence(5050)
    for line in obs["cell_line"].unique():
        mine = obs[obs["cell_line"] == line]
        groups = {
            p: [g.index.to_numpy() for _, g in frame.groupby("gem_group")]
            for p, frame in mine.groupby("gene_id", observed=True)
        }
        for pert, sequence in zip(sorted(groups), root.spawn(len(groups))):
            batches = groups[pert]
            for child in sequence.spawn(n_outer):
                rng = np.random.default_rng(child)
                drawn = rng.integers(0, len(batches), len(batches))
                for b, grandchild in zip(drawn, child.spawn(len(drawn))):
                    draws = np.random.default_rng(grandchild).integers(0, len(batches[b]), (n_inner, len(batches[b])))
                    for k in range(n_inner):
                        x[batches[b][draws[k]]].mean(axis=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, nargs=3, default=[20_000, 80_000, 320_000])
    parser.add_argument("--genes", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"{'cells':>8} {'dense MiB':>10} {'peak RSS MiB':>13} {'prepare cells/s':>16}")
        rows = []
        for n in args.cells:
            raw = write_large_replogle(tmp / f"raw_{n}.h5ad", n, args.genes)
            run = embhub_run(raw, tmp / f"p_{n}.zarr", ceiling=n == args.cells[0])
            rows.append((n, raw, run))
            print(
                f"{n:>8} {n * args.genes * 8 / 2**20:>10.0f} {run['peak_prepare_kb'] / 1024:>13.0f} {n / run['prepare_s']:>16.0f}"
            )
        n, raw, run = rows[0]
        baseline_prepare = in_memory_prepare(raw)
        baseline_ceiling = in_memory_ceiling(raw)
        print(f"\non {n} cells × {args.genes} genes (baseline: whole matrix in memory, pandas + scipy):")
        print(
            f"prepare: embhub {n / run['prepare_s']:.0f} cells/s, in-memory {n / baseline_prepare:.0f} cells/s, "
            f"ratio {baseline_prepare / run['prepare_s']:.2f}x"
        )
        print(
            f"ceiling: embhub {n / run['ceiling_s']:.0f} cells/s, in-memory {n / baseline_ceiling:.0f} cells/s, "
            f"ratio {baseline_ceiling / run['ceiling_s']:.2f}x"
        )
        print(f"DEG ceiling (20 resampling trials, no baseline): embhub {n / run['deg_ceiling_s']:.0f} cells/s")


if __name__ == "__main__":
    main()
