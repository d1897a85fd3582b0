"""Stream raw single-cell counts from an ``.h5ad`` file in row blocks, normalised to log1p(CP10k).

The count matrix is read straight from the HDF5 file (CSR groups or dense arrays) one block of cells at a
time, so memory depends on the block size and the gene panel, never on the number of cells. ``obs`` and
``var`` are read whole: they are one row per cell and per gene, and small next to the matrix.

Normalisation follows scanpy's ``normalize_total(target_sum=1e4)`` then ``log1p`` (natural log): each cell
is scaled to 10,000 counts (cells with no counts stay zero). The library size is summed either over the
gene panel (``library="panel"``: Essential, Norman) or over every gene of the file (``library="all"``:
Sciplex3 / Tahoe responses), as in the study.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from embhub.errors import InputError

TARGET_SUM = 1e4
DEFAULT_BLOCK_CELLS = 8192


def read_obs_var(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``obs`` and ``var`` tables of an h5ad file, without loading its matrix."""
    import h5py
    from anndata.io import read_elem

    try:
        with h5py.File(path, "r") as handle:
            return read_elem(handle["obs"]), read_elem(handle["var"])
    except (OSError, KeyError) as exc:
        raise InputError(f"{path} is not a readable .h5ad file ({exc}); check the path") from None


@dataclass
class CountMatrix:
    """Row-block access to the count matrix ``(n_cells, n_genes)`` of one h5ad file (``X`` or a layer)."""

    path: Path
    layer: str | None = None
    block_cells: int = DEFAULT_BLOCK_CELLS

    @property
    def key(self) -> str:
        return "X" if self.layer is None else f"layers/{self.layer}"

    def shape(self) -> tuple[int, int]:
        import h5py

        with h5py.File(self.path, "r") as handle:
            node = self._node(handle)
            if hasattr(node, "attrs") and "shape" in node.attrs and not hasattr(node, "dtype"):
                return tuple(int(v) for v in node.attrs["shape"])
            return tuple(node.shape)

    def blocks(self) -> Iterator[tuple[int, "object"]]:
        """Yield ``(first_row, csr_matrix (rows, n_genes) float64)`` over all cells, in file order."""
        import h5py
        import scipy.sparse as sp

        with h5py.File(self.path, "r") as handle:
            node = self._node(handle)
            encoding = node.attrs.get("encoding-type", "array")
            if isinstance(encoding, bytes):
                encoding = encoding.decode()
            if encoding == "csr_matrix":
                n_rows, n_cols = (int(v) for v in node.attrs["shape"])
                indptr = node["indptr"]
                for start in range(0, n_rows, self.block_cells):
                    stop = min(start + self.block_cells, n_rows)
                    pointers = indptr[start : stop + 1].astype(np.int64)
                    data = node["data"][pointers[0] : pointers[-1]].astype(np.float64)
                    indices = node["indices"][pointers[0] : pointers[-1]]
                    yield start, sp.csr_matrix((data, indices, pointers - pointers[0]), shape=(stop - start, n_cols))
            elif encoding == "array" and hasattr(node, "dtype"):
                for start in range(0, node.shape[0], self.block_cells):
                    block = np.asarray(node[start : start + self.block_cells], dtype=np.float64)
                    yield start, sp.csr_matrix(block)
            else:
                raise InputError(
                    f"{self.path}: {self.key} is stored as {encoding}; embhub streams CSR or dense matrices — "
                    "rewrite it as CSR (adata.X = adata.X.tocsr(); adata.write_h5ad(...))"
                )

    def _node(self, handle):
        if self.key not in handle:
            raise InputError(f"{self.path} has no {self.key}; name the raw-count layer with --layer")
        return handle[self.key]


def check_counts(block, path: Path, first_row: int) -> None:
    """Refuse matrices that are not raw counts (negative or non-integer values, e.g. already log-transformed)."""
    values = block.data
    bad = (values < 0) | (values != np.round(values))
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        row = first_row + int(np.searchsorted(block.indptr, position, side="right") - 1)
        raise InputError(
            f"{path}: cell {row} holds {values[position]:.4g}, not a count; embhub needs raw counts "
            "(this matrix looks normalised or log-transformed) — pass the raw-count file or --layer"
        )


def log_normalise(block, panel: np.ndarray, library: str = "panel"):
    """log1p of counts scaled to 10,000 per cell, restricted to ``panel`` columns: csr ``(rows, len(panel))``."""
    import scipy.sparse as sp

    restricted = block[:, panel]
    source = restricted if library == "panel" else block
    sizes = np.asarray(source.sum(axis=1)).ravel()
    scale = np.divide(TARGET_SUM, sizes, out=np.zeros_like(sizes), where=sizes > 0)
    normalised = sp.diags(scale) @ restricted
    normalised = sp.csr_matrix(normalised)
    np.log1p(normalised.data, out=normalised.data)
    return normalised
