"""Assembling fusion inputs: every (perturbation, cell line) row of a prepared dataset with its embeddings.

The study trains one fusion model per fold on all cell lines pooled (benchmark-protocol-details.md §7.1), so
the rows of every cell line are stacked. A perturbation's embeddings do not depend on the cell line, so each
source is kept once per *unique* perturbation ``(n_perts, dim)`` and rows point at it (``row_pert``): with the
four Essential cell lines this stores each vector once instead of four times.

A source that lacks a perturbation contributes a zero vector and ``present = False``; the model masks it out of
attention (§7.2). Stores are aligned to the dataset exactly as ``embhub evaluate`` does (same key
harmonisation and checks), so coverage matches its kNN rows. A row that no source covers cannot be fed to the model: it is left out of training and, at
test time, predicted by its cell line's training mean, like the kNN protocol's fallback; the counts are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from embhub.datasets.prepared import PreparedDataset
from embhub.errors import InputError
from embhub.evaluate.coverage import align_store, refuse_stores_given_twice, resolve_store_paths
from embhub.evaluate.results import manifest_id
from embhub.paths import default_store_dir
from embhub.store import EmbeddingStore


@dataclass
class SourceInfo:
    name: str
    path: str
    store_id: str
    dim: int
    n_covered: int


@dataclass
class FusionData:
    """Pooled rows of a prepared dataset and their embedding sources.

    ``sources[s]`` is ``(n_perts, dim_s)`` float32 with zeros where ``present[:, s]`` is False;
    ``present`` is ``(n_perts, n_sources)``; row arrays (``row_*``, ``lfc``, ``deg``) have ``n_rows`` rows.
    """

    dataset: str
    dataset_id: str
    cell_lines: list[str]
    genes: np.ndarray
    pert_ids: np.ndarray
    source_info: list[SourceInfo]
    sources: list[np.ndarray]
    present: np.ndarray
    row_pert: np.ndarray
    row_cell_line: np.ndarray
    row_fold: np.ndarray
    lfc: np.ndarray
    deg: np.ndarray | None
    deg_mask: np.ndarray | None
    simulated: bool = False

    @property
    def source_names(self) -> list[str]:
        return [info.name for info in self.source_info]

    @property
    def n_rows(self) -> int:
        return len(self.row_pert)

    @property
    def row_pert_ids(self) -> np.ndarray:
        return self.pert_ids[self.row_pert]

    @property
    def row_covered(self) -> np.ndarray:
        """``(n_rows,)`` True where at least one source has the row's perturbation."""
        return self.present[self.row_pert].any(axis=1)

    @property
    def folds(self) -> list[int]:
        return sorted(int(f) for f in np.unique(self.row_fold) if f >= 0)

    def without_source(self, name: str) -> "FusionData":
        """The same rows with one source removed (for leave-one-source-out ablations)."""
        keep = [i for i, info in enumerate(self.source_info) if info.name != name]
        if len(keep) == len(self.source_info):
            raise InputError(f"no fusion source '{name}' (sources: {', '.join(self.source_names)})")
        return FusionData(
            **{
                **self.__dict__,
                "source_info": [self.source_info[i] for i in keep],
                "sources": [self.sources[i] for i in keep],
                "present": self.present[:, keep],
            }
        )


def resolve_store_path(name_or_path: str | Path) -> Path:
    """A store given by path, or by model name (the newest complete store of that model), as ``evaluate``."""
    return resolve_store_paths([str(name_or_path)], default_store_dir())[0]


def load_fusion_data(
    dataset: PreparedDataset,
    stores: Sequence[EmbeddingStore],
    cell_lines: Sequence[str] | None = None,
    task: str = "lfc",
) -> FusionData:
    """Stack the rows of ``cell_lines`` (default: all) and look every perturbation up in every store."""
    if not stores:
        raise InputError("fusion needs at least one embedding store (--stores)")
    lines = list(dict.fromkeys(cell_lines)) if cell_lines else dataset.cell_lines
    blocks = [dataset.cell_line(name) for name in lines]
    if task == "deg" and not all(block.has_deg for block in blocks):
        lacking = [block.name for block in blocks if not block.has_deg]
        raise InputError(f"dataset '{dataset.name}' has no DEG labels for {', '.join(lacking)}; use --task lfc")
    row_ids = np.concatenate([block.pert_ids for block in blocks])
    pert_ids, row_pert = np.unique(row_ids, return_inverse=True)
    sources, present, info = [], [], []
    for store in stores:
        aligned = align_store(store, dataset, list(pert_ids))
        found = aligned.covers(pert_ids)
        matrix = np.zeros((len(pert_ids), aligned.dim), dtype=np.float32)
        if found.any():
            matrix[found] = np.stack([aligned.vectors[pid] for pid in pert_ids[found]])
        sources.append(matrix)
        present.append(found)
        info.append(SourceInfo(aligned.name, aligned.path, aligned.store_id, aligned.dim, int(found.sum())))
    _disambiguate(info)
    lfc = np.concatenate([block.lfc for block in blocks])
    deg = deg_mask = None
    if task == "deg":
        deg = np.concatenate([block.deg for block in blocks])
        deg_mask = np.concatenate([block.deg_mask for block in blocks])
    return FusionData(
        dataset=dataset.name,
        dataset_id=manifest_id(dataset.manifest),
        cell_lines=lines,
        genes=dataset.genes,
        pert_ids=pert_ids,
        source_info=info,
        sources=sources,
        present=np.stack(present, axis=1),
        row_pert=row_pert.astype(np.int64),
        row_cell_line=np.concatenate([np.full(len(block.pert_ids), i) for i, block in enumerate(blocks)]).astype(np.int64),
        row_fold=np.concatenate([block.folds for block in blocks]),
        lfc=lfc,
        deg=deg,
        deg_mask=deg_mask,
        simulated=dataset.simulated,
    )


def _disambiguate(info: list[SourceInfo]) -> None:
    """Refuse a store given twice; two stores of one model get ``name@<store id>`` (as ``embhub evaluate``)."""
    refuse_stores_given_twice(info)
    names = [i.name for i in info]
    for item in info:
        if names.count(item.name) > 1:
            item.name = f"{item.name}@{item.store_id[:8]}"
