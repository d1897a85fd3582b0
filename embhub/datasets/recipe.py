"""The dataset recipe that plugins subclass, and the cell table a recipe hands to the preparer.

A recipe knows one public screen's real file layout: which obs columns hold the perturbation, the control
label, the batch (GEM group or plate), the cell line and the dose. ``read(raw_paths)`` turns that layout into
a :class:`CellSource`: per file, one row per cell with the standard columns below, aligned with the rows of
the count matrix. Everything after that (pseudobulk, DEG, folds, ceiling) is shared machinery.

Standard per-cell columns of ``CellFile.cells``:
    cell_line  str   the cell line
    batch      str   GEM group or plate
    pert_id    str   canonical key of the perturbation (Ensembl gene id, PubChem CID, name + dose); "" for controls
    pert_label str   the dataset's own label (symbol, drug name)
    is_control bool  a control cell (non-targeting guide, vehicle)
    compound   str   optional: the perturbation ignoring dose (plate DEG counts cells over all doses)
    String columns are stored as categoricals (a few bytes a cell), so the table stays small for 100M cells.
    keep       bool  False for cells the protocol leaves out (other doses, combinations…); counted in the manifest
    counted    bool  optional: cells counted for the plate-DEG minimum (Tahoe/Sciplex3: all doses); default keep
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from embhub.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from embhub.datasets.cells import CountMatrix, TripletMatrix

CELL_COLUMNS = ("cell_line", "batch", "pert_id", "pert_label", "is_control")
LABEL_COLUMNS = ("cell_line", "batch", "pert_id", "pert_label", "compound")


@dataclass
class CellFile:
    """One raw file: its count matrix, the standard per-cell table, and the panel's columns in the matrix."""

    matrix: CountMatrix | TripletMatrix
    cells: pd.DataFrame
    panel_columns: np.ndarray

    def __post_init__(self) -> None:
        missing = [c for c in CELL_COLUMNS if c not in self.cells]
        if missing:
            raise ValueError(f"cell table of {self.matrix.path} lacks {missing}")
        if "keep" not in self.cells:
            self.cells["keep"] = True
        if "compound" not in self.cells:
            self.cells["compound"] = self.cells["pert_id"]
        for column in self.cells.columns:
            if column in LABEL_COLUMNS or column.startswith("alias_"):
                self.cells[column] = self.cells[column].astype("category")


@dataclass
class CellSource:
    """What a recipe read: the files and the response gene panel ``(G,)`` shared by them."""

    files: list[CellFile]
    gene_ids: np.ndarray
    gene_symbols: np.ndarray
    exclusions: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


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
    ceiling_inner: int = 10

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
            "fold_rule": f"np.random.seed({self.fold_seed}) permutation of sorted perturbation ids, array_split into {self.n_folds}",
        }


def require_columns(frame: pd.DataFrame, columns: Sequence[str], path: Path, what: str = "obs") -> None:
    """One-line error naming the first missing column of ``frame``."""
    for column in columns:
        if column not in frame:
            raise InputError(
                f"{path}: {what} has no column '{column}' (columns: {', '.join(map(str, frame.columns[:12]))}); "
                "is this the right file for this dataset?"
            )


def single_file(raw: Sequence[Path], dataset: str, expected: str) -> Path:
    if len(raw) != 1:
        raise InputError(f"dataset '{dataset}' takes one raw file ({expected}); got {len(raw)}")
    path = Path(raw[0])
    if not path.exists():
        raise InputError(f"raw file {path} does not exist")
    return path
