"""Experimental-error ceiling: a seeded two-stage (batch, then cell) bootstrap per perturbation.

Protocol (``benchmark-protocol-details.md`` §5.1–5.2). For each perturbation, ``n_outer`` times: resample its
batches with replacement (only when it has more than one), then, ``n_inner`` times, resample the cells of each
drawn batch with replacement and average the drawn batches with equal weight. ``control="global"`` (Essential,
Norman-as-pooled): the control is bootstrapped the same way once, shared by all perturbations, and replicate
(i, j) of the response is ``pert[i, j] − control[i, j]``. ``control="batch"`` (Sciplex3, Tahoe): inside each
drawn plate the perturbation's resampled mean minus the same plate's resampled control mean, from one stream.
The error of each replicate against the point estimate is summarised as quantiles per perturbation.

Seeds: root ``SeedSequence(5050)``; the control takes ``root.spawn(1)[0]``, then the perturbations
``root.spawn(n_perts)`` in sorted-id order; each bootstrap spawns one child per outer draw (which draws the
batches) and each of those one child per drawn batch (which draws the cells, ``n_inner`` times in a row).

Every replicate is a weighted sum of cells, so the weights are drawn first (cheap, from ``obs`` alone,
parallel over perturbations) and the cells are streamed once per chunk of perturbations. Resampling needs the
members of every (perturbation, batch) group, so one cell line at a time the numbers of its cells are held
(about 20 bytes a cell of that line, plus the drawn weights of a chunk of perturbations); nothing is held for
the cells of other lines.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from embhub.datasets.pseudobulk import Plan, line_cells, plan_groups
from embhub.datasets.recipe import CellSource, Dataset
from embhub.locks import sole_writer

SEED = 5050
QUANTILES = (0.1, 0.2, 0.5, 0.8, 0.9, 0.99, 0.995)
N_OUTER = 10
CEILING_QUANTILE = 0.9
DENSE_ROWS = 1024


@dataclass
class Group:
    """Cells of one bootstrap unit, per batch: ``cells[b]`` global cell numbers, ``controls[b]`` (batch mode)."""

    cells: list[np.ndarray]
    controls: list[np.ndarray] | None = None


def replicate_weights(
    group: Group, seed: np.random.SeedSequence, n_outer: int, n_inner: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse weights ``(replicate, cell, weight)`` of the ``n_outer × n_inner`` bootstrap replicates."""
    reps, cells, weights = [], [], []
    children = seed.spawn(n_outer)
    n_batches = len(group.cells)
    for i, child in enumerate(children):
        rng = np.random.default_rng(child)
        drawn = rng.integers(0, n_batches, n_batches) if n_batches > 1 else np.zeros(1, dtype=np.int64)
        for b, grandchild in zip(drawn, child.spawn(len(drawn))):
            cell_rng = np.random.default_rng(grandchild)
            members = group.cells[b]
            picked = members[cell_rng.integers(0, len(members), (n_inner, len(members)))]
            reps.append(np.repeat(i * n_inner + np.arange(n_inner), len(members)))
            cells.append(picked.ravel())
            weights.append(np.full(picked.size, 1.0 / (len(members) * len(drawn))))
            if group.controls is not None:
                controls = group.controls[b]
                picked = controls[cell_rng.integers(0, len(controls), (n_inner, len(controls)))]
                reps.append(np.repeat(i * n_inner + np.arange(n_inner), len(controls)))
                cells.append(picked.ravel())
                weights.append(np.full(picked.size, -1.0 / (len(controls) * len(drawn))))
    return np.concatenate(reps), np.concatenate(cells), np.concatenate(weights)


def point_weights(group: Group) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(cell, weight)`` of the point estimate: batch means averaged over batches (minus controls)."""
    cells, weights = [], []
    for b, members in enumerate(group.cells):
        cells.append(members)
        weights.append(np.full(len(members), 1.0 / (len(members) * len(group.cells))))
        if group.controls is not None:
            cells.append(group.controls[b])
            weights.append(np.full(len(group.controls[b]), -1.0 / (len(group.controls[b]) * len(group.cells))))
    return np.concatenate(cells), np.concatenate(weights)


def line_groups(
    source: CellSource, plan: Plan, index: int, dataset: Dataset, file_offsets: np.ndarray
) -> tuple[list[Group], Group | None]:
    """Bootstrap units of one cell line: one per perturbation (sorted ids) and the pooled control (global mode).

    Streams the cell tables once and keeps the global cell numbers of this line's cells only.
    """
    line = plan.lines[index]
    cells = line_cells(source, plan, index, dataset, file_offsets, "lfc")
    control = dataset.bootstrap_control
    controls = {int(b): g["cell"].to_numpy() for b, g in cells[cells["control"]].groupby("batch")}
    perturbed = cells[cells["group"] >= 0]
    by_pert: dict[int, dict[int, np.ndarray]] = {}
    for (p, b), g in perturbed.groupby(["group", "batch"]):
        by_pert.setdefault(int(p), {})[int(b)] = g["cell"].to_numpy()
    groups = []
    for p in range(len(line.pert_ids)):
        batches = sorted(by_pert[p])
        group_controls = [controls[b] for b in batches] if control == "batch" else None
        groups.append(Group([by_pert[p][b] for b in batches], group_controls))
    pooled = Group([controls[b] for b in sorted(controls)]) if control == "global" else None
    return groups, pooled


def bootstrap_line(
    source: CellSource,
    plan: Plan,
    index: int,
    dataset: Dataset,
    n_outer: int = N_OUTER,
    n_inner: int | None = None,
    quantiles: Sequence[float] = QUANTILES,
    seed: int = SEED,
    n_jobs: int = 1,
    memory_budget: float = 1e9,
) -> dict[str, np.ndarray]:
    """Per-perturbation error quantiles ``(n_perts, Q)`` (keys ``l2``, ``mse``, ``mae``) for one cell line."""
    n_inner = n_inner or dataset.ceiling_inner
    n_reps = n_outer * n_inner
    file_offsets = source.file_offsets
    groups, pooled = line_groups(source, plan, index, dataset, file_offsets[:-1])
    root = np.random.SeedSequence(seed)
    control_seed = root.spawn(1)[0]
    pert_seeds = root.spawn(len(groups))
    n_genes = len(source.gene_ids)
    n_total = int(file_offsets[-1])

    control_reps = None
    if pooled is not None:
        (control_reps,) = _stream(
            source, plan, dataset, [_rows(pooled, control_seed, n_outer, n_inner)], n_reps + 1, n_total, file_offsets
        )
    per_chunk = max(1, int(memory_budget // ((n_reps + 1) * n_genes * 8)))
    results = {key: np.zeros((len(groups), len(quantiles))) for key in ("l2", "mse", "mae")}
    for start in range(0, len(groups), per_chunk):
        chunk = range(start, min(start + per_chunk, len(groups)))
        jobs = [(groups[p], pert_seeds[p], n_outer, n_inner) for p in chunk]
        if n_jobs > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(n_jobs) as pool:
                rows = list(pool.map(_rows_job, jobs, chunksize=max(1, len(jobs) // (4 * n_jobs))))
        else:
            rows = [_rows_job(job) for job in jobs]
        replicates = _stream(source, plan, dataset, rows, n_reps + 1, n_total, file_offsets)
        for p, values in zip(chunk, replicates):
            if control_reps is not None:
                values = values - control_reps
            point, boot = values[0], values[1:]
            diff = boot - point[None, :]
            errors = {
                "l2": np.sqrt((diff**2).sum(axis=1)),
                "mse": (diff**2).mean(axis=1),
                "mae": np.abs(diff).mean(axis=1),
            }
            for key, error in errors.items():
                results[key][p] = np.quantile(error, quantiles)
    return results


def _rows_job(job) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _rows(*job)


def _rows(group: Group, seed, n_outer: int, n_inner: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row 0: the point estimate; rows 1..R: the bootstrap replicates."""
    point_cells, point_w = point_weights(group)
    reps, cells, weights = replicate_weights(group, seed, n_outer, n_inner)
    return (
        np.concatenate([np.zeros(len(point_cells), dtype=np.int64), reps + 1]),
        np.concatenate([point_cells, cells]),
        np.concatenate([point_w, weights]),
    )


def _stream(source, plan, dataset, rows, n_rows, n_total, file_offsets) -> list[np.ndarray]:
    """Weighted sums of normalised cells: one ``(n_rows, G)`` float64 array per weight set in ``rows``."""
    import scipy.sparse as sp

    n_sets = len(rows)
    reps = np.concatenate([r + k * n_rows for k, (r, _, _) in enumerate(rows)])
    cells = np.concatenate([c for _, c, _ in rows])
    weights = np.concatenate([w for _, _, w in rows])
    matrix = sp.csc_matrix((weights, (reps, cells)), shape=(n_sets * n_rows, n_total))
    out = np.zeros((n_sets * n_rows, len(source.gene_ids)))
    for file, offset in zip(source.files, file_offsets):
        if matrix[:, offset : offset + file.n_cells].nnz == 0:
            continue
        library = dataset.ceiling_library
        for start, n_cells, normalised in file.matrix.normalised_blocks(file.panel_columns, (library,)):
            x = normalised[library]
            for sub in range(0, n_cells, DENSE_ROWS):
                part = matrix[:, offset + start + sub : offset + start + min(sub + DENSE_ROWS, n_cells)]
                if part.nnz:
                    out += part @ x[sub : sub + DENSE_ROWS].toarray()
    return [out[k * n_rows : (k + 1) * n_rows] for k in range(n_sets)]


def compute_ceiling(
    dataset: Dataset,
    source: CellSource,
    n_outer: int = N_OUTER,
    n_inner: int | None = None,
    seed: int = SEED,
    n_jobs: int = 1,
) -> tuple[Plan, dict[str, dict[str, np.ndarray]]]:
    """Bootstrap quantiles for every cell line of ``source``: ``{line: {"l2"|"mse"|"mae": (n_perts, Q)}}``."""
    plan = plan_groups(source, dataset)
    results = {}
    for index, line in enumerate(plan.lines):
        results[line.name] = bootstrap_line(source, plan, index, dataset, n_outer, n_inner, seed=seed, n_jobs=n_jobs)
    return plan, results


def in_recorded_order(paths: Sequence, recorded: Sequence[dict], dataset: str) -> list:
    """``paths`` reordered as the manifest's inputs (a recipe may read files by position, e.g. the first
    Essential file orders the panel): each recorded input takes a given file of its size, one of its name first."""
    from pathlib import Path

    from embhub.errors import InputError

    remaining = list(paths)
    ordered = []
    for entry in recorded:
        name = Path(entry["path"]).name
        same_size = [p for p in remaining if p.stat().st_size == entry["bytes"]]
        if not same_size:
            raise InputError(
                f"no raw file given is {name} ({entry['bytes']} bytes), which '{dataset}' was prepared from; "
                "pass that file with --raw"
            )
        chosen = next((p for p in same_size if p.name == name), same_size[0])
        remaining.remove(chosen)
        ordered.append(chosen)
    return ordered


def ceiling_of_prepared(
    name_or_path: str,
    raw: Sequence[str] | None = None,
    n_outer: int = N_OUTER,
    n_inner: int | None = None,
    seed: int = SEED,
    n_jobs: int = 1,
    deg: bool = True,
    deg_trials: int | None = None,
):
    """Bootstrap the ceiling of a prepared dataset from its raw files and save it with the dataset.

    The LFC ceiling always; with ``deg``, also the DEG noise floor (:mod:`embhub.datasets.deg_ceiling`) of
    every cell line with DEG labels (``deg_trials``: pooled trials or plate-vote outer draws). The raw files
    are those recorded in the manifest unless ``raw`` names them; their sizes must match the recorded inputs.
    Returns the reopened :class:`~embhub.datasets.prepared.PreparedDataset`.
    """
    from embhub.datasets.prepared import PreparedDataset
    from embhub.errors import InputError

    counts = {"--outer": n_outer, "--inner": n_inner, "--deg-trials": deg_trials}
    for option, count in counts.items():
        if count is not None and count < 1:
            raise InputError(f"{option} {count}: the ceiling needs at least 1; give a positive count or leave the option out")
    prepared = PreparedDataset.open(name_or_path)
    with sole_writer(prepared.path, "ceiling or preparation"):
        return _bootstrap_into(prepared, raw, n_outer, n_inner, seed, n_jobs, deg, deg_trials)


def _bootstrap_into(prepared, raw, n_outer, n_inner, seed, n_jobs, deg, deg_trials):
    from pathlib import Path

    import zarr

    from embhub.datasets.catalog import dataset_recipe
    from embhub.datasets.deg_ceiling import (
        DEG_CEILING_QUANTILE,
        DEG_QUANTILES,
        PLATE_INNER,
        PLATE_OUTER,
        POOLED_TRIALS,
        deg_ceiling_line,
    )
    from embhub.datasets.prepared import MANIFEST_KEY, PreparedDataset, write_ceiling, write_deg_ceiling
    from embhub.errors import InputError

    manifest = prepared.manifest
    if manifest.get("kind") != "raw":
        raise InputError(
            f"prepared dataset '{prepared.name}' was imported from preprocessed files; the ceiling needs the raw "
            "cells — prepare it from raw files with 'embhub datasets prepare'"
        )
    recorded = manifest["inputs"]
    paths = [Path(p) for p in raw] if raw else [Path(entry["path"]) for entry in recorded]
    if len(paths) != len(recorded):
        raise InputError(f"'{prepared.name}' was prepared from {len(recorded)} raw files; got {len(paths)}")
    for path in paths:
        if not path.exists():
            raise InputError(f"raw file {path} of '{prepared.name}' is missing; pass its new location with --raw")
    paths = in_recorded_order(paths, recorded, prepared.name)
    dataset = dataset_recipe(manifest.get("recipe", prepared.name))
    source = dataset.read(paths, layer=manifest.get("layer"))
    plan, results = compute_ceiling(dataset, source, n_outer, n_inner, seed, n_jobs)
    group = zarr.open_group(str(prepared.path), mode="r+", zarr_format=3)
    summary = {}
    for index, line in enumerate(plan.lines):
        stored = prepared.cell_line(line.name)
        if list(stored.pert_ids) != list(line.pert_ids):
            raise InputError(f"raw files of '{prepared.name}' no longer give its perturbations; prepare it again")
        l2 = results[line.name]["l2"]
        write_ceiling(
            prepared.path, line.name, QUANTILES, l2, {k: v for k, v in results[line.name].items() if k != "l2"}
        )
        q90 = l2[:, QUANTILES.index(CEILING_QUANTILE)]
        folds = stored.folds
        per_fold = {str(f): float(q90[folds == f].mean()) for f in sorted(set(folds)) if f >= 0}
        attrs = {"cell_line_l2_q0.9": float(q90.mean()), "fold_l2_q0.9": per_fold}
        if deg and stored.has_deg:
            scores = deg_ceiling_line(
                source, plan, index, dataset, stored.deg, stored.deg_mask, folds, seed, deg_trials, deg_trials
            )
            if scores is not None:
                write_deg_ceiling(prepared.path, line.name, DEG_QUANTILES, scores)
                f1 = scores["f1"][:, DEG_QUANTILES.index(DEG_CEILING_QUANTILE)]
                attrs["fold_deg_f1_q0.1"] = {str(f): float(v) for f, v in enumerate(f1) if np.isfinite(v)}
                attrs["cell_line_deg_f1_q0.1"] = float(np.nanmedian(f1))
        group[f"cell_lines/{line.name}/ceiling"].attrs.update(attrs)
        summary[line.name] = attrs
    manifest = dict(group.attrs[MANIFEST_KEY])
    manifest["ceiling"] = {
        "seed": seed,
        "n_outer": n_outer,
        "n_inner": n_inner or dataset.ceiling_inner,
        "quantiles": list(QUANTILES),
        "control": dataset.bootstrap_control,
        "library_size_over": dataset.ceiling_library,
        "scheme": "SeedSequence(seed): control spawn(1)[0], perturbations spawn(n) in sorted-id order; "
        "per bootstrap one child per outer draw, one grandchild per drawn batch",
        "summary": summary,
    }
    if deg:
        pooled = dataset.deg == "pooled"
        manifest["ceiling"]["deg"] = {
            "replicates": f"{deg_trials or POOLED_TRIALS} trials of cell resampling"
            if pooled
            else f"{deg_trials or PLATE_OUTER} plate draws × {PLATE_INNER} cell draws",
            "quantiles": list(DEG_QUANTILES),
            "table_quantile": DEG_CEILING_QUANTILE,
            "library_size_over": dataset.deg_library,
            "summary": "per fold F1 at the 0.1 quantile; cell_line_deg_f1_q0.1 is the median over folds",
        }
    group.attrs[MANIFEST_KEY] = manifest
    return PreparedDataset.open(prepared.path)
