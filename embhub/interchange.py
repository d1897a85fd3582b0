"""Moving embeddings in and out of stores: ``.h5ad`` (rows = ids, as the reference study ships its
gene embeddings), ``.npz`` (arrays ``ids`` and ``vectors``), ``.csv`` and ``.parquet`` (an ``id``
column followed by one column per dimension).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from embhub import __version__
from embhub.errors import InputError, StoreError
from embhub.locks import sole_writer
from embhub.store import (
    COPY_BLOCK_ROWS,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_KEY,
    EmbeddingStore,
    content_digest,
    hash_items,
    is_store_directory,
    now_iso,
)
from embhub.provider import Item

FORMATS = (".h5ad", ".npz", ".csv", ".parquet")


def write_store(
    path: Path,
    ids: np.ndarray,
    blocks: Iterator[np.ndarray],
    dim: int,
    *,
    name: str,
    entity: str,
    key_namespace: str,
    source: str,
    labels: dict[str, np.ndarray] | None = None,
    extra: dict[str, Any] | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
) -> EmbeddingStore:
    """Write a complete store from ids and row blocks of vectors (memory bounded by the block size).

    The store is built beside ``path`` and moved there once complete, so an import that fails (a NaN, a
    wrong width) leaves a store it was to overwrite as it was."""
    import zarr

    ids = np.asarray(ids).astype(str)
    _check_ids(ids, source)
    with sole_writer(path, "import"):
        if path.exists() and not overwrite:
            raise StoreError(f"{path} already exists; pass --overwrite to replace it")
        if path.exists() and not is_store_directory(path):
            raise StoreError(
                f"{path} exists and is not an embhub store; choose another --out or move it away (--overwrite replaces only embhub stores)"
            )
        n = len(ids)
        building = path.with_name(f".{path.name}.importing")
        if building.exists():
            shutil.rmtree(building)
        group = zarr.open_group(str(building), mode="w", zarr_format=3)
        group.create_array("ids", shape=(n,), dtype=str, chunks=(max(n, 1),))[:] = ids
        group.create_array("input_ids", shape=(n,), dtype=str, chunks=(max(n, 1),))[:] = ids
        for label, values in (labels or {}).items():
            group.create_array(f"labels/{label}", shape=(n,), dtype=str, chunks=(max(n, 1),))[:] = np.asarray(values).astype(str)
        vectors = group.create_array(
            "vectors", shape=(n, dim), dtype=dtype, chunks=(max(1, min(COPY_BLOCK_ROWS, n)), max(dim, 1))
        )
        try:
            _write_blocks(vectors, blocks, ids, dim, dtype, source)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        items = [Item(i, i) for i in ids]
        group.attrs[MANIFEST_KEY] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "complete": True,
            "identity": {"imported_from": source},
            "model": {"name": name, "source": f"imported from {source}", "description": ""},
            "provider": {"name": "import", "version": __version__, "licence": "as the source", "citation": ""},
            "parameters": {},
            "checkpoint": None,
            "entity": entity,
            "id_namespace": key_namespace,
            "key_namespace": key_namespace,
            "dim": dim,
            "dtype": dtype,
            "created": now_iso(),
            "completed": now_iso(),
            "embhub_version": __version__,
            "inputs": {"count": n, "sha256": hash_items(items), "source": source},
            "counts": {"done": n, "failed": 0},
            "failures": [],
            "labels": sorted(labels or {}),
            "provenance": extra or {},
            "content_sha256": content_digest(ids, vectors),
        }
        if path.exists():
            shutil.rmtree(path)
        building.rename(path)
        return EmbeddingStore.open(path)


def _write_blocks(vectors, blocks: Iterable[np.ndarray], ids: np.ndarray, dim: int, dtype: str, source: str) -> None:
    """Fill ``vectors`` from row blocks, refusing a wrong width, NaN or inf, or a row count unlike the ids'."""
    start = 0
    for block in blocks:
        block = np.asarray(block, dtype=dtype)
        if block.ndim != 2 or block.shape[1] != dim:
            raise InputError(f"{source}: rows from {start} have shape {block.shape}, expected (*, {dim})")
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            row = start + int(np.argmax(bad))
            raise InputError(f"{source}: the vector of '{ids[row]}' (row {row + 1}) contains NaN or inf; fix or drop it")
        vectors[start : start + len(block)] = block
        start += len(block)
    if start != len(ids):
        raise InputError(f"{source}: {start} vectors for {len(ids)} ids")


def import_file(source: Path, out: Path, *, name: str | None, entity: str, key_namespace: str, overwrite: bool = False):
    suffix = source.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"cannot import {source}: use one of {', '.join(FORMATS)}")
    if not source.exists():
        raise InputError(f"{source} does not exist")
    name = name or source.stem
    common = dict(name=name, entity=entity, key_namespace=key_namespace, source=str(source), overwrite=overwrite)
    if suffix == ".h5ad":
        import anndata

        adata = anndata.read_h5ad(source, backed="r")
        try:
            ids = namespace_keys(np.asarray(adata.obs_names).astype(str), key_namespace, source)
            dim = adata.shape[1]
            return write_store(out, ids, _h5ad_blocks(adata), dim, **common)
        finally:
            adata.file.close()
    if suffix == ".npz":
        with np.load(source, allow_pickle=False) as data:
            if "ids" not in data or "vectors" not in data:
                raise InputError(f"{source} must hold arrays 'ids' and 'vectors' (it has {', '.join(data.files)})")
            ids, vectors = namespace_keys(data["ids"].astype(str), key_namespace, source), data["vectors"]
        return write_store(out, ids, iter([vectors]), vectors.shape[1], **common)
    import pandas as pd

    frame = pd.read_csv(source) if suffix == ".csv" else pd.read_parquet(source)
    if frame.shape[1] < 2:
        raise InputError(f"{source} needs an id column followed by one column per dimension")
    ids = namespace_keys(frame.iloc[:, 0].astype(str).to_numpy(), key_namespace, source)
    values = frame.iloc[:, 1:]
    non_numeric = [c for c in values.columns if not np.issubdtype(values[c].dtype, np.number)]
    if non_numeric:
        raise InputError(f"{source}: column '{non_numeric[0]}' is not numeric; only the first column may hold ids")
    matrix = values.to_numpy(dtype=np.float64)
    return write_store(out, ids, iter([matrix]), matrix.shape[1], **common)


def namespace_keys(ids: np.ndarray, key_namespace: str, source: Path) -> np.ndarray:
    """Imported ids as keys of ``key_namespace``: Ensembl gene ids lose their version suffix and are
    upper-cased, as extracted gene stores are keyed; an id that is not an Ensembl gene id, or neither an
    InChIKey nor a ``drug_name:`` key (as drug-target stores write them), where the namespace says so is
    refused, since no dataset could ever match it."""
    from embhub.identity.drugs import DRUG_NAME_KEY_PREFIX, looks_like_inchikey
    from embhub.identity.genes import ENSEMBL_GENE_ID

    if key_namespace == "ensembl_gene_id":
        matches = [ENSEMBL_GENE_ID.match(key.strip()) for key in ids]
        for row, (key, match) in enumerate(zip(ids, matches), start=1):
            if match is None:
                raise InputError(
                    f"{source}: id '{key}' (row {row}) is not an Ensembl gene id (ENSG…); import with "
                    "--key-namespace gene to have ids resolved as symbols, aliases or Entrez ids, or fix the ids"
                )
        return np.array([match.group(1).upper() for match in matches])
    if key_namespace == "inchikey":
        for row, key in enumerate(ids, start=1):
            if not (looks_like_inchikey(key) or key.startswith(DRUG_NAME_KEY_PREFIX)):
                raise InputError(
                    f"{source}: id '{key}' (row {row}) is not an InChIKey; give InChIKeys or import with another "
                    "--key-namespace (e.g. drug_name)"
                )
    return ids


def export_store(store: EmbeddingStore, target: Path, overwrite: bool = False) -> Path:
    suffix = target.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"cannot export to {target}: use one of {', '.join(FORMATS)}")
    if target.exists() and not overwrite:
        raise InputError(f"{target} already exists; pass --overwrite to replace it")
    ids = store.ids
    if suffix == ".npz":
        np.savez(target, ids=ids, vectors=store.vectors())
    elif suffix == ".h5ad":
        import anndata
        import pandas as pd

        obs = pd.DataFrame(index=pd.Index(ids, name=store.key_namespace))
        obs["input_id"] = store.input_ids
        for label in store.label_names():
            obs[label] = store.labels(label)
        adata = anndata.AnnData(X=store.vectors(), obs=obs)
        adata.uns["embhub_manifest"] = json.dumps(store.manifest, default=str)
        adata.write_h5ad(target)
    else:
        import pandas as pd

        vectors = store.vectors()
        frame = pd.DataFrame(vectors, columns=[f"dim_{i}" for i in range(vectors.shape[1])])
        frame.insert(0, "id", ids)
        if suffix == ".csv":
            frame.to_csv(target, index=False, float_format="%.9g")
        else:
            frame.to_parquet(target, index=False)
    return target


def _h5ad_blocks(adata) -> Iterator[np.ndarray]:
    for start in range(0, adata.shape[0], COPY_BLOCK_ROWS):
        block = adata.X[start : start + COPY_BLOCK_ROWS]
        yield block.toarray() if hasattr(block, "toarray") else np.asarray(block)


def _check_ids(ids: np.ndarray, source: str) -> None:
    seen: dict[str, int] = {}
    for row, key in enumerate(ids):
        if key in seen:
            raise InputError(f"{source}: id '{key}' appears on rows {seen[key] + 1} and {row + 1}; ids must be unique")
        seen[key] = row
    if len(ids) == 0:
        raise InputError(f"{source} holds no rows")


