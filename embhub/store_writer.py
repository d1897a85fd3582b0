"""Writing a store batch by batch, resumably (the staging area of ``docs/store-format.md``).

Rows live in ``_staging/`` at their input position; for each batch the data chunks are written first
and the per-row ``status`` chunk last. A new array (``vectors``, a label) is recorded in the manifest
before it is created, so a kill in between never leaves an array the manifest does not know. Zarr
writes each chunk atomically, so a killed run leaves every batch either done or pending, and finishing
compacts the rows into the final arrays.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import zarr

from embhub.errors import PluginError, StoreError
from embhub.provider import Embedded, Item
from embhub.store import (
    COPY_BLOCK_ROWS,
    EMBEDDED,
    FAILED,
    MANIFEST_KEY,
    PENDING,
    content_digest,
    group_attributes,
    now_iso,
    open_store_group,
    read_selection,
    status_counts,
)


@dataclass
class StagingPlan:
    n_items: int
    batch_size: int

    @property
    def n_batches(self) -> int:
        return -(-self.n_items // self.batch_size)

    def bounds(self, batch: int) -> tuple[int, int]:
        start = batch * self.batch_size
        return start, min(start + self.batch_size, self.n_items)


class StoreWriter:
    """Writes a store batch by batch, resumably. Created by :func:`embhub.extract.extract`."""

    def __init__(self, path: Path, group: zarr.Group, manifest: dict[str, Any], plan: StagingPlan):
        self.path = path
        self.group = group
        self.manifest = manifest
        self.plan = plan

    @classmethod
    def create(cls, path: Path, manifest: dict[str, Any], items: Sequence[Item], batch_size: int) -> "StoreWriter":
        group = zarr.open_group(str(path), mode="w", zarr_format=3)
        n = len(items)
        staging = group.create_group("_staging")
        chunks = (batch_size,)
        staging.create_array("input_ids", shape=(n,), dtype=str, chunks=(max(n, 1),))
        staging["input_ids"][:] = np.array([item.input_id for item in items], dtype=object)
        staging.create_array("keys", shape=(n,), dtype=str, chunks=chunks)
        staging.create_array("reasons", shape=(n,), dtype=str, chunks=chunks)
        staging.create_array("status", shape=(n,), dtype="int8", chunks=chunks, fill_value=PENDING)
        manifest = {**manifest, "complete": False, "batch_size": batch_size, "labels": []}
        manifest.setdefault("counts", {"done": 0, "failed": 0})
        group.attrs[MANIFEST_KEY] = manifest
        return cls(path, group, manifest, StagingPlan(n, batch_size))

    @classmethod
    def resume(cls, path: Path) -> "StoreWriter":
        group, manifest = open_store_group(path)
        n = int(group["_staging/status"].shape[0])
        return cls(path, group, manifest, StagingPlan(n, int(manifest["batch_size"])))

    def pending_batches(self) -> list[int]:
        status = self._staged("status")
        return [b for b in range(self.plan.n_batches) if (status[slice(*self.plan.bounds(b))] == PENDING).any()]

    def write_batch(self, batch: int, items: Sequence[Item], result: Embedded) -> None:
        start, stop = self.plan.bounds(batch)
        position = {item.input_id: start + i for i, item in enumerate(items)}
        vectors = self._checked_vectors(items, result)
        staging = self.group["_staging"]
        status = np.full(stop - start, PENDING, dtype=np.int8)
        keys = np.full(stop - start, "", dtype=object)
        reasons = np.full(stop - start, "", dtype=object)
        rows = np.array([position[i] - start for i in result.input_ids], dtype=np.int64)
        unusable: dict[int, str] = {}
        if len(result.input_ids):
            self._ensure_vectors(vectors.shape[1], items)
            block = np.zeros((stop - start, self.manifest["dim"]), dtype=self.manifest["dtype"])
            with np.errstate(over="ignore", invalid="ignore"):
                block[rows] = vectors
            for row, given, stored in zip(rows, np.isfinite(vectors).all(axis=1), np.isfinite(block[rows]).all(axis=1)):
                if not given:
                    unusable[row] = "the provider returned NaN or inf in its vector"
                elif not stored:
                    unusable[row] = f"its vector overflows {self.manifest['dtype']}; extract with --dtype float32"
            block[list(unusable)] = 0
            staging["vectors"][start:stop] = block
            keys[rows] = result.keys
            status[rows] = EMBEDDED
            for name, values in result.labels.items():
                array = self._ensure_label(name)
                column = np.full(stop - start, "", dtype=object)
                column[rows] = values
                array[start:stop] = column
        for failure in result.failures:
            row = position[failure.input_id] - start
            unusable[row] = failure.reason
        for row, reason in unusable.items():
            keys[row] = ""
            reasons[row] = str(reason)
            status[row] = FAILED
        for name, value in result.counts.items():
            self._ensure_counter(name)[batch] = value
        staging["keys"][start:stop] = keys
        staging["reasons"][start:stop] = reasons
        staging["status"][start:stop] = status

    def _checked_vectors(self, items: Sequence[Item], result: Any) -> np.ndarray:
        """The batch's vectors as a real-valued array, or a one-line :class:`PluginError` naming the provider."""
        problem = _contract_problem(items, result)
        if problem:
            raise self.provider_error(items, f"broke its contract: {problem}")
        return np.asarray(result.vectors) if len(result.input_ids) else np.zeros((0, 0))

    def provider_error(self, items: Sequence[Item], what: str) -> PluginError:
        rows = [item.row for item in items if item.row is not None]
        where = f"rows {min(rows)}–{max(rows)}" if rows else f"items '{items[0].input_id}'–'{items[-1].input_id}'"
        return PluginError(
            f"{provider_label(self.manifest['provider'])}, {where}: {what}; the finished batches are kept, so re-run "
            "the same command to resume once it is fixed, or report it to the provider's authors"
        )

    def _ensure_vectors(self, dim: int, items: Sequence[Item]) -> None:
        staging = self.group["_staging"]
        if "vectors" in staging:
            if dim != self.manifest["dim"]:
                raise self.provider_error(
                    items, f"returned {dim}-dimensional vectors after {self.manifest['dim']}-dimensional ones"
                )
            return
        if self.manifest.get("dim") not in (None, dim):
            raise self.provider_error(items, f"declared dim {self.manifest['dim']} but returned {dim}-dimensional vectors")
        self._update_manifest(dim=dim)
        staging.create_array(
            "vectors",
            shape=(self.plan.n_items, dim),
            dtype=self.manifest["dtype"],
            chunks=(self.plan.batch_size, dim),
            fill_value=0,
        )

    def _ensure_label(self, name: str) -> zarr.Array:
        staging = self.group["_staging"]
        key = f"labels/{name}"
        if key not in staging:
            self._update_manifest(labels=sorted({*self.manifest["labels"], name}))
            staging.create_array(key, shape=(self.plan.n_items,), dtype=str, chunks=(self.plan.batch_size,))
        return staging[key]

    def _ensure_counter(self, name: str) -> zarr.Array:
        """One tally per batch (``Embedded.counts``), so a re-run batch replaces its tally instead of adding to it."""
        staging = self.group["_staging"]
        key = f"counts/{name}"
        if key not in staging:
            self._update_manifest(counters=sorted({*self.manifest.get("counters", []), name}))
            staging.create_array(key, shape=(self.plan.n_batches,), dtype="int64", chunks=(1,), fill_value=0)
        return staging[key]

    def _update_manifest(self, **changes: Any) -> None:
        self.manifest.update(changes)
        self.group.attrs[MANIFEST_KEY] = self.manifest

    def counts(self) -> dict[str, int]:
        return status_counts(self._staged("status"))

    def _staged(self, name: str, selection: Any = slice(None), orthogonal: bool = False) -> np.ndarray:
        """Read a staging array; a chunk that cannot be decoded is a one-line :class:`StoreError`."""
        return read_selection(
            self.group[f"_staging/{name}"], selection, orthogonal,
            damaged=f"store {self.path} is damaged: staged '{name}' cannot be read ({{error}}); "
            "pass --overwrite to start the extraction again",
        )

    def finalize(self, items: Sequence[Item], key_namespace: str) -> dict[str, Any]:
        """Compact staged rows into the final arrays (input order), mark complete, drop staging."""
        status = self._staged("status")
        if (status == PENDING).any():
            raise StoreError(f"store {self.path}: cannot finalize with pending batches")
        keys = self._staged("keys").astype(object)
        reasons = self._staged("reasons").astype(object)
        failures = []
        first_row_of_key: dict[str, int] = {}
        keep = []
        for i, item in enumerate(items):
            if status[i] == FAILED:
                failures.append(_failure_record(item, reasons[i]))
            elif keys[i] in first_row_of_key:
                other = items[first_row_of_key[keys[i]]]
                failures.append(
                    _failure_record(
                        item,
                        f"same {key_namespace} {keys[i]} as input '{other.input_id}' (row {other.row}); kept that one",
                    )
                )
            else:
                first_row_of_key[keys[i]] = i
                keep.append(i)
        keep_rows = np.array(keep, dtype=np.int64)
        n = len(keep_rows)
        dim = self.manifest.get("dim") or 0
        block = max(1, min(COPY_BLOCK_ROWS, n))
        for name in ("ids", "input_ids", "vectors", "labels"):
            if name in self.group:
                del self.group[name]
        self.group.create_array("ids", shape=(n,), dtype=str, chunks=(max(n, 1),))
        self.group.create_array("input_ids", shape=(n,), dtype=str, chunks=(max(n, 1),))
        if n:
            self.group["ids"][:] = keys[keep_rows]
            self.group["input_ids"][:] = self._staged("input_ids").astype(object)[keep_rows]
        for name in self.manifest["labels"]:
            self.group.create_array(f"labels/{name}", shape=(n,), dtype=str, chunks=(max(n, 1),))
            if n:
                self.group[f"labels/{name}"][:] = self._staged(f"labels/{name}").astype(object)[keep_rows]
        vectors = self.group.create_array(
            "vectors", shape=(n, dim), dtype=self.manifest["dtype"], chunks=(block, max(dim, 1))
        )
        for start in range(0, n, COPY_BLOCK_ROWS):
            rows = keep_rows[start : start + COPY_BLOCK_ROWS]
            vectors[start : start + len(rows)] = self._staged("vectors", (rows, slice(None)), orthogonal=True)
        ids = np.asarray(self.group["ids"][:], dtype=object).astype(str)
        tallies = {name: int(self._staged(f"counts/{name}").sum()) for name in self.manifest.get("counters", [])}
        self._update_manifest(
            provenance={**self.manifest.get("provenance", {}), **tallies},
            complete=True,
            completed=now_iso(),
            dim=dim,
            counts={"done": n, "failed": len(failures)},
            failures=failures,
            content_sha256=content_digest(ids, vectors),
        )
        del self.group["_staging"]
        return self.manifest


def provider_label(provider: dict[str, Any]) -> str:
    """``provider 'x' (plugin 'y' from dist 1.0)`` from a manifest's ``provider`` record."""
    plugin, distribution = provider.get("plugin"), provider.get("distribution")
    source = f" from {distribution} {provider.get('distribution_version')}" if distribution else ""
    return f"provider '{provider['name']}'" + (f" (plugin '{plugin}'{source})" if plugin else "")


def interrupted_before_manifest(path: Path) -> bool:
    """Whether an extraction was killed while :meth:`StoreWriter.create` ran: a staging area but no manifest
    yet, so nothing was embedded and the extraction starts afresh."""
    if not (path / "_staging").is_dir():
        return False
    attributes = group_attributes(path)
    return attributes is not None and MANIFEST_KEY not in attributes


def _failure_record(item: Item, reason: str) -> dict[str, Any]:
    return {"input_id": item.input_id, "row": item.row, "value": item.value, "reason": str(reason)}


def _contract_problem(items: Sequence[Item], result: Any) -> str | None:
    """What is wrong with ``result`` as the answer to ``items`` (see :class:`embhub.provider.Embedded`), or None."""
    if not isinstance(result, Embedded):
        return f"embed returned {type(result).__name__}, not an embhub.provider.Embedded"
    reported = Counter([*result.input_ids, *(failure.input_id for failure in result.failures)])
    expected = {item.input_id for item in items}
    for input_id, times in reported.items():
        if input_id not in expected:
            return f"it returned the id '{input_id}', which is not in the batch"
        if times > 1:
            return f"item '{input_id}' is reported {times} times (each item once, embedded or in failures)"
    for item in items:
        if item.input_id not in reported:
            return f"item '{item.input_id}' is neither embedded nor in failures"
    n = len(result.input_ids)
    if len(result.keys) != n:
        return f"{len(result.keys)} keys for {n} embedded items"
    for input_id, key in zip(result.input_ids, result.keys):
        if not isinstance(key, str) or not key:
            return f"key {key!r} of '{input_id}' is not a non-empty string"
    for name, values in result.labels.items():
        if len(values) != n:
            return f"label '{name}' has {len(values)} values for {n} embedded items"
    if n:
        vectors = np.asarray(result.vectors)
        if vectors.ndim != 2 or vectors.shape[0] != n:
            return f"vectors have shape {vectors.shape}, expected ({n}, dim) for {n} embedded items"
        if vectors.dtype.kind not in "biuf":
            return f"vectors have dtype {vectors.dtype}, expected real numbers"
    for name, value in result.counts.items():
        if not (_is_count(value) and isinstance(name, str) and name.isidentifier()):
            return f"count {name!r} is {value!r}; counts are non-negative integers under identifier names"
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0
