"""Writing a store batch by batch, resumably (the staging area of ``docs/store-format.md``).

Rows live in ``_staging/`` at their input position; for each batch the data chunks are written first
and the per-row ``status`` chunk last. A new array (``vectors``, a label) is recorded in the manifest
before it is created, so a kill in between never leaves an array the manifest does not know. Zarr
writes each chunk atomically, so a killed run leaves every batch either done or pending, and finishing
compacts the rows into the final arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import zarr

from embhub.errors import StoreError
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
        _check_result(items, result)
        staging = self.group["_staging"]
        status = np.full(stop - start, PENDING, dtype=np.int8)
        keys = np.full(stop - start, "", dtype=object)
        reasons = np.full(stop - start, "", dtype=object)
        rows = np.array([position[i] - start for i in result.input_ids], dtype=np.int64)
        if len(result.input_ids):
            vectors = np.asarray(result.vectors)
            self._ensure_vectors(vectors.shape[1])
            block = np.zeros((stop - start, self.manifest["dim"]), dtype=self.manifest["dtype"])
            block[rows] = vectors
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
            reasons[row] = failure.reason
            status[row] = FAILED
        for name, value in result.counts.items():
            self._ensure_counter(name)[batch] = value
        staging["keys"][start:stop] = keys
        staging["reasons"][start:stop] = reasons
        staging["status"][start:stop] = status

    def _ensure_vectors(self, dim: int) -> None:
        staging = self.group["_staging"]
        if "vectors" in staging:
            if dim != self.manifest["dim"]:
                raise StoreError(
                    f"provider returned {dim}-dimensional vectors after {self.manifest['dim']}-dimensional ones; "
                    "this is a bug in the provider"
                )
            return
        if self.manifest.get("dim") not in (None, dim):
            raise StoreError(f"provider declared dim {self.manifest['dim']} but returned {dim}-dimensional vectors")
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


def interrupted_before_manifest(path: Path) -> bool:
    """Whether an extraction was killed while :meth:`StoreWriter.create` ran: a staging area but no manifest
    yet, so nothing was embedded and the extraction starts afresh."""
    if not (path / "_staging").is_dir():
        return False
    attributes = group_attributes(path)
    return attributes is not None and MANIFEST_KEY not in attributes


def _failure_record(item: Item, reason: str) -> dict[str, Any]:
    return {"input_id": item.input_id, "row": item.row, "value": item.value, "reason": str(reason)}


def _check_result(items: Sequence[Item], result: Embedded) -> None:
    expected = [item.input_id for item in items]
    reported = list(result.input_ids) + [f.input_id for f in result.failures]
    if sorted(reported) != sorted(expected):
        missing = set(expected) - set(reported)
        extra = set(reported) - set(expected)
        raise StoreError(
            f"provider returned an inconsistent batch (missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}); "
            "every item must be embedded or reported as a failure — this is a bug in the provider"
        )
    if len(result.keys) != len(result.input_ids) or len(np.asarray(result.vectors)) != len(result.input_ids):
        raise StoreError("provider returned keys, ids and vectors of different lengths; this is a bug in the provider")
    for name, value in result.counts.items():
        if not (_is_count(value) and isinstance(name, str) and name.isidentifier()):
            raise StoreError(
                f"provider returned the count {name!r}: {value!r}; counts are non-negative integers under "
                "identifier names — this is a bug in the provider"
            )


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0
