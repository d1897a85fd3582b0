"""The embedding store: one Zarr v3 group per (model, input set). Format: ``docs/store-format.md``.

A complete store holds ``ids`` (canonical keys), ``input_ids`` (the user's ids), optional
``labels/<name>`` string arrays, ``vectors`` (row-chunked) and a manifest in the group attributes
under ``embhub``. While an extraction runs, rows live in ``_staging/`` at their input position and a
per-row ``status`` array, written last for each batch, says which batches are done; zarr writes each
chunk atomically, so a killed run leaves every batch either done or absent.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import zarr

from embhub.errors import StoreError
from embhub.provider import Embedded, Item

FORMAT_NAME = "embhub-store"
FORMAT_VERSION = 1
MANIFEST_KEY = "embhub"
PENDING, EMBEDDED, FAILED = 0, 1, 2
COPY_BLOCK_ROWS = 4096


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def hash_items(items: Sequence[Item]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.input_id}\t{item.value}\n".encode())
    return digest.hexdigest()


def content_digest(ids: np.ndarray, vectors: zarr.Array | np.ndarray) -> str:
    """sha256 over the ids and the little-endian vector bytes, read in row blocks."""
    digest = hashlib.sha256()
    digest.update("\n".join(map(str, ids)).encode())
    for start in range(0, vectors.shape[0], COPY_BLOCK_ROWS):
        block = np.asarray(vectors[start : start + COPY_BLOCK_ROWS])
        digest.update(np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


class EmbeddingStore:
    """Read access to a store. ``EmbeddingStore.open(path)`` refuses incomplete or corrupt stores."""

    def __init__(self, path: Path, group: zarr.Group, manifest: dict[str, Any]):
        self.path = path
        self.group = group
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | Path, allow_incomplete: bool = False) -> "EmbeddingStore":
        path = Path(path)
        group, manifest = _open_group(path)
        if not manifest.get("complete"):
            if not allow_incomplete:
                raise StoreError(
                    f"store {path} is incomplete ({manifest.get('counts', {}).get('done', 0)} of "
                    f"{manifest.get('inputs', {}).get('count', '?')} items); re-run its extraction to finish it"
                )
        else:
            for name in ("ids", "input_ids", "vectors"):
                if name not in group:
                    raise StoreError(f"store {path} is corrupt: array '{name}' is missing; re-extract it")
        return cls(path, group, manifest)

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def name(self) -> str:
        return self.manifest.get("model", {}).get("name") or self.path.stem

    @property
    def entity(self) -> str:
        return self.manifest["entity"]

    @property
    def key_namespace(self) -> str:
        return self.manifest["key_namespace"]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def __len__(self) -> int:
        return int(self._array("ids").shape[0]) if self.complete else self.manifest["counts"]["done"]

    @property
    def ids(self) -> np.ndarray:
        if not self.complete:
            return self._staged()[0]
        return np.asarray(self._array("ids")[:], dtype=object).astype(str)

    @property
    def input_ids(self) -> np.ndarray:
        if not self.complete:
            return self._staged()[1]
        return np.asarray(self._array("input_ids")[:], dtype=object).astype(str)

    def label_names(self) -> list[str]:
        return list(self.manifest.get("labels", []))

    def labels(self, name: str) -> np.ndarray:
        if name not in self.label_names():
            raise StoreError(f"store {self.path} has no label '{name}' (labels: {', '.join(self.label_names()) or 'none'})")
        if not self.complete:
            return self._staged()[2][name]
        return np.asarray(self._array(f"labels/{name}")[:], dtype=object).astype(str)

    def vectors(self, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """The vectors as a numpy array, ``(n_rows, dim)``; all rows unless ``rows`` selects some."""
        if not self.complete:
            mask = self._status() == EMBEDDED
            staged = self.group["_staging/vectors"]
            whole = np.asarray(staged[:])[mask] if staged.shape[0] else np.zeros((0, self.dim), "float32")
            return whole if rows is None else whole[rows]
        array = self._array("vectors")
        if rows is None:
            return np.asarray(array[:])
        if isinstance(rows, slice):
            return np.asarray(array[rows])
        return np.asarray(array.get_orthogonal_selection((np.asarray(rows), slice(None))))

    def iter_vector_blocks(self, block_rows: int = COPY_BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        array = self._array("vectors")
        for start in range(0, array.shape[0], block_rows):
            yield start, np.asarray(array[start : start + block_rows])

    def lookup(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows for ``keys``: (found mask ``(n,)``, vectors ``(n_found, dim)``) in the order of ``keys``."""
        index = {key: i for i, key in enumerate(self.ids)}
        rows = np.array([index.get(key, -1) for key in keys], dtype=np.int64)
        found = rows >= 0
        wanted = rows[found]
        if wanted.size == 0:
            return found, np.zeros((0, self.dim), dtype=np.float32)
        order = np.argsort(wanted, kind="stable")
        block = self.vectors(wanted[order])
        out = np.empty_like(block)
        out[order] = block
        return found, out

    def failures(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("failures", []))

    def verify(self) -> list[str]:
        """Re-check integrity against the manifest. Returns the problems found (empty: all good)."""
        problems = []
        manifest = self.manifest
        if not self.complete:
            return [f"store {self.path} is incomplete; re-run its extraction to finish it"]
        try:
            ids = self.ids
            vectors = self._array("vectors")
        except StoreError as exc:
            return [str(exc)]
        n_rows = len(ids)
        if vectors.shape != (n_rows, manifest["dim"]):
            problems.append(f"vectors have shape {vectors.shape}, manifest says ({n_rows}, {manifest['dim']})")
        if str(vectors.dtype) != manifest.get("dtype"):
            problems.append(f"vectors are {vectors.dtype}, manifest says {manifest.get('dtype')}")
        if len(self.input_ids) != n_rows:
            problems.append("input_ids and ids differ in length")
        for name in self.label_names():
            if len(self.labels(name)) != n_rows:
                problems.append(f"label '{name}' and ids differ in length")
        if len(set(ids)) != n_rows:
            problems.append("ids are not unique")
        counts = manifest.get("counts", {})
        if counts.get("done") != n_rows:
            problems.append(f"manifest counts {counts.get('done')} done rows, store has {n_rows}")
        if counts.get("failed") != len(manifest.get("failures", [])):
            problems.append("manifest failure count does not match its failure list")
        try:
            digest = content_digest(ids, vectors)
        except Exception as exc:  # unreadable chunk
            return problems + [f"vectors cannot be read ({type(exc).__name__}: {exc}); re-extract the store"]
        if digest != manifest.get("content_sha256"):
            problems.append("content checksum does not match the manifest: ids or vectors changed or are corrupt")
        for block_start, block in self.iter_vector_blocks():
            if not np.isfinite(block).all():
                problems.append(f"vectors contain NaN or inf (first in rows from {block_start})")
                break
        return problems

    def _array(self, name: str) -> zarr.Array:
        try:
            return self.group[name]
        except KeyError:
            raise StoreError(f"store {self.path} is corrupt: array '{name}' is missing; re-extract it") from None

    def _status(self) -> np.ndarray:
        return np.asarray(self.group["_staging/status"][:])

    def _staged(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        mask = self._status() == EMBEDDED
        staging = self.group["_staging"]
        keys = np.asarray(staging["keys"][:], dtype=object).astype(str)[mask]
        input_ids = np.asarray(staging["input_ids"][:], dtype=object).astype(str)[mask]
        labels = {
            name: np.asarray(staging[f"labels/{name}"][:], dtype=object).astype(str)[mask]
            for name in self.label_names()
        }
        return keys, input_ids, labels


def _open_group(path: Path) -> tuple[zarr.Group, dict[str, Any]]:
    if not path.exists():
        raise StoreError(f"no store at {path}")
    try:
        group = zarr.open_group(str(path), mode="r+" if _writable(path) else "r", zarr_format=3)
    except Exception as exc:
        raise StoreError(f"{path} is not a readable Zarr v3 store ({type(exc).__name__}); is it corrupt?") from None
    manifest = dict(group.attrs).get(MANIFEST_KEY)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise StoreError(f"{path} is a Zarr group but not an embhub store (no '{MANIFEST_KEY}' manifest)")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise StoreError(f"store {path} uses format version {manifest['format_version']}; upgrade embhub to read it")
    return group, manifest


def _writable(path: Path) -> bool:
    import os

    return os.access(path, os.W_OK)


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
        group, manifest = _open_group(path)
        n = int(group["_staging/status"].shape[0])
        return cls(path, group, manifest, StagingPlan(n, int(manifest["batch_size"])))

    def pending_batches(self) -> list[int]:
        status = np.asarray(self.group["_staging/status"][:])
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
        staging.create_array(
            "vectors",
            shape=(self.plan.n_items, dim),
            dtype=self.manifest["dtype"],
            chunks=(self.plan.batch_size, dim),
            fill_value=0,
        )
        self._update_manifest(dim=dim)

    def _ensure_label(self, name: str) -> zarr.Array:
        staging = self.group["_staging"]
        key = f"labels/{name}"
        if key not in staging:
            staging.create_array(key, shape=(self.plan.n_items,), dtype=str, chunks=(self.plan.batch_size,))
            self._update_manifest(labels=sorted({*self.manifest["labels"], name}))
        return staging[key]

    def _update_manifest(self, **changes: Any) -> None:
        self.manifest.update(changes)
        self.group.attrs[MANIFEST_KEY] = self.manifest

    def counts(self) -> dict[str, int]:
        status = np.asarray(self.group["_staging/status"][:])
        return {"done": int((status == EMBEDDED).sum()), "failed": int((status == FAILED).sum())}

    def finalize(self, items: Sequence[Item], key_namespace: str) -> dict[str, Any]:
        """Compact staged rows into the final arrays (input order), mark complete, drop staging."""
        staging = self.group["_staging"]
        status = np.asarray(staging["status"][:])
        if (status == PENDING).any():
            raise StoreError(f"store {self.path}: cannot finalize with pending batches")
        keys = np.asarray(staging["keys"][:], dtype=object)
        reasons = np.asarray(staging["reasons"][:], dtype=object)
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
            self.group["input_ids"][:] = np.asarray(staging["input_ids"][:], dtype=object)[keep_rows]
        for name in self.manifest["labels"]:
            self.group.create_array(f"labels/{name}", shape=(n,), dtype=str, chunks=(max(n, 1),))
            if n:
                self.group[f"labels/{name}"][:] = np.asarray(staging[f"labels/{name}"][:], dtype=object)[keep_rows]
        vectors = self.group.create_array(
            "vectors", shape=(n, dim), dtype=self.manifest["dtype"], chunks=(block, max(dim, 1))
        )
        for start in range(0, n, COPY_BLOCK_ROWS):
            rows = keep_rows[start : start + COPY_BLOCK_ROWS]
            vectors[start : start + len(rows)] = staging["vectors"].get_orthogonal_selection((rows, slice(None)))
        ids = np.asarray(self.group["ids"][:], dtype=object).astype(str)
        self._update_manifest(
            complete=True,
            completed=now_iso(),
            counts={"done": n, "failed": len(failures)},
            failures=failures,
            content_sha256=content_digest(ids, vectors),
        )
        del self.group["_staging"]
        return self.manifest


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


def list_stores(directory: Path) -> list[Path]:
    if not directory.exists():
        return []
    return sorted(p for p in directory.rglob("*.zarr") if (p / "zarr.json").exists())


def remove_store(path: Path) -> None:
    shutil.rmtree(path)


def manifest_json(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True, default=str)
