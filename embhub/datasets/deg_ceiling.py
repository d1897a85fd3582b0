"""DEG noise floor: F1 of DEG calls re-run on resampled cells, scored against the dataset's own labels.

Protocol (``benchmark-protocol-details.md`` §5.3). Pooled DEG (Essential, Norman): ``POOLED_TRIALS`` trials,
each resampling with replacement the cells of every labelled perturbation and the cell line's controls, then
re-running the Welch/BH test. Plate-vote DEG (Sciplex3, Tahoe): ``PLATE_OUTER`` outer draws of each drug's
tested plates with replacement, each with ``PLATE_INNER`` inner draws of the cells (the drug's on each drawn
plate, and every plate's controls), then the per-plate test and the vote over the drawn plates. Each
replicate's calls are scored like a model's predictions (per gene F1 over the classes present in the labels,
mean over genes; ``embhub.evaluate.metrics.deg_scores``) on each fold's labelled test perturbations; the
quantiles over replicates are kept per fold, and tables use the 0.1 quantile.

Seeds (the study's exact streams are not published; this scheme is embhub's): root ``SeedSequence(seed)``
spawns one child per trial (pooled) or per outer draw (plate vote), and one generator per child draws, in this
order — pooled: the controls, then each labelled perturbation in sorted-id order; plate vote: each labelled
drug's plates (sorted-id order), then per inner draw the controls of each tested plate (sorted) and the cells
of each drug's drawn plates in draw order. A group of n cells is resampled as ``integers(0, n, n)`` over its
cells in file order.

Like the LFC ceiling, resampling is a weight per cell, so the weighted sums and sums of squares of all
replicates of a chunk are accumulated in one pass over the counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from embhub.datasets.deg import deg_labels, moments, plate_vote, welch_scores
from embhub.datasets.pseudobulk import Plan, line_cells
from embhub.datasets.recipe import CellSource, Dataset

POOLED_TRIALS = 20
PLATE_OUTER = 3
PLATE_INNER = 3
DEG_QUANTILES = (0.005, 0.01, 0.1, 0.2, 0.5, 0.8, 0.9, 0.99, 0.995)
DEG_CEILING_QUANTILE = 0.1
METRICS = ("f1", "recall", "precision")


@dataclass
class Members:
    """Cells (global numbers, file order) of one line's DEG groups and of its controls per batch."""

    groups: dict[int, np.ndarray]
    controls: dict[int, np.ndarray]


@dataclass
class Replicates:
    """Weight rows of a chunk of replicates and how to read them back.

    ``weights``: ``(rows, cells)`` resampling counts. ``slots[r]``: per replicate, one list per labelled
    perturbation of ``(row, reference_row)`` pairs, one pair per tested (drawn) group.
    """

    rows: list[np.ndarray]
    cells: list[np.ndarray]
    counts: list[np.ndarray]
    sizes: list[int]
    slots: list[list[list[tuple[int, int]]]]

    def add_row(self, members: np.ndarray, rng: np.random.Generator) -> int:
        drawn = np.bincount(rng.integers(0, len(members), len(members)), minlength=len(members))
        row = len(self.sizes)
        hit = drawn > 0
        self.rows.append(np.full(int(hit.sum()), row, dtype=np.int64))
        self.cells.append(members[hit])
        self.counts.append(drawn[hit].astype(np.float64))
        self.sizes.append(len(members))
        return row


def collect_members(source: CellSource, plan: Plan, index: int, dataset: Dataset, file_offsets) -> Members:
    """Stream the cell tables once and keep the numbers of this line's DEG-group and control cells."""
    cells = line_cells(source, plan, index, dataset, file_offsets, "deg")
    groups = {int(k): g["cell"].to_numpy() for k, g in cells[cells["group"] >= 0].groupby("group")}
    controls = {int(b): g["cell"].to_numpy() for b, g in cells[cells["control"]].groupby("batch")}
    return Members(groups, controls)


def draw_pooled(members: Members, labelled: np.ndarray, seeds: Sequence[np.random.SeedSequence]) -> Replicates:
    reps = Replicates([], [], [], [], [])
    controls = np.sort(np.concatenate(list(members.controls.values())))
    for seed in seeds:
        rng = np.random.default_rng(seed)
        reference = reps.add_row(controls, rng)
        reps.slots.append([[(reps.add_row(members.groups[p], rng), reference)] for p in labelled])
    return reps


def draw_plate_vote(
    members: Members, pairs: np.ndarray, labelled: np.ndarray, seeds: Sequence[np.random.SeedSequence], n_inner: int
) -> Replicates:
    reps = Replicates([], [], [], [], [])
    plates = sorted({int(b) for b in pairs[:, 1]})
    for seed in seeds:
        rng = np.random.default_rng(seed)
        drawn = []
        for p in labelled:
            tested = np.flatnonzero(pairs[:, 0] == p)
            drawn.append(tested[rng.integers(0, len(tested), len(tested))] if len(tested) > 1 else tested)
        for _ in range(n_inner):
            reference = {b: reps.add_row(members.controls[b], rng) for b in plates}
            reps.slots.append(
                [[(reps.add_row(members.groups[k], rng), reference[int(pairs[k, 1])]) for k in ks] for ks in drawn]
            )
    return reps


def weighted_sums(
    source: CellSource, dataset: Dataset, reps: Replicates, file_offsets
) -> tuple[np.ndarray, np.ndarray]:
    """``(Σ w·x, Σ w·x²)`` per weight row ``(rows, G)`` in one pass over the counts (DEG normalisation)."""
    import scipy.sparse as sp

    n_total = int(file_offsets[-1])
    weights = sp.csc_matrix(
        (np.concatenate(reps.counts), (np.concatenate(reps.rows), np.concatenate(reps.cells))),
        shape=(len(reps.sizes), n_total),
    )
    n_genes = len(source.gene_ids)
    sums = np.zeros((len(reps.sizes), n_genes))
    squares = np.zeros((len(reps.sizes), n_genes))
    library = dataset.deg_library
    for file, offset in zip(source.files, file_offsets):
        if weights[:, offset : offset + file.n_cells].nnz == 0:
            continue
        for start, n_rows, normalised in file.matrix.normalised_blocks(file.panel_columns, (library,)):
            part = weights[:, offset + start : offset + start + n_rows]
            if not part.nnz:
                continue
            touched = np.unique(part.indices)
            part = part.tocsr()[touched]
            x = normalised[library]
            sums[touched] += (part @ x).toarray()
            squares[touched] += (part @ x.multiply(x)).toarray()
    return sums, squares


def replicate_calls(reps: Replicates, sums: np.ndarray, squares: np.ndarray) -> list[np.ndarray]:
    """DEG calls ``(n_labelled, G)`` int8 of every replicate: a test per slot, voted per perturbation."""
    mean, var = moments(sums, squares, np.asarray(reps.sizes))
    sizes = np.asarray(reps.sizes, dtype=np.float64)
    calls = []
    for slots in reps.slots:
        owner = np.array([p for p, tests in enumerate(slots) for _ in tests])
        rows = np.array([row for tests in slots for row, _ in tests])
        references = np.array([reference for tests in slots for _, reference in tests])
        tested = np.zeros((len(rows), sums.shape[1]), dtype=np.int8)
        for reference in np.unique(references):
            sel = references == reference
            scores, pvalues = welch_scores(
                mean[rows[sel]], var[rows[sel]], sizes[rows[sel]], mean[reference], var[reference], sizes[reference]
            )
            tested[sel] = deg_labels(scores, pvalues)
        if len(rows) == len(slots):
            calls.append(tested)
            continue
        calls.append(np.stack([plate_vote(tested[owner == p]) for p in range(len(slots))]))
    return calls


def deg_ceiling_line(
    source: CellSource,
    plan: Plan,
    index: int,
    dataset: Dataset,
    labels: np.ndarray,
    mask: np.ndarray,
    folds: np.ndarray,
    seed: int,
    n_trials: int | None = None,
    n_outer: int | None = None,
    n_inner: int | None = None,
    quantiles: Sequence[float] = DEG_QUANTILES,
    memory_budget: float = 1e9,
) -> dict[str, np.ndarray] | None:
    """Quantiles over replicates of each fold's DEG scores: ``{"f1"|"recall"|"precision": (n_folds, Q)}``.

    ``labels`` ``(n_perts, G)``, ``mask`` and ``folds`` ``(n_perts,)`` are the prepared line's. Folds without
    labelled test perturbations get NaN; None when the line has no DEG labels.
    """
    from embhub.evaluate.metrics import deg_scores

    labelled = np.flatnonzero(mask)
    if len(labelled) == 0:
        return None
    line = plan.lines[index]
    file_offsets = source.file_offsets
    members = collect_members(source, plan, index, dataset, file_offsets[:-1])
    pooled = dataset.deg == "pooled"
    n_units = (n_trials or POOLED_TRIALS) if pooled else (n_outer or PLATE_OUTER)
    n_inner = 1 if pooled else (n_inner or PLATE_INNER)
    units = np.random.SeedSequence(seed).spawn(n_units)
    rows_per_unit = len(labelled) + 1 if pooled else n_inner * (len(line.deg_pairs) + len(line.batches))
    per_chunk = max(1, int(memory_budget // (2 * rows_per_unit * len(source.gene_ids) * 8)))
    calls: list[np.ndarray] = []
    for start in range(0, n_units, per_chunk):
        chunk = units[start : start + per_chunk]
        if pooled:
            reps = draw_pooled(members, labelled, chunk)
        else:
            reps = draw_plate_vote(members, line.deg_pairs, labelled, chunk, n_inner)
        calls += replicate_calls(reps, *weighted_sums(source, dataset, reps, file_offsets))
    n_folds = dataset.n_folds
    scores = {metric: np.full((len(calls), n_folds), np.nan) for metric in METRICS}
    for r, predicted in enumerate(calls):
        for fold in range(n_folds):
            test = folds[labelled] == fold
            if test.any():
                result = deg_scores(labels[labelled][test], predicted[test])
                for metric, key in zip(METRICS, ("F1", "recall", "precision")):
                    scores[metric][r, fold] = result[key]
    return {metric: np.quantile(values, quantiles, axis=0).T for metric, values in scores.items()}
