"""Which pooled rows train, validate and test a fusion model for one outer fold.

Outer fold ``k`` tests the rows whose cell line put that perturbation in fold ``k`` and trains on every other
row of every cell line (the study's pooled ``BenchmarkTask`` splits, benchmark-protocol-details.md §7.1).
Validation takes 20 % of the *unique perturbation ids* of the training rows (sklearn ``train_test_split``,
``random_state=42``, as the study), so no perturbation is in both. The hyperparameter search and early
stopping only ever see these validation rows; the outer test rows are scored once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embhub.errors import InputError
from embhub.fuse.config import VALIDATION_FRACTION, VALIDATION_SEED
from embhub.fuse.data import FusionData


@dataclass
class FoldRows:
    """Row indices into a :class:`FusionData`; ``fit`` and ``validation`` only hold covered rows."""

    fold: int
    fit: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    train_uncovered: int


def fold_rows(data: FusionData, fold: int, task: str = "lfc") -> FoldRows:
    labelled = np.ones(data.n_rows, bool) if task == "lfc" else np.asarray(data.deg_mask, bool)
    test = np.flatnonzero((data.row_fold == fold) & labelled)
    train = (data.row_fold != fold) & labelled
    covered = data.row_covered
    if not test.size:
        raise InputError(f"fold {fold} of dataset '{data.dataset}' has no test perturbations (folds: {data.folds})")
    usable = np.flatnonzero(train & covered)
    fit, validation = split_validation(data.row_pert_ids, usable)
    return FoldRows(fold, fit, validation, test, int((train & ~covered).sum()))


def split_validation(row_pert_ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` by perturbation id: 80 % of the unique ids fit, 20 % validate."""
    from sklearn.model_selection import train_test_split

    ids = np.unique(row_pert_ids[rows])
    if len(ids) < 5:
        raise InputError(f"only {len(ids)} training perturbations have an embedding; fusion needs at least 5")
    _, held_out = train_test_split(ids, test_size=VALIDATION_FRACTION, random_state=VALIDATION_SEED)
    in_validation = np.isin(row_pert_ids[rows], held_out)
    return rows[~in_validation], rows[in_validation]
