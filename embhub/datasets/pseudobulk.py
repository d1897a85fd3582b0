"""Batch-aware pseudobulk responses and DEG moments in one streaming pass over the cells.

The response of perturbation p in a cell line (``benchmark-protocol.md`` §2) is a mean over batches of
batch means; it is linear in the cells, so each cell gets a weight fixed by the cell counts
(``1 / (|B_p| · n_{p,b})``) and the whole response is one weighted sum accumulated block by block. The
control profile comes from per-batch control sums. The DEG test needs per-group sums and sums of squares,
accumulated in the same pass.

Two passes over the cell tables, both block by block: planning tallies cells per (cell line, batch,
perturbation) (:class:`CellTally`), then the accumulation turns each block of cells into small integer group
codes next to the same block of counts. Memory is ``O(groups × genes)`` plus one block; nothing is kept per
cell of the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from embhub.datasets.recipe import UNEXPLAINED, CellFile, CellSource, Dataset
from embhub.errors import InputError

KEPT_KEY = ["cell_line", "batch", "pert_id", "is_control"]
COUNTED_KEY = ["cell_line", "compound", "batch"]


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
    """Group layout of a whole source: per cell line its groups, and the offsets of each line's groups in the
    stacked accumulators (LFC rows, control batches, DEG groups)."""

    lines: list[LinePlan]
    lfc_offsets: np.ndarray
    control_offsets: np.ndarray
    deg_offsets: np.ndarray
    exclusions: dict[str, int]
    notes: list[str] = field(default_factory=list)


@dataclass
class CellTally:
    """What planning needs from the cells, as counts per group: its size grows with groups, not cells.

    ``kept[(line, batch, pert_id, is_control)]``: kept cells; ``counted[(line, compound, batch)]``: perturbed
    cells counted for the plate-DEG minimum; ``first[(line, pert_id)]``: the label, compound and aliases of
    the perturbation's first kept cell; ``labels[(line, pert_id)]``: every label its kept cells carry (more than
    one: two perturbations share a key); ``excluded[reason]``: cells left out.
    """

    kept: dict[tuple, int] = field(default_factory=dict)
    counted: dict[tuple, int] = field(default_factory=dict)
    first: dict[tuple, dict[str, str]] = field(default_factory=dict)
    labels: dict[tuple, set[str]] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    alias_columns: list[str] = field(default_factory=list)

    def add(self, cells: pd.DataFrame) -> None:
        keep = cells["keep"].to_numpy(dtype=bool)
        control = cells["is_control"].to_numpy(dtype=bool)
        if not keep.all():
            reasons = cells.loc[~keep, "excluded"].astype(str).replace("", UNEXPLAINED)
            for reason, n in reasons.value_counts().items():
                self.excluded[reason] = self.excluded.get(reason, 0) + int(n)
        _add_counts(self.kept, cells[keep].groupby(KEPT_KEY, observed=True).size())
        counted = cells["counted"].to_numpy(dtype=bool) & ~control
        _add_counts(self.counted, cells[counted].groupby(COUNTED_KEY, observed=True).size())
        aliases = [c for c in cells.columns if c.startswith("alias_")]
        self.alias_columns += [c for c in aliases if c not in self.alias_columns]
        columns = ["pert_label", "compound", *aliases]
        firsts = cells[keep & ~control].groupby(["cell_line", "pert_id"], observed=True, sort=False)[columns].first()
        for key, row in zip(firsts.index, firsts.astype(str).to_dict("records")):
            self.first.setdefault((str(key[0]), str(key[1])), row)
        labelled = cells[keep & ~control].groupby(["cell_line", "pert_id", "pert_label"], observed=True).size()
        for line, pert, label in labelled.index:
            self.labels.setdefault((str(line), str(pert)), set()).add(str(label))

    def line_names(self) -> list[str]:
        return sorted({key[0] for key in self.kept})


def _add_counts(target: dict[tuple, int], sizes: pd.Series) -> None:
    for key, n in sizes.items():
        key = tuple(bool(k) if isinstance(k, (bool, np.bool_)) else str(k) for k in key)
        target[key] = target.get(key, 0) + int(n)


def plan_groups(source: CellSource, dataset: Dataset) -> Plan:
    """Tally every file's cells block by block, then lay out each cell line's groups; refuse lines without
    controls."""
    tally = CellTally()
    file_of_line: dict[str, Path] = {}
    for file in source.files:
        lines_here = set()
        for _, cells in file.cell_blocks():
            tally.add(cells)
            lines_here.update(pd.unique(cells["cell_line"]))
        if dataset.one_file_per_cell_line:
            _refuse_line_in_two_files(lines_here, file.matrix.path, file_of_line, dataset.name)
    exclusions = {**source.exclusions, **tally.excluded}
    notes: list[str] = []
    lines = [_plan_line(name, tally, dataset, exclusions, notes) for name in tally.line_names()]
    if not lines:
        raise InputError("no cells left after the protocol's filters; check the raw files and the dataset name")
    lfc_sizes = [len(line.pert_ids) for line in lines]
    control_sizes = [len(line.batches) for line in lines]
    deg_sizes = [len(line.pert_ids) if dataset.deg == "pooled" else len(line.deg_pairs) for line in lines]
    return Plan(lines, _offsets(lfc_sizes), _offsets(control_sizes), _offsets(deg_sizes), exclusions, notes)


def _refuse_line_in_two_files(lines: set[str], path: Path, file_of_line: dict[str, Path], dataset: str) -> None:
    for line in sorted(lines):
        if line in file_of_line:
            raise InputError(
                f"cell line '{line}' has cells in both {file_of_line[line].name} and {Path(path).name}; {dataset} takes "
                "each cell line from one file (their batch numbers would merge) — give each cell line's screen once"
            )
        file_of_line[line] = Path(path)


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


def _plan_line(name: str, tally: CellTally, dataset: Dataset, exclusions: dict[str, int], notes: list[str]) -> LinePlan:
    kept = {key[1:]: n for key, n in tally.kept.items() if key[0] == name}
    if not any(is_control for (_, _, is_control) in kept):
        raise InputError(f"cell line '{name}' has no control cells; check the control label of the raw file")
    batches = np.array(sorted({batch for (batch, _, _) in kept}))
    pert_ids = np.array(sorted({pert for (_, pert, is_control) in kept if not is_control}), dtype=str)
    _refuse_shared_keys(name, pert_ids, tally, dataset)
    first = [tally.first[(name, pert)] for pert in pert_ids]
    labels = np.array([row["pert_label"] for row in first], dtype=str)
    batch_index = {batch: b for b, batch in enumerate(batches)}
    pert_index = {pert: p for p, pert in enumerate(pert_ids)}
    counts = np.zeros((len(pert_ids), len(batches)), dtype=np.int64)
    control_counts = np.zeros(len(batches), dtype=np.int64)
    for (batch, pert, is_control), n in kept.items():
        if is_control:
            control_counts[batch_index[batch]] += n
        else:
            counts[pert_index[pert], batch_index[batch]] += n
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
            pert_ids, counts, used, labels = pert_ids[keep], counts[keep], used[keep], labels[keep]
            first = [row for row, k in zip(first, keep) if k]
    else:
        used = present
        orphans = int((~(present & (control_counts > 0)[None, :]).any(axis=1)).sum())
        if orphans:
            notes.append(
                f"{name}: {orphans} perturbations have cells only in batches without controls "
                "(kept: the global control applies, as in the study)"
            )
    line = LinePlan(name, pert_ids, labels, batches, counts, control_counts, used)
    line.aliases = {
        c.removeprefix("alias_"): np.array([row.get(c, "") for row in first], dtype=str) for c in tally.alias_columns
    }
    if dataset.deg == "plate_vote":
        pairs = []
        for p, row in enumerate(first):
            for b in np.flatnonzero(used[p]):
                n_compound = tally.counted.get((name, row["compound"], str(batches[b])), 0)
                if n_compound > dataset.deg_min_cells and control_counts[b] > dataset.deg_min_cells:
                    pairs.append((p, b))
        line.deg_pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return line


def _refuse_shared_keys(name: str, pert_ids: np.ndarray, tally: CellTally, dataset: Dataset) -> None:
    """One-line error when perturbations with different labels share one key: their cells would be pooled."""
    for pert in pert_ids:
        labels = sorted(tally.labels.get((name, pert), ()))
        if len(labels) > 1:
            raise InputError(
                f"cell line '{name}': perturbations {', '.join(repr(label) for label in labels)} share the "
                f"{dataset.key_namespace} key '{pert}', so their cells would be pooled into one response; "
                "give each its own key in the raw files (or leave one out)"
            )


def cell_codes(plan: Plan, cells: pd.DataFrame, dataset: Dataset) -> dict[str, np.ndarray]:
    """Per cell of one block: cell line, batch within it, LFC group and weight, control-batch group and DEG
    group (−1: none), as small integer arrays."""
    n = len(cells)
    line_code = np.full(n, -1, dtype=np.int32)
    batch_code = np.full(n, -1, dtype=np.int32)
    lfc_code = np.full(n, -1, dtype=np.int32)
    lfc_weight = np.zeros(n, dtype=np.float64)
    control_code = np.full(n, -1, dtype=np.int32)
    deg_code = np.full(n, -1, dtype=np.int32)
    line_of_cell = positions(cells["cell_line"], np.array([line.name for line in plan.lines]))
    keep = cells["keep"].to_numpy(dtype=bool)
    for i, line in enumerate(plan.lines):
        rows = np.flatnonzero((line_of_cell == i) & keep)
        if len(rows) == 0:
            continue
        sub = cells.iloc[rows]
        b = positions(sub["batch"], line.batches)
        line_code[rows] = i
        batch_code[rows] = b
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
    return {
        "line": line_code,
        "batch": batch_code,
        "lfc": lfc_code,
        "weight": lfc_weight,
        "control": control_code,
        "deg": deg_code,
    }


def code_blocks(plan: Plan, file: CellFile, dataset: Dataset) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(first_row, cell_codes)`` for consecutive blocks of one file's cells."""
    for start, cells in file.cell_blocks():
        yield start, cell_codes(plan, cells, dataset)


def line_cells(
    source: CellSource, plan: Plan, index: int, dataset: Dataset, file_offsets: np.ndarray, grouping: str
) -> pd.DataFrame:
    """One pass over the cell tables: for each cell of line ``index`` that is in a ``grouping`` group
    (``"lfc"``: a perturbation; ``"deg"``: a DEG group) or is a control, its global number (``cell``), its
    group within the line (``group``, negative for none), whether it is a control, and its batch."""
    first = (plan.lfc_offsets if grouping == "lfc" else plan.deg_offsets)[index]
    parts = []
    for file, offset in zip(source.files, file_offsets):
        for start, codes in code_blocks(plan, file, dataset):
            rows = np.flatnonzero((codes["line"] == index) & ((codes[grouping] >= 0) | (codes["control"] >= 0)))
            parts.append(
                pd.DataFrame(
                    {
                        "cell": offset + start + rows,
                        "group": codes[grouping][rows] - first,
                        "control": codes["control"][rows] >= 0,
                        "batch": codes["batch"][rows],
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


class RowCursor:
    """Codes of the rows a count block covers, taken from a stream of consecutive code blocks.

    Requests come in row order (h5ad: block after block) or repeat a range already held (triplet chunks each
    cover every cell); rows before the latest request are dropped, so about one block is held.
    """

    def __init__(self, blocks: Iterator[tuple[int, dict[str, np.ndarray]]]):
        self._blocks = iter(blocks)
        self._start = 0
        self._codes: dict[str, np.ndarray] | None = None

    def take(self, start: int, n_rows: int) -> dict[str, np.ndarray]:
        held = 0 if self._codes is None else len(self._codes["lfc"])
        while self._start + held < start + n_rows:
            first, codes = next(self._blocks)
            if self._codes is None:
                self._start, self._codes = first, codes
            else:
                if first != self._start + held:
                    raise ValueError(f"cell blocks are not consecutive (row {first} after {self._start + held})")
                self._codes = {k: np.concatenate([v, codes[k]]) for k, v in self._codes.items()}
            held = len(self._codes["lfc"])
        if start < self._start:
            raise ValueError(f"rows {start}.. were requested after rows {self._start}.. were dropped")
        offset = start - self._start
        if offset:
            self._codes = {k: v[offset:] for k, v in self._codes.items()}
            self._start = start
        return {k: v[:n_rows] for k, v in self._codes.items()}


def deg_group_sizes(plan: Plan, dataset: Dataset) -> np.ndarray:
    """Cells of every DEG group ``(n_deg_groups,)``: a perturbation's used cells (pooled) or its cells on one
    plate (plate vote)."""
    sizes = [
        line.n_cells if dataset.deg == "pooled" else line.counts[line.deg_pairs[:, 0], line.deg_pairs[:, 1]]
        for line in plan.lines
    ]
    return np.concatenate(sizes).astype(np.float64) if sizes else np.zeros(0)


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
        deg_n=deg_group_sizes(plan, dataset),
    )
    libraries = (dataset.library, dataset.deg_library)
    for file in source.files:
        cursor = RowCursor(code_blocks(plan, file, dataset))
        for start, n_rows, normalised in file.matrix.normalised_blocks(file.panel_columns, libraries):
            code = cursor.take(start, n_rows)
            x, x_deg = normalised[dataset.library], normalised[dataset.deg_library]
            squares = x_deg.multiply(x_deg).tocsr()
            _add(sums.lfc, code["lfc"], code["weight"], x)
            _add(sums.control_sum, code["control"], None, x)
            _add(sums.control_deg_sum, code["control"], None, x_deg)
            _add(sums.control_deg_sq, code["control"], None, squares)
            _add(sums.deg_sum, code["deg"], None, x_deg)
            _add(sums.deg_sq, code["deg"], None, squares)
            if progress is not None:
                progress(n_rows)
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
