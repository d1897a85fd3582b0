"""Stream raw single-cell counts and obs columns from an ``.h5ad`` file in row blocks.

The count matrix is read straight from the HDF5 file (CSR groups or dense arrays) one block of cells at a
time, and so are the few ``obs`` columns a recipe needs (:class:`ObsColumns`: categorical codes and string
or numeric values by row slice), so memory depends on the block size and the gene panel, never on the
number of cells. ``var`` is read whole: one row per gene.

Normalisation follows scanpy's ``normalize_total(target_sum=1e4)`` then ``log1p`` (natural log): each cell
is scaled to 10,000 counts (cells with no counts stay zero). The library size is summed either over the
gene panel (``library="panel"``: Essential, Norman) or over every gene of the file (``library="all"``:
Sciplex3 / Tahoe responses), as in the study.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from embhub.errors import InputError

TARGET_SUM = 1e4
DEFAULT_BLOCK_CELLS = 8192


def _open(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if _is_gzip(path):
            raise InputError(
                f"{path} is gzip-compressed (as the study's per-cell-line Tahoe files are); an .h5ad is read in place, "
                f"so decompress it first (gunzip -k {path}) and give the .h5ad"
            ) from None
        raise InputError(f"{path} is not a readable .h5ad file ({exc}); check the path") from None


def _is_gzip(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def read_var(path: Path) -> pd.DataFrame:
    """The ``var`` table of an h5ad file (one row per gene), without loading its matrix or ``obs``."""
    from anndata.io import read_elem

    with _open(path) as handle:
        if "var" not in handle:
            raise InputError(f"{path} has no var table; is it an .h5ad file?")
        return read_elem(handle["var"])


@dataclass
class ObsColumns:
    """Row-block reader of chosen ``obs`` columns of an h5ad file; the whole table is never loaded.

    Handles anndata's column encodings: ``categorical`` (codes sliced, categories read once), ``array``
    and ``string-array`` datasets, the ``nullable-*`` groups (``values`` + ``mask``), and the pre-0.7
    layout (codes whose ``categories`` attribute references ``obs/__categories``).
    """

    path: Path
    block_cells: int = DEFAULT_BLOCK_CELLS

    @property
    def names(self) -> list[str]:
        """Column names of ``obs`` (its index excluded)."""
        with _open(self.path) as handle:
            obs = self._obs(handle)
            order = obs.attrs.get("column-order")
            if order is None:
                index = obs.attrs.get("_index", "_index")
                return [k for k in obs.keys() if k not in (index, "__categories")]
            return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(order)]

    @property
    def n_rows(self) -> int:
        with _open(self.path) as handle:
            obs = self._obs(handle)
            index = obs.attrs.get("_index", "_index")
            if isinstance(index, bytes):
                index = index.decode()
            return int(obs[index].shape[0])

    def blocks(self, columns: Sequence[str]) -> Iterator[tuple[int, pd.DataFrame]]:
        """Yield ``(first_row, DataFrame of columns)`` for consecutive blocks of ``block_cells`` rows."""
        import pandas as pd

        n_rows = self.n_rows
        with _open(self.path) as handle:
            obs = self._obs(handle)
            missing = [c for c in columns if c not in obs]
            if missing:
                raise InputError(
                    f"{self.path}: obs has no column '{missing[0]}' (columns: {', '.join(self.names[:12])}); "
                    "is this the right file for this dataset?"
                )
            readers = {c: _column_reader(handle, obs[c], self.path, c) for c in columns}
            for start in range(0, n_rows, self.block_cells):
                rows = slice(start, min(start + self.block_cells, n_rows))
                yield start, pd.DataFrame({c: read(rows) for c, read in readers.items()})

    def _obs(self, handle):
        if "obs" not in handle:
            raise InputError(f"{self.path} has no obs table; is it an .h5ad file?")
        return handle["obs"]


def _column_reader(handle, node, path: Path, name: str):
    """A function ``rows -> values`` (numpy array or pandas Categorical) for one obs column."""
    import h5py
    import pandas as pd

    encoding = node.attrs.get("encoding-type", "")
    if isinstance(encoding, bytes):
        encoding = encoding.decode()
    if encoding == "categorical":
        categories = _values(node["categories"], slice(None))
        return lambda rows: pd.Categorical.from_codes(node["codes"][rows].astype(np.int64), categories)
    if encoding.startswith("nullable-"):

        def read(rows):
            values = _values(node["values"], rows).astype(object)
            values[node["mask"][rows].astype(bool)] = None
            return values

        return read
    if isinstance(node, h5py.Dataset):
        if "categories" in node.attrs:
            categories = _values(handle[node.attrs["categories"]], slice(None))
            return lambda rows: pd.Categorical.from_codes(node[rows].astype(np.int64), categories)
        return lambda rows: _values(node, rows)
    raise InputError(
        f"{path}: obs column '{name}' is stored as '{encoding or 'an unknown encoding'}'; "
        "rewrite the file with a current anndata (adata.write_h5ad)"
    )


def _values(node, rows) -> np.ndarray:
    if node.dtype.kind in ("O", "S"):
        return np.asarray(node.asstr()[rows], dtype=object)
    return np.asarray(node[rows])


@dataclass
class CountMatrix:
    """Row-block access to the count matrix ``(n_cells, n_genes)`` of one h5ad file (``X`` or a layer)."""

    path: Path
    layer: str | None = None
    block_cells: int = DEFAULT_BLOCK_CELLS

    @property
    def key(self) -> str:
        return "X" if self.layer is None else f"layers/{self.layer}"

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

    def normalised_blocks(self, panel: np.ndarray, libraries: tuple[str, ...]) -> Iterator[tuple[int, int, dict]]:
        """Yield ``(first_row, n_rows, {library: log1p-CP10k csr (n_rows, len(panel))})``, checking counts."""
        for start, block in self.blocks():
            check_counts(block, self.path, start)
            yield start, block.shape[0], {lib: log_normalise(block, panel, lib) for lib in set(libraries)}

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


def log_normalise(block, panel: np.ndarray, library: str = "panel", sizes: np.ndarray | None = None):
    """log1p of counts scaled to 10,000 per cell, restricted to ``panel`` columns: csr ``(rows, len(panel))``.

    ``sizes`` gives the library sizes when ``block`` holds only part of each cell's counts (triplet files).
    """
    import scipy.sparse as sp

    restricted = block[:, panel]
    if sizes is None:
        source = restricted if library == "panel" else block
        sizes = np.asarray(source.sum(axis=1)).ravel()
    sizes = np.asarray(sizes, dtype=np.float64)
    scale = np.divide(TARGET_SUM, sizes, out=np.zeros_like(sizes), where=sizes > 0)
    normalised = sp.diags(scale) @ restricted
    normalised = sp.csr_matrix(normalised)
    np.log1p(normalised.data, out=normalised.data)
    return normalised


@dataclass
class TripletMatrix:
    """A count matrix given as ``gene cell count`` triplets (1-based, no header), e.g. sciPlex's GEO files.

    Read twice in chunks of ``chunk_entries`` lines: first the library size of every cell (8 bytes a cell),
    then each chunk of triplets becomes a sparse ``(n_cells, n_genes)`` block normalised with those sizes.
    Normalisation is element-wise, so partial rows add up to exactly the whole-row result.
    """

    path: Path
    n_cells: int
    n_genes: int
    chunk_entries: int = 2_000_000

    def _chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        import pandas as pd

        reader = pd.read_csv(
            self.path,
            sep=r"\s+",
            header=None,
            names=["gene", "cell", "count"],
            chunksize=self.chunk_entries,
            dtype={"gene": np.int64, "cell": np.int64, "count": np.float64},
            comment="%",
        )
        for chunk in reader:
            genes, cells, counts = chunk["gene"].to_numpy() - 1, chunk["cell"].to_numpy() - 1, chunk["count"].to_numpy()
            if len(genes) and (
                genes.min() < 0 or genes.max() >= self.n_genes or cells.min() < 0 or cells.max() >= self.n_cells
            ):
                raise InputError(f"{self.path}: a triplet names a gene or cell outside the annotation tables")
            yield genes, cells, counts

    def library_sizes(self, panel: np.ndarray) -> dict[str, np.ndarray]:
        in_panel = np.zeros(self.n_genes, bool)
        in_panel[panel] = True
        sizes = {"all": np.zeros(self.n_cells), "panel": np.zeros(self.n_cells)}
        for genes, cells, counts in self._chunks():
            bad = (counts < 0) | (counts != np.round(counts))
            if bad.any():
                raise InputError(
                    f"{self.path}: entry {counts[bad][0]:.4g} is not a count; embhub needs the raw UMI triplets"
                )
            sizes["all"] += np.bincount(cells, weights=counts, minlength=self.n_cells)
            sizes["panel"] += np.bincount(
                cells[in_panel[genes]], weights=counts[in_panel[genes]], minlength=self.n_cells
            )
        return sizes

    def normalised_blocks(self, panel: np.ndarray, libraries: tuple[str, ...]) -> Iterator[tuple[int, int, dict]]:
        import scipy.sparse as sp

        sizes = self.library_sizes(panel)
        identity = np.arange(len(panel))
        for genes, cells, counts in self._chunks():
            block = sp.csr_matrix((counts, (cells, genes)), shape=(self.n_cells, self.n_genes))
            yield 0, self.n_cells, {
                lib: log_normalise(block[:, panel], identity, lib, sizes[lib]) for lib in set(libraries)
            }
