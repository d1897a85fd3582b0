"""Prepare a dataset: read the raw files through a recipe, stream the cells once, write the artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from embhub.checksums import sha256_file
from embhub.datasets.deg import deg_labels, moments, plate_vote, welch_scores
from embhub.datasets.prepared import PreparedDataset, PreparedDatasetWriter, prepared_dir
from embhub.datasets.pseudobulk import Plan, Sums, accumulate, line_responses, plan_groups
from embhub.datasets.recipe import Dataset
from embhub.errors import InputError
from embhub.locks import sole_writer


def default_output(name: str) -> Path:
    return prepared_dir() / f"{name}.zarr"


def assign_folds(pert_ids: Sequence[str], n_folds: int = 5, seed: int = 42) -> dict[str, int]:
    """Fold of each perturbation: a seeded permutation of the sorted ids split into near-equal groups.

    The study's Norman rule (``np.random.seed(42)``, ``permutation``, ``array_split``), applied to sorted ids so
    the assignment depends only on the set of perturbations. The study's own folds come with its files
    (``embhub datasets import``).
    """
    ids = np.array(sorted(set(pert_ids)))
    order = np.random.RandomState(seed).permutation(len(ids))
    folds: dict[str, int] = {}
    for fold, members in enumerate(np.array_split(order, n_folds)):
        for member in members:
            folds[str(ids[member])] = fold
    return folds


def given_folds(folds: dict[str, int], labels: Sequence[str], source: str) -> dict[str, int]:
    """The given fold of every perturbation label; a label the splits file lacks is a one-line error."""
    missing = sorted({str(label) for label in labels} - set(folds))
    if missing:
        raise InputError(
            f"{source}: {len(missing)} perturbation(s) of the screen have no fold there (first: '{missing[0]}'); "
            "give a complete splits file, or leave it out and embhub assigns folds"
        )
    return {str(label): folds[str(label)] for label in labels}


def prepare_dataset(
    dataset: Dataset,
    raw: Sequence[Path],
    out: Path | None = None,
    layer: str | None = None,
    extra_manifest: dict[str, Any] | None = None,
    name: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> PreparedDataset:
    """Read ``raw`` with ``dataset``'s recipe and write the prepared artifact (default under $EMBHUB_HOME)."""
    raw = [Path(p) for p in raw]
    for path in raw:
        if not path.exists():
            raise InputError(f"raw file {path} does not exist")
    name = name or dataset.name
    out = Path(out) if out else default_output(name)
    with sole_writer(out, "preparation"):
        return _prepare(dataset, raw, out, layer, extra_manifest, name, progress)


def _prepare(dataset, raw, out, layer, extra_manifest, name, progress) -> PreparedDataset:
    source = dataset.read(raw, layer=layer)
    plan = plan_groups(source, dataset)
    sums = accumulate(source, plan, dataset, progress)
    by_label = dataset.folds_by_label or source.given_folds is not None
    fold_basis = [line.pert_labels if by_label else line.pert_ids for line in plan.lines]
    if source.given_folds is None:
        folds = assign_folds(np.concatenate(fold_basis), dataset.n_folds, dataset.fold_seed)
    else:
        folds = given_folds(source.given_folds, np.concatenate(fold_basis), source.folds_source)
    manifest = {
        "dataset": name,
        "recipe": dataset.name,
        "kind": "raw",
        "entity": dataset.entity,
        "key_namespace": source.key_namespace or dataset.key_namespace,
        "description": dataset.description,
        "citation": dataset.citation,
        "n_folds": dataset.n_folds if source.given_folds is None else len(set(folds.values())),
        "protocol": dataset.protocol() | ({"fold_rule": f"given by {source.folds_source}"} if source.given_folds else {}),
        "inputs": [{"path": str(p.resolve()), "sha256": sha256_file(p), "bytes": p.stat().st_size} for p in raw],
        "layer": layer,
        "notes": source.notes + plan.notes,
        **(extra_manifest or {}),
    }
    writer = PreparedDatasetWriter(out, manifest, source.gene_ids, source.gene_symbols)
    for index, (line, fold_keys) in enumerate(zip(plan.lines, fold_basis)):
        lfc, _ = line_responses(plan, sums, index, dataset.control)
        deg, deg_mask = line_deg(plan, sums, index, dataset)
        writer.add_cell_line(
            line.name,
            line.pert_ids,
            line.pert_labels,
            [folds[p] for p in fold_keys],
            lfc,
            line.n_cells,
            line.n_batches,
            deg=deg,
            deg_mask=deg_mask,
            aliases=line.aliases or None,
            annotations=line_annotations(source.pert_annotations, line.pert_ids),
        )
    exclusions = dict(plan.exclusions)
    return writer.finish(
        exclusions=exclusions,
        counts={
            line.name: {
                "perturbations": int(len(line.pert_ids)),
                "control_cells": int(line.control_counts.sum()),
                "perturbed_cells": int(line.n_cells.sum()),
                "batches": int(len(line.batches)),
            }
            for line in plan.lines
        },
    )


def line_annotations(annotations: dict[str, dict[str, str]], pert_ids) -> dict[str, list[str]] | None:
    """Per annotation field, one value per perturbation of a line ("" where the source has none)."""
    fields = sorted({name for values in annotations.values() for name in values})
    if not fields:
        return None
    return {name: [annotations.get(str(p), {}).get(name, "") for p in pert_ids] for name in fields}


def line_deg(plan: Plan, sums: Sums, index: int, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """DEG labels ``(n_perts, G)`` int8 and which perturbations have them ``(n_perts,)``."""
    line = plan.lines[index]
    n_genes = sums.lfc.shape[1]
    labels = np.zeros((len(line.pert_ids), n_genes), dtype=np.int8)
    mask = np.zeros(len(line.pert_ids), dtype=bool)
    control = slice(plan.control_offsets[index], plan.control_offsets[index + 1])
    groups = slice(plan.deg_offsets[index], plan.deg_offsets[index + 1])
    mean, var = moments(sums.deg_sum[groups], sums.deg_sq[groups], sums.deg_n[groups])
    if dataset.deg == "pooled":
        n_control = line.control_counts.sum()
        if n_control <= dataset.deg_min_cells:
            return labels, mask
        (ref_mean,), (ref_var,) = moments(
            sums.control_deg_sum[control].sum(axis=0, keepdims=True),
            sums.control_deg_sq[control].sum(axis=0, keepdims=True),
            np.array([n_control]),
        )
        counts = sums.deg_n[groups]
        mask = counts > dataset.deg_min_cells
        scores, pvalues = welch_scores(mean[mask], var[mask], counts[mask], ref_mean, ref_var, n_control)
        labels[mask] = deg_labels(scores, pvalues)
        return labels, mask
    ref_mean, ref_var = moments(sums.control_deg_sum[control], sums.control_deg_sq[control], line.control_counts)
    per_pair = np.zeros((len(line.deg_pairs), n_genes), dtype=np.int8)
    for k, (p, b) in enumerate(line.deg_pairs):
        scores, pvalues = welch_scores(
            mean[k : k + 1],
            var[k : k + 1],
            sums.deg_n[groups][k : k + 1],
            ref_mean[b],
            ref_var[b],
            line.control_counts[b],
        )
        per_pair[k] = deg_labels(scores, pvalues)[0]
    for p in np.unique(line.deg_pairs[:, 0]) if len(line.deg_pairs) else []:
        labels[p] = plate_vote(per_pair[line.deg_pairs[:, 0] == p])
        mask[p] = True
    return labels, mask
