"""Preparing a dataset whose dense matrix is larger than the memory the process may use, in flat memory."""

import os
import subprocess
import sys
import textwrap

from embhub.datasets.prepared import PreparedDataset
from tests.datasets.bounded import preparation_peak_mib, write_large_replogle

HEADROOM_MB = 300


def test_prepare_under_a_memory_limit_smaller_than_the_dense_matrix(tmp_path):
    n_cells, n_genes = 40_000, 2_000
    raw = write_large_replogle(tmp_path / "big.h5ad", n_cells, n_genes)
    dense_mb = n_cells * n_genes * 8 / 2**20
    assert dense_mb > 2 * HEADROOM_MB
    script = textwrap.dedent(f"""
        import resource
        import anndata, h5py, scipy.sparse, scipy.stats, zarr, pandas
        from embhub.datasets.prepare import prepare_dataset
        from embhub_datasets.essential import Essential
        with open("/proc/self/status") as handle:
            vm = next(int(line.split()[1]) for line in handle if line.startswith("VmSize")) * 1024
        limit = vm + {HEADROOM_MB} * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        import numpy
        try:
            numpy.ones(({n_cells}, {n_genes}))
            raise SystemExit("the memory limit does not stop a dense load")
        except MemoryError:
            pass
        prepare_dataset(Essential(), [{str(raw)!r}], {str(tmp_path / "big.zarr")!r})
        print("prepared under", limit // 2**20, "MiB of address space")
        """)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    prepared = PreparedDataset.open(tmp_path / "big.zarr")
    assert (
        sum(
            prepared.manifest["counts"][line]["perturbed_cells"] + prepared.manifest["counts"][line]["control_cells"]
            for line in prepared.cell_lines
        )
        == n_cells
    )


def test_peak_memory_stays_flat_as_cells_grow(tmp_path):
    """8× the cells may add at most a few MiB: a per-cell obs table (~0.4 KiB a cell) would add ~55 MiB."""
    growth = {}
    for n_cells in (20_000, 160_000):
        raw = write_large_replogle(tmp_path / f"raw_{n_cells}.h5ad", n_cells, n_genes=500, per_cell=20)
        before, after = preparation_peak_mib(raw, tmp_path / f"prepared_{n_cells}.zarr")
        growth[n_cells] = after - before
    assert growth[160_000] - growth[20_000] < 20, growth
