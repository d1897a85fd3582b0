"""The dataset recipe that plugins subclass, and the cell tables a recipe hands to the preparer.

A recipe knows one public screen's real file layout: which obs columns hold the perturbation, the control
label, the batch (GEM group or plate), the cell line and the dose. ``read(raw_paths)`` turns that layout into
a :class:`CellSource`: per file, the count matrix and a cell table that yields, block by block of rows, the
standard columns below, aligned with the rows of the matrix. Everything after that (pseudobulk, DEG, folds,
ceiling) is shared machinery, and it never holds a per-cell column of the whole file: h5ad files stream their
``obs`` columns (:class:`StreamedCells`); only tables that are not h5ad (sciPlex's pData) sit in memory
(:class:`CellTable`).

Standard per-cell columns of a cell-table block:
    cell_line  str   the cell line
    batch      str   GEM group or plate
    pert_id    str   canonical key of the perturbation (Ensembl gene id, PubChem CID, name + dose); "" for controls
    pert_label str   the dataset's own label (symbol, drug name)
    is_control bool  a control cell (non-targeting guide, vehicle)
    compound   str   optional: the perturbation ignoring dose (plate DEG counts cells over all doses)
    keep       bool  optional: False for cells the protocol leaves out (other doses, combinations…)
    excluded   str   optional: why a cell with keep False is left out; counted per reason in the manifest
    counted    bool  optional: cells counted for the plate-DEG minimum (Tahoe/Sciplex3: all doses); default keep
    alias_<ns> str   optional: the perturbation's id in namespace <ns> (e.g. alias_inchikey)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from embhub.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from embhub.datasets.cells import CountMatrix, ObsColumns, TripletMatrix

CELL_COLUMNS = ("cell_line", "batch", "pert_id", "pert_label", "is_control")
LABEL_COLUMNS = ("cell_line", "batch", "pert_id", "pert_label", "compound", "excluded")
UNEXPLAINED = "cells left out by the protocol's filters"


def standard_cells(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Check one block of a cell table and fill the optional columns (string columns become categoricals)."""
    missing = [c for c in CELL_COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"cell table of {path} lacks {missing}")
    frame = frame.copy(deep=False)
    frame["is_control"] = frame["is_control"].to_numpy(dtype=bool)
    if "keep" not in frame:
        frame["keep"] = True
    frame["keep"] = frame["keep"].to_numpy(dtype=bool)
    if "compound" not in frame:
        frame["compound"] = frame["pert_id"]
    if "counted" not in frame:
        frame["counted"] = frame["keep"]
    if "excluded" not in frame:
        frame["excluded"] = ""
    for column in frame.columns:
        if column in LABEL_COLUMNS or column.startswith("alias_"):
            frame[column] = frame[column].astype("category")
    return frame


def first_reason(reasons: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, excluded)`` from masks checked in order: each cell is excluded for the first reason it meets."""
    import numpy as np

    keep = np.ones(n, bool)
    excluded = np.full(n, "", dtype=object)
    for reason, mask in reasons.items():
        newly = keep & np.asarray(mask, dtype=bool)
        excluded[newly] = reason
        keep &= ~newly
    return keep, excluded


@dataclass
class CellTable:
    """A cell table held whole in memory: for tables that are not h5ad obs (sciPlex pData)."""

    frame: pd.DataFrame

    @property
    def n_cells(self) -> int:
        return len(self.frame)

    def blocks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        yield 0, self.frame


@dataclass
class StreamedCells:
    """The cell table of an h5ad file, built block by block from the ``obs`` columns the recipe names.

    ``to_cells`` turns one block of those columns into the standard columns; it sees only that block.
    """

    obs: ObsColumns
    columns: Sequence[str]
    to_cells: Callable[[pd.DataFrame], pd.DataFrame]

    @property
    def n_cells(self) -> int:
        return self.obs.n_rows

    def blocks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        for start, block in self.obs.blocks(self.columns):
            yield start, self.to_cells(block)


@dataclass
class CellFile:
    """One raw file: its count matrix, its cell table, and the panel's columns in the matrix."""

    matrix: CountMatrix | TripletMatrix
    cells: CellTable | StreamedCells
    panel_columns: np.ndarray

    @property
    def n_cells(self) -> int:
        return self.cells.n_cells

    def cell_blocks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """``(first_row, standard cell table of the block)`` in row order."""
        for start, frame in self.cells.blocks():
            yield start, standard_cells(frame, self.matrix.path)


@dataclass
class CellSource:
    """What a recipe read: the files and the response gene panel ``(G,)`` shared by them."""

    files: list[CellFile]
    gene_ids: np.ndarray
    gene_symbols: np.ndarray
    exclusions: dict[str, int] = field(default_factory=dict)
    """Exclusions decided before the cells (whole files, say); per-cell ones come from ``excluded``."""
    notes: list[str] = field(default_factory=list)
    pert_annotations: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per perturbation id, descriptive fields stored with it (Tahoe: targets, mechanism of action)."""
    key_namespace: str | None = None
    """The namespace of the ``pert_id`` keys when it depends on the inputs (sciPlex3 with a drug table:
    ``inchikey``); None keeps the recipe's."""
    given_folds: dict[str, int] | None = None
    """Outer fold per perturbation *label*, read from a splits file among the inputs (Tahoe:
    ``tahoe_splits_drug.csv``); None lets embhub assign folds (:func:`embhub.datasets.prepare.assign_folds`)."""
    folds_source: str = ""

    @property
    def file_offsets(self) -> np.ndarray:
        """``(files + 1,)``: the global number of each file's first cell, then the total number of cells."""
        import numpy as np

        return np.concatenate([[0], np.cumsum([f.n_cells for f in self.files])])


class Dataset:
    """A perturbation screen recipe. Subclasses set the metadata and implement :meth:`read`.

    ``control`` selects the response formula of the protocol (``benchmark-protocol.md`` §2):
    ``"global"`` subtracts one batch-averaged control profile per cell line (Essential, Norman-as-pooled);
    ``"batch"`` subtracts each batch's own control inside the batch (Norman, Sciplex3, Tahoe).
    ``deg`` is ``"pooled"`` (one test per perturbation against all controls, > ``deg_min_cells`` cells) or
    ``"plate_vote"`` (a test per batch with > ``deg_min_cells`` cells of the compound, then a majority vote).
    """

    name: str = ""
    entity: str = "gene"
    key_namespace: str = "ensembl_gene_id"
    description: str = ""
    citation: str = ""
    raw_files: str = ""
    control: str = "global"
    deg: str = "pooled"
    deg_min_cells: int = 30
    library: str = "panel"
    deg_library: str = "panel"
    ceiling_library: str = "panel"
    ceiling_control: str | None = None
    n_folds: int = 5
    fold_seed: int = 42
    folds_by_label: bool = False
    """Assign folds by the dataset's own perturbation labels instead of the keys, so keying the same screen
    another way (e.g. sciPlex3 drug names → InChIKeys through a drug table) keeps every fold."""
    ceiling_inner: int = 10
    one_file_per_cell_line: bool = False
    """Each cell line's cells come from one raw file: batch numbers (GEM groups) restart in every file, so a
    cell line found in two files — a screen given twice, or two screens — is refused rather than merged."""

    @property
    def bootstrap_control(self) -> str:
        """Control scheme of the ceiling (Norman: batch-matched responses but the Essential bootstrap)."""
        return self.ceiling_control or self.control

    def read(self, raw: Sequence[Path], layer: str | None = None) -> CellSource:
        raise NotImplementedError

    def protocol(self) -> dict[str, Any]:
        return {
            "control": self.control,
            "deg": self.deg,
            "deg_min_cells": self.deg_min_cells,
            "library_size_over": {"responses": self.library, "deg": self.deg_library, "ceiling": self.ceiling_library},
            "ceiling_control": self.bootstrap_control,
            "ceiling_inner": self.ceiling_inner,
            "normalisation": "normalize_total(1e4) + log1p (natural log)",
            "n_folds": self.n_folds,
            "fold_rule": f"np.random.seed({self.fold_seed}) permutation of sorted perturbation "
            f"{'labels' if self.folds_by_label else 'ids'}, array_split into {self.n_folds}",
        }


def require_columns(
    available: pd.DataFrame | Sequence[str], columns: Sequence[str], path: Path, what: str = "obs"
) -> None:
    """One-line error naming the first of ``columns`` missing from a table (or from its column names)."""
    names = [str(c) for c in getattr(available, "columns", available)]
    for column in columns:
        if column not in names:
            raise InputError(
                f"{path}: {what} has no column '{column}' (columns: {', '.join(names[:12])}); "
                "is this the right file for this dataset?"
            )


def single_file(raw: Sequence[Path], dataset: str, expected: str) -> Path:
    if len(raw) != 1:
        raise InputError(f"dataset '{dataset}' takes one raw file ({expected}); got {len(raw)}")
    path = Path(raw[0])
    if not path.exists():
        raise InputError(f"raw file {path} does not exist")
    return path
