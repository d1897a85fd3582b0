"""The embedding store: one Zarr v3 group per (model, input set). Format: ``docs/store-format.md``.

A complete store holds ``ids`` (canonical keys), ``input_ids`` (the user's ids), optional
``labels/<name>`` string arrays, ``vectors`` (row-chunked) and a manifest in the group attributes
under ``embhub``. :mod:`embhub.store_writer` writes stores; this module reads them, including the rows
an unfinished extraction has staged so far.
"""

from __future__ import annotations

import hashlib
import os
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import zarr

from embhub.errors import StoreError
from embhub.provider import Item

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
        group, manifest = open_store_group(path)
        if not manifest.get("complete"):
            if not allow_incomplete:
                counts = cls(path, group, manifest).counts
                raise StoreError(
                    f"store {path} is incomplete ({counts['done'] + counts['failed']} of "
                    f"{manifest.get('inputs', {}).get('count', '?')} items done); re-run its extraction to finish it"
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
        return int(self._array("ids").shape[0]) if self.complete else self.counts["done"]

    @property
    def counts(self) -> dict[str, int]:
        """``{done, failed}``: the manifest's once complete; while an extraction runs its manifest counts
        nothing yet, so they are counted from the staging status."""
        if self.complete:
            return dict(self.manifest.get("counts", {}))
        try:
            return status_counts(self._status())
        except KeyError:
            return {"done": 0, "failed": 0}

    @property
    def ids(self) -> np.ndarray:
        if not self.complete:
            return self._staged()[0]
        return np.asarray(self._read("ids"), dtype=object).astype(str)

    @property
    def input_ids(self) -> np.ndarray:
        if not self.complete:
            return self._staged()[1]
        return np.asarray(self._read("input_ids"), dtype=object).astype(str)

    def label_names(self) -> list[str]:
        return list(self.manifest.get("labels", []))

    def labels(self, name: str) -> np.ndarray:
        if name not in self.label_names():
            raise StoreError(f"store {self.path} has no label '{name}' (labels: {', '.join(self.label_names()) or 'none'})")
        if not self.complete:
            return self._staged()[2][name]
        return np.asarray(self._read(f"labels/{name}"), dtype=object).astype(str)

    def vectors(self, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """The vectors as a numpy array, ``(n_rows, dim)``; all rows unless ``rows`` selects some."""
        if not self.complete:
            mask = self._status() == EMBEDDED
            staged = self.group["_staging/vectors"]
            whole = np.asarray(staged[:])[mask] if staged.shape[0] else np.zeros((0, self.dim), "float32")
            return whole if rows is None else whole[rows]
        if rows is None or isinstance(rows, slice):
            return self._read("vectors", slice(None) if rows is None else rows)
        return self._read("vectors", (np.asarray(rows), slice(None)), orthogonal=True)

    def iter_vector_blocks(self, block_rows: int = COPY_BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self._array("vectors").shape[0], block_rows):
            yield start, self._read("vectors", slice(start, start + block_rows))

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

    def _read(self, name: str, selection: Any = slice(None), orthogonal: bool = False) -> np.ndarray:
        """Read part of an array; a chunk that cannot be decoded (truncated, overwritten) is a one-line
        :class:`StoreError`, not the codec's traceback."""
        return read_selection(
            self._array(name), selection, orthogonal,
            damaged=f"store {self.path} is damaged: array '{name}' cannot be read ({{error}}); "
            "re-extract it ('embhub stores verify' checks a store)",
        )

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


def open_store_group(path: Path) -> tuple[zarr.Group, dict[str, Any]]:
    if not path.exists():
        raise StoreError(f"no store at {path}")
    if not path.is_dir():
        raise StoreError(f"{path} is a file, not an embedding store (a .zarr directory); give the store's directory")
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path} is not an embedding store (it has no zarr.json); give a store made by 'embhub extract' "
                         "or 'embhub stores import'")
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


def status_counts(status: np.ndarray) -> dict[str, int]:
    """``{done, failed}`` rows of a staging area's per-row ``status``."""
    return {"done": int((status == EMBEDDED).sum()), "failed": int((status == FAILED).sum())}


def group_attributes(path: Path) -> dict[str, Any] | None:
    """The attributes in a Zarr v3 group's ``zarr.json``, read without opening the group (``{}`` before any
    were written); None when there is no readable ``zarr.json`` or its attributes are not a mapping."""
    import json

    try:
        attributes = json.loads((path / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return None
    return attributes if isinstance(attributes, dict) else None


def read_selection(array: zarr.Array, selection: Any = slice(None), orthogonal: bool = False, *, damaged: str) -> np.ndarray:
    """Part of a Zarr array; a chunk that cannot be decoded (truncated, overwritten) raises a one-line
    :class:`StoreError`, ``damaged`` with ``{error}`` filled in, not the codec's traceback."""
    try:
        return np.asarray(array.get_orthogonal_selection(selection) if orthogonal else array[selection])
    except (RuntimeError, ValueError, OSError, EOFError) as exc:
        raise StoreError(damaged.format(error=f"{type(exc).__name__}: {exc}")) from None


STORE_ENTRIES = {"zarr.json", "ids", "input_ids", "labels", "vectors", "_staging"}
"""What a store directory holds: a finished store, an extraction's staging area, or a damaged one of either."""


def is_store_directory(path: Path) -> bool:
    """Whether ``path`` is a directory holding nothing but what a store holds (hidden files aside), so
    ``--overwrite`` may delete it: never a folder of other files, never a file."""
    return path.is_dir() and {p.name for p in path.iterdir() if not p.name.startswith(".")} <= STORE_ENTRIES


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def list_stores(directory: Path) -> list[Path]:
    if not directory.exists():
        return []
    return sorted(p for p in directory.rglob("*.zarr") if (p / "zarr.json").exists())


def manifest_json(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True, default=str)
