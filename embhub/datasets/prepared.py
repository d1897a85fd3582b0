"""The prepared dataset: per (perturbation, cell line) responses, DEG labels, folds and the ceiling.

This is the contract between ``embhub datasets prepare`` (which writes it) and ``embhub evaluate`` /
``embhub fuse`` (which read it). On disk it is one Zarr v3 group (``docs/prepared-format.md``)::

    attrs["embhub_dataset"]        manifest (dataset, kind, entity, key_namespace, cell_lines, protocol, inputs…)
    genes/ids, genes/symbols       (G,) the response gene panel
    cell_lines/<cell line>/
        pert_ids    (n,) str       canonical perturbation keys (Ensembl gene id, InChIKey, CID…)
        pert_labels (n,) str       the dataset's own labels (symbol, drug name…)
        fold        (n,) int8      outer fold 0..n_folds-1 (-1: in no test fold)
        lfc         (n, G) float32 batch-aware average treatment effect (row-chunked; fill NaN, so a lost
                                   chunk reads as missing, never as zeros)
        n_cells     (n,) int32     perturbed cells used
        n_batches   (n,) int32     batches holding the perturbation (and controls)
        deg         (n, G) int8    optional: −1/0/+1 labels; rows with deg_mask False are unlabelled
        deg_mask    (n,) bool      optional: which perturbations have DEG labels
        pert_aliases/<namespace> (n,) str  optional: the perturbations' ids in other namespaces (inchikey, smiles)
        pert_annotations/<field> (n,) str  optional: descriptive fields (Tahoe: targets, moa-broad, moa-fine…)
        ceiling/l2  (n, Q) float32 optional: per-perturbation bootstrap quantiles of the L2 error
                                   (quantiles in the ceiling group's attrs["quantiles"])
        deg_ceiling/f1, recall, precision  (n_folds, Q) float32  optional: per fold, quantiles over
                                   resampling replicates of the DEG scores of re-run DEG calls against the labels
                                   (quantiles in attrs["quantiles"]; NaN for folds without labelled perturbations)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embhub.errors import InputError, StoreError
from embhub.paths import embhub_home

FORMAT_NAME = "embhub-prepared-dataset"
FORMAT_VERSION = 1
MANIFEST_KEY = "embhub_dataset"
ROW_CHUNK = 256


def prepared_dir() -> Path:
    return embhub_home() / "datasets"


def resolve_prepared(name_or_path: str | Path) -> Path:
    """A prepared dataset given by path, or by name under ``$EMBHUB_HOME/datasets/<name>.zarr``."""
    path = Path(name_or_path)
    if (path / "zarr.json").exists():
        return path
    candidate = prepared_dir() / f"{name_or_path}.zarr"
    if candidate.exists():
        return candidate
    if path.exists():
        return path
    known = sorted(p.stem for p in prepared_dir().glob("*.zarr")) if prepared_dir().exists() else []
    raise InputError(
        f"no prepared dataset '{name_or_path}' (prepared: {', '.join(known) or 'none'}); "
        "run 'embhub datasets prepare' or 'embhub datasets demo' first"
    )


@dataclass
class CellLineData:
    """One cell line's prepared responses; arrays are loaded on access."""

    name: str
    group: Any
    source: str = ""
    """The dataset's path, for messages."""

    @property
    def pert_ids(self) -> np.ndarray:
        return np.asarray(self._read("pert_ids"), dtype=object).astype(str)

    @property
    def pert_labels(self) -> np.ndarray:
        return np.asarray(self._read("pert_labels"), dtype=object).astype(str)

    @property
    def folds(self) -> np.ndarray:
        return np.asarray(self._read("fold"), dtype=np.int64)

    @property
    def lfc(self) -> np.ndarray:
        """Responses ``(n, G)``. Written with NaN as fill value, so a lost chunk reads as NaN, never as zeros."""
        lfc = np.asarray(self._read("lfc"), dtype=np.float32)
        if np.isnan(lfc).any():
            raise StoreError(f"prepared dataset {self.source} is damaged: '{self.name}/lfc' has missing values "
                             "(a lost chunk?); prepare the dataset again")
        return lfc

    @property
    def n_cells(self) -> np.ndarray:
        return self._read("n_cells")

    @property
    def n_batches(self) -> np.ndarray:
        return self._read("n_batches")

    @property
    def has_deg(self) -> bool:
        return "deg" in self.group

    @property
    def deg(self) -> np.ndarray | None:
        return np.asarray(self._read("deg"), dtype=np.int8) if self.has_deg else None

    @property
    def deg_mask(self) -> np.ndarray | None:
        return np.asarray(self._read("deg_mask"), dtype=bool) if self.has_deg else None

    def _array(self, name: str) -> Any:
        try:
            return self.group[name]
        except KeyError:
            raise StoreError(f"prepared dataset {self.source}: cell line '{self.name}' has no '{name}' array; "
                             "prepare the dataset again") from None

    def _read(self, name: str) -> np.ndarray:
        """A whole array; a chunk that cannot be decoded is a one-line :class:`StoreError`."""
        from embhub.store import read_selection

        return read_selection(self._array(name), damaged=f"prepared dataset {self.source} is damaged: "
                              f"'{self.name}/{name}' cannot be read ({{error}}); prepare the dataset again")

    def alias_namespaces(self) -> list[str]:
        """Other keys stored for the perturbations (e.g. ``inchikey``, ``smiles`` for Tahoe drugs)."""
        return self._text_fields("pert_aliases")

    def pert_aliases(self, namespace: str) -> np.ndarray | None:
        """The perturbations' ids in another namespace ``(n,)`` ("" where unknown), or None if not stored."""
        return self._text_field("pert_aliases", namespace)

    def annotation_fields(self) -> list[str]:
        """Descriptive fields stored per perturbation (e.g. ``targets``, ``moa-fine`` for Tahoe drugs)."""
        return self._text_fields("pert_annotations")

    def pert_annotation(self, name: str) -> np.ndarray | None:
        """One descriptive field per perturbation ``(n,)`` ("" where unknown), or None if not stored."""
        return self._text_field("pert_annotations", name)

    def _text_fields(self, folder: str) -> list[str]:
        return sorted(self.group[folder].array_keys()) if folder in self.group else []

    def _text_field(self, folder: str, name: str) -> np.ndarray | None:
        return _strings(self.group[f"{folder}/{name}"]) if name in self._text_fields(folder) else None

    @property
    def has_ceiling(self) -> bool:
        return "ceiling" in self.group and "l2" in self.group["ceiling"]

    def ceiling_quantiles(self) -> list[float]:
        return list(self.group["ceiling"].attrs["quantiles"]) if self.has_ceiling else []

    def ceiling_l2(self, quantile: float = 0.9) -> np.ndarray | None:
        """Per-perturbation bootstrap L2 at ``quantile`` ``(n,)``, or None when no ceiling was computed."""
        if not self.has_ceiling:
            return None
        quantiles = self.ceiling_quantiles()
        if quantile not in quantiles:
            raise InputError(f"ceiling of {self.name} has quantiles {quantiles}, not {quantile}")
        return np.asarray(self.group["ceiling/l2"][:, quantiles.index(quantile)])


    @property
    def has_deg_ceiling(self) -> bool:
        return "deg_ceiling" in self.group and "f1" in self.group["deg_ceiling"]

    def deg_ceiling(self, quantile: float = 0.1, metric: str = "f1") -> np.ndarray | None:
        """Per fold, the DEG noise floor at ``quantile`` ``(n_folds,)`` (study tables: F1 at 0.1), or None."""
        if not self.has_deg_ceiling:
            return None
        quantiles = list(self.group["deg_ceiling"].attrs["quantiles"])
        if quantile not in quantiles:
            raise InputError(f"DEG ceiling of {self.name} has quantiles {quantiles}, not {quantile}")
        return np.asarray(self.group[f"deg_ceiling/{metric}"][:, quantiles.index(quantile)], dtype=np.float64)


class PreparedDataset:
    def __init__(self, path: Path, group: Any, manifest: dict[str, Any]):
        self.path = path
        self.group = group
        self.manifest = manifest

    @classmethod
    def open(cls, name_or_path: str | Path, mode: str = "r") -> "PreparedDataset":
        import zarr

        path = resolve_prepared(name_or_path)
        try:
            group = zarr.open_group(str(path), mode=mode, zarr_format=3)
        except Exception as exc:
            raise StoreError(f"{path} is not a readable prepared dataset ({type(exc).__name__})") from None
        manifest = dict(group.attrs).get(MANIFEST_KEY)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise StoreError(f"{path} is not an embhub prepared dataset (no '{MANIFEST_KEY}' manifest)")
        if not manifest.get("complete", False):
            raise StoreError(f"prepared dataset {path} is incomplete; prepare it again")
        return cls(path, group, manifest)

    @property
    def name(self) -> str:
        return self.manifest["dataset"]

    @property
    def entity(self) -> str:
        return self.manifest["entity"]

    @property
    def key_namespace(self) -> str:
        return self.manifest["key_namespace"]

    @property
    def simulated(self) -> bool:
        return bool(self.manifest.get("simulated"))

    @property
    def cell_lines(self) -> list[str]:
        return list(self.manifest["cell_lines"])

    @property
    def genes(self) -> np.ndarray:
        return _strings(self.group["genes/ids"])

    @property
    def gene_symbols(self) -> np.ndarray:
        return _strings(self.group["genes/symbols"])

    @property
    def n_folds(self) -> int:
        return int(self.manifest.get("n_folds", 5))

    def perturbations(self) -> list[dict[str, str]]:
        """One record per perturbation over all cell lines (first seen wins): ``id``, ``label`` and its id in
        every alias namespace (Tahoe: ``smiles``, ``inchikey``), so a drug screen's table feeds SMILES models."""
        records: dict[str, dict[str, str]] = {}
        for line in self.cell_lines:
            data = self.cell_line(line)
            aliases = {namespace: data.pert_aliases(namespace) for namespace in data.alias_namespaces()}
            for row, (pert_id, label) in enumerate(zip(data.pert_ids, data.pert_labels)):
                record = records.setdefault(pert_id, {"id": pert_id, "label": label})
                for namespace, values in aliases.items():
                    if not record.get(namespace):
                        record[namespace] = values[row]
        return list(records.values())

    def cell_line(self, name: str) -> CellLineData:
        if name not in self.cell_lines:
            raise InputError(
                f"dataset '{self.name}' has no cell line '{name}' (cell lines: {', '.join(self.cell_lines)})"
            )
        try:
            group = self.group[f"cell_lines/{name}"]
        except KeyError:
            raise StoreError(f"prepared dataset {self.path} lacks the data of cell line '{name}'; prepare it again") from None
        return CellLineData(name, group, str(self.path))


class PreparedDatasetWriter:
    """Writes a prepared dataset; ``finish()`` marks it complete (readers refuse it before)."""

    def __init__(self, path: Path, manifest: dict[str, Any], gene_ids: Sequence[str], gene_symbols: Sequence[str]):
        import zarr

        from embhub import __version__

        self.path = Path(path)
        refuse_foreign_output(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.group = zarr.open_group(str(self.path), mode="w", zarr_format=3)
        n_genes = len(gene_ids)
        self.n_genes = n_genes
        self.group.create_array("genes/ids", shape=(n_genes,), dtype=str)[:] = np.asarray(gene_ids, dtype=object)
        self.group.create_array("genes/symbols", shape=(n_genes,), dtype=str)[:] = np.asarray(gene_symbols, dtype=object)
        required = {"dataset", "kind", "entity", "key_namespace"}
        missing = required - set(manifest)
        if missing:
            raise ValueError(f"prepared manifest lacks {sorted(missing)}")
        self.manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "embhub_version": __version__,
            "n_folds": 5,
            "simulated": False,
            **manifest,
            "cell_lines": [],
            "complete": False,
        }
        self._save()

    def add_cell_line(
        self,
        name: str,
        pert_ids: Sequence[str],
        pert_labels: Sequence[str],
        folds: Sequence[int],
        lfc: np.ndarray,
        n_cells: Sequence[int],
        n_batches: Sequence[int],
        deg: np.ndarray | None = None,
        deg_mask: Sequence[bool] | None = None,
        aliases: dict[str, Sequence[str]] | None = None,
        annotations: dict[str, Sequence[str]] | None = None,
    ) -> None:
        n = len(pert_ids)
        lfc = np.asarray(lfc, dtype=np.float32)
        if lfc.shape != (n, self.n_genes):
            raise ValueError(f"lfc of {name} has shape {lfc.shape}, expected ({n}, {self.n_genes})")
        if len(set(pert_ids)) != n:
            raise ValueError(f"perturbation ids of {name} are not unique")
        group = self.group.create_group(f"cell_lines/{name}")
        group.create_array("pert_ids", shape=(n,), dtype=str)[:] = np.asarray(pert_ids, dtype=object)
        group.create_array("pert_labels", shape=(n,), dtype=str)[:] = np.asarray(pert_labels, dtype=object)
        group.create_array("fold", shape=(n,), dtype="int8")[:] = np.asarray(folds, dtype=np.int8)
        chunk = (min(ROW_CHUNK, max(n, 1)), max(self.n_genes, 1))
        if np.isnan(lfc).any():
            raise InputError(f"responses of {name} contain NaN; a prepared dataset holds finite responses")
        group.create_array("lfc", shape=lfc.shape, dtype="float32", chunks=chunk, fill_value=np.nan)[:] = lfc
        group.create_array("n_cells", shape=(n,), dtype="int32")[:] = np.asarray(n_cells, dtype=np.int32)
        group.create_array("n_batches", shape=(n,), dtype="int32")[:] = np.asarray(n_batches, dtype=np.int32)
        if deg is not None:
            deg = np.asarray(deg, dtype=np.int8)
            if deg.shape != lfc.shape:
                raise ValueError(f"deg of {name} has shape {deg.shape}, expected {lfc.shape}")
            mask = np.ones(n, bool) if deg_mask is None else np.asarray(deg_mask, dtype=bool)
            group.create_array("deg", shape=deg.shape, dtype="int8", chunks=chunk)[:] = deg
            group.create_array("deg_mask", shape=(n,), dtype="bool")[:] = mask
        for namespace, values in (aliases or {}).items():
            if len(values) != n:
                raise ValueError(f"aliases '{namespace}' of {name} have {len(values)} entries, expected {n}")
            group.create_array(f"pert_aliases/{namespace}", shape=(n,), dtype=str)[:] = np.asarray(values, dtype=object)
        for field_name, values in (annotations or {}).items():
            if len(values) != n:
                raise ValueError(f"annotation '{field_name}' of {name} has {len(values)} entries, expected {n}")
            array = group.create_array(f"pert_annotations/{field_name}", shape=(n,), dtype=str)
            array[:] = np.asarray(values, dtype=object)
        self.manifest["cell_lines"].append(name)
        self._save()

    def finish(self, **manifest_updates: Any) -> PreparedDataset:
        self.manifest.update(manifest_updates)
        self.manifest["complete"] = True
        self._save()
        return PreparedDataset.open(self.path)

    def _save(self) -> None:
        self.group.attrs[MANIFEST_KEY] = self.manifest


def refuse_foreign_output(path: Path) -> None:
    """Writing replaces ``path`` whole: allow a new path, an empty folder or an earlier prepared dataset only."""
    from embhub.store import group_attributes

    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return
    if MANIFEST_KEY not in (group_attributes(path) or {}):
        raise InputError(
            f"{path} exists and is not a prepared dataset; writing there would delete it — give a new path "
            "(e.g. NAME.zarr) or remove it first"
        )


def write_ceiling(path: Path, cell_line: str, quantiles: Sequence[float], l2: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> None:
    """Save per-perturbation bootstrap quantiles ``(n, Q)`` of one cell line into a prepared dataset."""
    _write_quantiles(path, cell_line, "ceiling", quantiles, {"l2": l2, **(extra or {})})


def write_deg_ceiling(path: Path, cell_line: str, quantiles: Sequence[float], scores: dict[str, np.ndarray]) -> None:
    """Save per-fold quantiles ``(n_folds, Q)`` of the DEG noise floor (``f1``, ``recall``, ``precision``)."""
    _write_quantiles(path, cell_line, "deg_ceiling", quantiles, scores)


def _write_quantiles(path: Path, cell_line: str, folder: str, quantiles: Sequence[float], arrays: dict[str, np.ndarray]) -> None:
    """Replace ``cell_lines/<cell_line>/<folder>`` with float32 ``arrays`` and their quantile levels."""
    import zarr

    group = zarr.open_group(str(path), mode="r+", zarr_format=3)
    line = group[f"cell_lines/{cell_line}"]
    if folder in line:
        del line[folder]
    saved = line.create_group(folder)
    saved.attrs["quantiles"] = [float(q) for q in quantiles]
    for key, values in arrays.items():
        values = np.asarray(values, dtype=np.float32)
        saved.create_array(key, shape=values.shape, dtype="float32", fill_value=np.nan)[:] = values


def _strings(array: Any) -> np.ndarray:
    return np.asarray(array[:], dtype=object).astype(str)
