"""Batch-aware pseudobulk responses and DEG moments in one streaming pass over the cells.

The response of perturbation p in a cell line (``benchmark-protocol.md`` §2) is a mean over batches of
batch means; it is linear in the cells, so each cell gets a weight fixed by the cell counts in ``obs``
(``1 / (|B_p| · n_{p,b})``) and the whole response is one weighted sum accumulated block by block. The
control profile comes from per-batch control sums. The DEG test needs per-group sums and sums of squares,
accumulated in the same pass. Memory is ``O(groups × genes)`` and does not grow with the number of cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from embhub.datasets.recipe import CellSource, Dataset
from embhub.errors import InputError


@dataclass
class LinePlan:
    """Groups of one cell line. ``counts[p, b]``: cells of perturbation p in batch b (kept cells only)."""

    name: str
    pert_ids: np.ndarray
    pert_labels: np.ndarray
    batches: np.ndarray
    counts: np.ndarray
    control_counts: np.ndarray
    used_batches: np.ndarray
    deg_pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    aliases: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_cells(self) -> np.ndarray:
        return (self.counts * self.used_batches).sum(axis=1)

    @property
    def n_batches(self) -> np.ndarray:
        return self.used_batches.sum(axis=1)


@dataclass
class Plan:
    """Group layout of a whole source and, per file, the per-cell codes into the accumulators."""

    lines: list[LinePlan]
    lfc_offsets: np.ndarray
    control_offsets: np.ndarray
    deg_offsets: np.ndarray
    cell_codes: list[pd.DataFrame]
    exclusions: dict[str, int]
    notes: list[str] = field(default_factory=list)


def plan_groups(source: CellSource, dataset: Dataset) -> Plan:
    """Assign every kept cell to its perturbation, batch and DEG group; refuse lines without controls."""
    cells = _concat_categorical([f.cells for f in source.files])
    exclusions = dict(source.exclusions)
    notes: list[str] = []
    unexplained = int((~cells["keep"]).sum()) - sum(source.exclusions.values())
    if unexplained > 0:
        exclusions["cells left out by the protocol's filters"] = unexplained
    if "counted" not in cells:
        cells["counted"] = cells["keep"]
    kept = cells[cells["keep"]]
    counted = cells[cells["counted"].astype(bool) & ~cells["is_control"].astype(bool)]
    lines: list[LinePlan] = []
    for name in sorted(str(v) for v in kept["cell_line"].unique()):
        compound_counts = counted[counted["cell_line"] == name].groupby(["compound", "batch"], observed=True).size()
        lines.append(_plan_line(name, kept[kept["cell_line"] == name], dataset, exclusions, compound_counts, notes))
    if not lines:
        raise InputError("no cells left after the protocol's filters; check the raw files and the dataset name")
    lfc_sizes = [len(line.pert_ids) for line in lines]
    control_sizes = [len(line.batches) for line in lines]
    deg_sizes = [len(line.pert_ids) if dataset.deg == "pooled" else len(line.deg_pairs) for line in lines]
    plan = Plan(lines, _offsets(lfc_sizes), _offsets(control_sizes), _offsets(deg_sizes), [], exclusions, notes)
    plan.cell_codes = [_codes(plan, f.cells, dataset) for f in source.files]
    return plan


def _concat_categorical(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-file cell tables keeping categorical columns categorical (shared categories)."""
    if len(frames) == 1:
        return frames[0]
    frames = [frame.copy(deep=False) for frame in frames]
    for column in frames[0].columns:
        if all(isinstance(frame[column].dtype, pd.CategoricalDtype) for frame in frames):
            categories = pd.Index(sorted(set().union(*(frame[column].cat.categories for frame in frames))))
            for frame in frames:
                frame[column] = frame[column].cat.set_categories(categories)
    return pd.concat(frames, ignore_index=True)


def positions(series: pd.Series, values: np.ndarray) -> np.ndarray:
    """Index of each entry of ``series`` in ``values`` (−1 if absent), without materialising categorical strings."""
    index = pd.Index(values)
    if isinstance(series.dtype, pd.CategoricalDtype):
        lookup = index.get_indexer(series.cat.categories.astype(str))
        codes = series.cat.codes.to_numpy()
        return np.where(codes >= 0, lookup[codes], -1)
    return index.get_indexer(series.astype(str))


def _offsets(sizes: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _plan_line(
    name: str,
    cells: pd.DataFrame,
    dataset: Dataset,
    exclusions: dict[str, int],
    compound_counts: pd.Series,
    notes: list[str],
) -> LinePlan:
    controls = cells[cells["is_control"]]
    if controls.empty:
        raise InputError(f"cell line '{name}' has no control cells; check the control label of the raw file")
    perturbed = cells[~cells["is_control"]]
    batches = np.array(sorted(str(v) for v in cells["batch"].unique()))
    labels = perturbed.groupby("pert_id", sort=True, observed=True)["pert_label"].first().astype(str)
    labels.index = labels.index.astype(str)
    labels = labels.sort_index()
    pert_ids = labels.index.to_numpy(dtype=str)
    counts = np.zeros((len(pert_ids), len(batches)), dtype=np.int64)
    np.add.at(counts, (positions(perturbed["pert_id"], pert_ids), positions(perturbed["batch"], batches)), 1)
    control_counts = np.bincount(positions(controls["batch"], batches), minlength=len(batches))
    present = counts > 0
    if dataset.control == "batch":
        used = present & (control_counts > 0)[None, :]
        cells_lost = int((counts * (present & ~used)).sum())
        if cells_lost:
            exclusions[f"{name}: cells in batches without controls"] = cells_lost
        lost = used.sum(axis=1) == 0
        if lost.any():
            exclusions[f"{name}: perturbations with cells in no batch that has controls"] = int(lost.sum())
            keep = ~lost
            pert_ids, counts, used = pert_ids[keep], counts[keep], used[keep]
            labels = labels[keep]
    else:
        used = present
        orphans = int((~(present & (control_counts > 0)[None, :]).any(axis=1)).sum())
        if orphans:
            notes.append(
                f"{name}: {orphans} perturbations have cells only in batches without controls "
                "(kept: the global control applies, as in the study)"
            )
    alias_columns = [c for c in cells.columns if c.startswith("alias_")]
    aliases = (
        _first_by_pert(perturbed, alias_columns, pert_ids) if alias_columns else None
    )
    line = LinePlan(name, pert_ids, labels.to_numpy(dtype=str), batches, counts, control_counts, used)
    if aliases is not None:
        line.aliases = {c.removeprefix("alias_"): aliases[c].astype(str).to_numpy() for c in alias_columns}
    if dataset.deg == "plate_vote":
        compound_of = _first_by_pert(perturbed, ["compound"], pert_ids)["compound"]
        pairs = []
        for p, pert in enumerate(pert_ids):
            for b in np.flatnonzero(used[p]):
                n_compound = compound_counts.get((compound_of[pert], batches[b]), 0)
                if n_compound > dataset.deg_min_cells and control_counts[b] > 1:
                    pairs.append((p, b))
        line.deg_pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return line


def _first_by_pert(perturbed: pd.DataFrame, columns: list[str], pert_ids: np.ndarray) -> pd.DataFrame:
    first = perturbed.groupby("pert_id", observed=True)[columns].first()
    first.index = first.index.astype(str)
    return first.reindex(pert_ids).astype(str)


def _codes(plan: Plan, cells: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """Per cell of one file: LFC group and weight, control-batch group, DEG group (−1: none)."""
    n = len(cells)
    lfc_code = np.full(n, -1, dtype=np.int32)
    lfc_weight = np.zeros(n, dtype=np.float64)
    control_code = np.full(n, -1, dtype=np.int32)
    deg_code = np.full(n, -1, dtype=np.int32)
    line_of_cell = positions(cells["cell_line"], np.array([line.name for line in plan.lines]))
    keep = cells["keep"].to_numpy(dtype=bool)
    for i, line in enumerate(plan.lines):
        rows = np.flatnonzero((line_of_cell == i) & keep)
        sub = cells.iloc[rows]
        b = positions(sub["batch"], line.batches)
        is_control = sub["is_control"].to_numpy(dtype=bool)
        control_code[rows[is_control]] = plan.control_offsets[i] + b[is_control]
        p = positions(sub["pert_id"], line.pert_ids)
        valid = ~is_control & (p >= 0)
        valid[valid] &= line.used_batches[p[valid], b[valid]]
        rows_v, p_v, b_v = rows[valid], p[valid], b[valid]
        lfc_code[rows_v] = plan.lfc_offsets[i] + p_v
        lfc_weight[rows_v] = 1.0 / (line.n_batches[p_v] * line.counts[p_v, b_v])
        if dataset.deg == "pooled":
            deg_code[rows_v] = plan.deg_offsets[i] + p_v
        elif len(line.deg_pairs):
            pair_index = pd.Index(line.deg_pairs[:, 0] * len(line.batches) + line.deg_pairs[:, 1])
            found = pair_index.get_indexer(p_v * len(line.batches) + b_v)
            deg_code[rows_v[found >= 0]] = plan.deg_offsets[i] + found[found >= 0]
    return pd.DataFrame({"lfc": lfc_code, "weight": lfc_weight, "control": control_code, "deg": deg_code})


@dataclass
class Sums:
    """Accumulated sums over the whole pass (float64). ``control_*``: per control batch; ``deg_*``: per DEG group.

    Responses use the ``library`` normalisation of the recipe, DEG moments its ``deg_library`` one (the study
    normalises Sciplex3/Tahoe responses over all genes but tests DEGs on the coding panel).
    """

    lfc: np.ndarray
    control_sum: np.ndarray
    control_deg_sum: np.ndarray
    control_deg_sq: np.ndarray
    deg_sum: np.ndarray
    deg_sq: np.ndarray
    deg_n: np.ndarray


def accumulate(source: CellSource, plan: Plan, dataset: Dataset, progress=None) -> Sums:
    """One streaming pass: normalise each block of cells and add it into the group sums."""
    n_genes = len(source.gene_ids)
    n_control, n_deg = plan.control_offsets[-1], plan.deg_offsets[-1]
    sums = Sums(
        lfc=np.zeros((plan.lfc_offsets[-1], n_genes)),
        control_sum=np.zeros((n_control, n_genes)),
        control_deg_sum=np.zeros((n_control, n_genes)),
        control_deg_sq=np.zeros((n_control, n_genes)),
        deg_sum=np.zeros((n_deg, n_genes)),
        deg_sq=np.zeros((n_deg, n_genes)),
        deg_n=np.zeros(n_deg),
    )
    libraries = (dataset.library, dataset.deg_library)
    for file, codes in zip(source.files, plan.cell_codes):
        for start, n_rows, normalised in file.matrix.normalised_blocks(file.panel_columns, libraries):
            code = codes.iloc[start : start + n_rows]
            x, x_deg = normalised[dataset.library], normalised[dataset.deg_library]
            squares = x_deg.multiply(x_deg).tocsr()
            control = code["control"].to_numpy()
            deg = code["deg"].to_numpy()
            _add(sums.lfc, code["lfc"].to_numpy(), code["weight"].to_numpy(), x)
            _add(sums.control_sum, control, None, x)
            _add(sums.control_deg_sum, control, None, x_deg)
            _add(sums.control_deg_sq, control, None, squares)
            _add(sums.deg_sum, deg, None, x_deg)
            _add(sums.deg_sq, deg, None, squares)
            if progress is not None:
                progress(n_rows)
        np.add.at(sums.deg_n, codes["deg"].to_numpy()[codes["deg"].to_numpy() >= 0], 1)
    return sums


def _add(target: np.ndarray, codes: np.ndarray, weights: np.ndarray | None, x) -> None:
    import scipy.sparse as sp

    rows = np.flatnonzero(codes >= 0)
    if len(rows) == 0:
        return
    values = np.ones(len(rows)) if weights is None else weights[rows]
    indicator = sp.csr_matrix((values, (codes[rows], rows)), shape=(target.shape[0], x.shape[0]))
    target += np.asarray((indicator @ x).todense())


def line_responses(plan: Plan, sums: Sums, index: int, control: str) -> tuple[np.ndarray, np.ndarray]:
    """Responses ``(n_perts, G)`` of line ``index`` and its control profile(s) per batch ``(n_batches, G)``."""
    line = plan.lines[index]
    lfc = sums.lfc[plan.lfc_offsets[index] : plan.lfc_offsets[index + 1]]
    control_sum = sums.control_sum[plan.control_offsets[index] : plan.control_offsets[index + 1]]
    has_control = line.control_counts > 0
    control_means = np.zeros_like(control_sum)
    control_means[has_control] = control_sum[has_control] / line.control_counts[has_control, None]
    if control == "global":
        reference = control_means[has_control].mean(axis=0)
        return lfc - reference[None, :], control_means
    weights = line.used_batches / line.n_batches[:, None]
    return lfc - weights @ control_means, control_means
