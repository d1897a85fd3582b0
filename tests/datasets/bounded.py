"""Raw Replogle-layout files of any size, written block by block (used by the memory test and the benchmark)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_large_replogle(
    path: Path, n_cells: int, n_genes: int = 2000, per_cell: int = 40, n_perts: int = 100, seed: int = 0
) -> Path:
    """A sparse raw-count h5ad in the Replogle layout, ``per_cell`` non-zero genes per cell, written in chunks."""
    import h5py
    import pandas as pd
    from anndata.io import write_elem

    rng = np.random.default_rng(seed)
    stride = n_genes // per_cell
    is_control = rng.random(n_cells) < 0.1
    target = rng.integers(0, n_perts, n_cells)
    genes = np.array([f"ENSG{i:011d}" for i in range(n_genes)])
    obs = pd.DataFrame(
        {
            "gene": np.where(is_control, "non-targeting", [f"G{t}" for t in target]),
            "gene_id": np.where(is_control, "non-targeting", genes[target]),
            "gem_group": rng.integers(1, 5, n_cells),
            "cell_line": np.where(rng.random(n_cells) < 0.5, "K-562", "hTERT-RPE1"),
            "is_control": is_control,
        },
        index=[f"c{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame({"gene_name": [f"S{i}" for i in range(n_genes)]}, index=genes)
    with h5py.File(path, "w") as handle:
        handle.attrs["encoding-type"] = "anndata"
        handle.attrs["encoding-version"] = "0.1.0"
        write_elem(handle, "obs", obs)
        write_elem(handle, "var", var)
        x = handle.create_group("X")
        x.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": (n_cells, n_genes)})
        nnz = n_cells * per_cell
        data = x.create_dataset("data", (nnz,), dtype="float32", chunks=True)
        indices = x.create_dataset("indices", (nnz,), dtype="int32", chunks=True)
        x.create_dataset("indptr", data=np.arange(0, nnz + 1, per_cell, dtype=np.int64))
        for start in range(0, n_cells, 50_000):
            stop = min(start + 50_000, n_cells)
            cols = np.arange(per_cell) * stride + rng.integers(0, stride, (stop - start, per_cell))
            indices[start * per_cell : stop * per_cell] = cols.ravel()
            data[start * per_cell : stop * per_cell] = rng.integers(1, 6, cols.size)
        for key in ("obsm", "varm", "layers", "obsp", "varp", "uns"):
            write_elem(handle, key, {})
    return path


PEAK_CHILD = """
import sys
import anndata.io, h5py, scipy.sparse, scipy.stats, zarr
from embhub.datasets.prepare import prepare_dataset
from embhub_datasets.essential import Essential


def high_water_kib():
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM"))


before = high_water_kib()
prepare_dataset(Essential(), [sys.argv[1]], sys.argv[2])
print(before, high_water_kib())
"""


def preparation_peak_mib(raw: Path, out: Path) -> tuple[float, float]:
    """``(peak RSS after imports, peak RSS after preparing)`` in MiB of a fresh process preparing ``raw``.

    Read from ``VmHWM``: ``ru_maxrss`` of a child can report the parent's size at fork.
    """
    import os
    import subprocess
    import sys

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    result = subprocess.run(
        [sys.executable, "-c", PEAK_CHILD, str(raw), str(out)], capture_output=True, text=True, env=env, timeout=600
    )
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    before, after = (int(v) / 1024 for v in result.stdout.split()[-2:])
    return before, after
