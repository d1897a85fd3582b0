"""Extraction: run a provider over an input list, batch by batch, into a resumable store.

Memory is bounded by the batch size: each batch is embedded, written to the store's staging area and
dropped. Re-running the same extraction after an interruption skips finished batches; because batch
boundaries are fixed by the batch size recorded in the store, the finished store is identical to
the one an uninterrupted run writes.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import platform
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from embhub import __version__
from embhub.checksums import sha256_file
from embhub.errors import EmbhubError, InputError, PluginError, StoreError
from embhub.locks import sole_writer
from embhub.paths import default_store_dir
from embhub.plugins import Plugins
from embhub.provider import Item, Provider
from embhub.registry import ModelSpec
from embhub.store import FORMAT_NAME, FORMAT_VERSION, hash_items, is_store_directory, now_iso, open_store_group
from embhub.store_writer import StoreWriter, interrupted_before_manifest, provider_label

DTYPES = ("float32", "float16", "float64")
ProgressCallback = Callable[[int, int], None]
"""Called with (items finished, items total) after each batch."""


@dataclass
class ExtractionResult:
    path: Path
    manifest: dict[str, Any]
    resumed_batches: int
    already_complete: bool


def default_store_path(spec: ModelSpec, items_hash: str, source: str | None) -> Path:
    """``<stores>/<model>/<input stem>-<inputs hash>.zarr``; a run with ``--set`` overrides gets its own
    name (``…-set-<hash of the overridden model>``) so it never collides with the entry's own store."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(source).stem) if source else "default"
    variant = ""
    if spec.overrides:
        variant = "-set-" + hashlib.sha256(spec.identity().encode()).hexdigest()[:8]
    return default_store_dir() / spec.name / f"{stem}-{items_hash[:10]}{variant}.zarr"


def extract(
    spec: ModelSpec,
    provider: Provider,
    items: Sequence[Item] | None,
    out: Path | None = None,
    *,
    plugins: Plugins,
    batch_size: int | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
    source: str | None = None,
    progress: ProgressCallback | None = None,
) -> ExtractionResult:
    if dtype not in DTYPES:
        raise InputError(f"dtype '{dtype}' is not supported (choose one of {', '.join(DTYPES)})")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if items is None:
        items = provider.default_items()
        if items is None:
            raise InputError(f"model '{spec.name}' needs an input list; pass --input FILE")
        source = source or "provider default items"
    if not items:
        raise InputError(f"no items to embed for model '{spec.name}'")
    items_hash = hash_items(items)
    out = Path(out) if out else default_store_path(spec, items_hash, source)
    identity = _identity(spec, items_hash, dtype)
    with sole_writer(out, "extraction"):
        return _extract_into(out, spec, provider, items, identity, plugins, batch_size, dtype, overwrite, source, progress)


def _extract_into(out, spec, provider, items, identity, plugins, batch_size, dtype, overwrite, source, progress):
    writer, resumed = _open_writer(out, spec, provider, items, identity, batch_size, dtype, overwrite, plugins, source)
    if writer is None:
        group, manifest = open_store_group(out)
        return ExtractionResult(out, manifest, 0, already_complete=True)
    pending = writer.pending_batches()
    done_before = len(items) - sum(writer.plan.bounds(b)[1] - writer.plan.bounds(b)[0] for b in pending)
    finished = done_before
    if progress:
        progress(finished, len(items))
    for batch in pending:
        start, stop = writer.plan.bounds(batch)
        batch_items = items[start:stop]
        result = _embed(provider, batch_items, writer)
        writer.write_batch(batch, batch_items, result)
        finished += stop - start
        if progress:
            progress(finished, len(items))
    writer._update_manifest(provenance={**writer.manifest.get("provenance", {}), **_provenance(provider, writer.manifest["provider"])})
    if writer.manifest.get("dim") is None:
        writer._update_manifest(dim=_declared_dim(provider, writer.manifest["provider"]))
    manifest = writer.finalize(items, provider.key_namespace)
    return ExtractionResult(out, manifest, resumed, already_complete=False)


@contextmanager
def _provider_code(blame: Callable[[str], EmbhubError]) -> Iterator[None]:
    """Run a provider's own code: an exception from it (not an embhub error, which already says what to do)
    becomes ``blame("<Type>: <first line>")``, one line naming the provider, instead of a traceback."""
    try:
        yield
    except EmbhubError:
        raise
    except Exception as exc:
        raise blame(f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc


def _embed(provider: Provider, items: Sequence[Item], writer: StoreWriter) -> Any:
    with _provider_code(lambda message: writer.provider_error(items, f"embed raised {message}")):
        return provider.embed(items)


def _declared_dim(provider: Provider, about_provider: dict[str, Any]) -> int | None:
    with _provider_code(lambda message: PluginError(
        f"{provider_label(about_provider)}: its dim property raised {message}; it must not need the model "
        "(return None when only the first batch tells) — report it to the provider's authors"
    )):
        dim = provider.dim
    if dim is None or (isinstance(dim, numbers.Integral) and not isinstance(dim, bool) and dim > 0):
        return None if dim is None else int(dim)
    raise PluginError(
        f"{provider_label(about_provider)} declares dim {dim!r}; it must be a positive whole number, or None when "
        "only the first batch tells — report it to the provider's authors"
    )


def _provenance(provider: Provider, about_provider: dict[str, Any]) -> dict[str, Any]:
    """``provider.provenance()`` as JSON values: paths become text, numpy numbers and arrays plain numbers."""
    facts = provider.provenance()
    if not isinstance(facts, Mapping):
        raise PluginError(
            f"{provider_label(about_provider)}: provenance() returned {type(facts).__name__}, expected a dict; "
            "report it to the provider's authors"
        )
    return json.loads(json.dumps(dict(facts), default=lambda value: value.tolist() if hasattr(value, "tolist") else str(value)))


def _identity(spec: ModelSpec, items_hash: str, dtype: str) -> dict[str, Any]:
    return {"model": spec.identity(), "inputs_sha256": items_hash, "dtype": dtype}


def _open_writer(out, spec, provider, items, identity, batch_size, dtype, overwrite, plugins, source):
    if out.exists() and not is_store_directory(out):
        raise StoreError(
            f"{out} exists and is not an embhub store; choose another --out or move it away (--overwrite replaces only embhub stores)"
        )
    if out.exists() and not overwrite and not interrupted_before_manifest(out):
        try:
            group, manifest = open_store_group(out)
        except StoreError as exc:
            raise StoreError(f"{exc} (pass --overwrite to replace it)") from None
        if manifest.get("identity") != identity:
            raise StoreError(
                f"store {out} holds a different extraction (model, parameters, inputs or dtype differ); "
                "pass --overwrite to replace it or choose another --out"
            )
        _check_same_provider_version(out, manifest, provider)
        _check_same_checkpoint_files(out, manifest, spec, provider)
        if manifest.get("complete"):
            return None, 0
        if "_staging" not in group:
            raise StoreError(f"store {out} is incomplete and has no staging area; pass --overwrite to start again")
        writer = StoreWriter.resume(out)
        if batch_size is not None and batch_size != writer.plan.batch_size:
            raise StoreError(
                f"store {out} was started with batch size {writer.plan.batch_size}; resume it without --batch-size so "
                f"it equals an uninterrupted run, or pass --overwrite to start again with batch size {batch_size}"
            )
        return writer, writer.plan.n_batches - len(writer.pending_batches())
    manifest = _manifest(spec, provider, items, identity, dtype, plugins, source)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    size = provider.default_batch_size if batch_size is None else batch_size
    return StoreWriter.create(out, manifest, items, size), 0


def _manifest(spec, provider, items, identity, dtype, plugins, source) -> dict[str, Any]:
    plugin = plugins.provider_plugin.get(provider.name)
    about_provider = {
        "name": provider.name,
        "version": provider.version,
        "plugin": plugin.name if plugin else None,
        "distribution": plugin.distribution if plugin else None,
        "distribution_version": plugin.version if plugin else None,
        "licence": provider.licence,
        "citation": provider.citation,
    }
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "identity": identity,
        "model": {"name": spec.name, "source": spec.source, "description": spec.description, "overrides": spec.overrides},
        "provider": about_provider,
        "parameters": _plain(provider.parameters),
        "checkpoint": _checkpoint_identity(spec, provider, about_provider),
        "entity": provider.entity,
        "id_namespace": provider.id_namespace,
        "key_namespace": provider.key_namespace,
        "dim": _declared_dim(provider, about_provider),
        "dtype": dtype,
        "created": now_iso(),
        "embhub_version": __version__,
        "python": platform.python_version(),
        "inputs": {"count": len(items), "sha256": identity["inputs_sha256"], "source": source},
        "counts": {"done": 0, "failed": 0},
        "provenance": {},
    }


def _plain(parameters: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(parameters):
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(parameters).items()}
    return dict(parameters or {})


def _checkpoint_identity(spec: ModelSpec, provider: Provider, about_provider: dict[str, Any]) -> dict[str, Any] | None:
    with _provider_code(lambda message: PluginError(
        f"{provider_label(about_provider)}: checkpoint_files() raised {message}; check the model's files and "
        "parameters, or report it to the provider's authors"
    )):
        files = provider.checkpoint_files()
    if spec.checkpoint is None and not files:
        return None
    for path in files:
        if not Path(path).is_file():
            raise InputError(f"model '{spec.name}' reads {path}, which does not exist; {_how_to_point_at(path, provider)}")
    return {
        "name_or_path": spec.checkpoint,
        "revision": spec.revision,
        "files": [{"path": str(f), "sha256": sha256_file(f)} for f in files],
    }


def _check_same_provider_version(out: Path, manifest: dict[str, Any], provider: Provider) -> None:
    """A provider's version stands for its algorithm; an upgraded plugin's vectors must not join or stand in for
    the ones of the version that started the store."""
    recorded = manifest.get("provider", {}).get("version")
    if recorded != provider.version:
        raise StoreError(
            f"store {out} was extracted with provider '{provider.name}' version {recorded}, version {provider.version} "
            "is installed now; pass --overwrite to re-extract it with this version, or choose another --out"
        )


def _check_same_checkpoint_files(out: Path, manifest: dict[str, Any], spec: ModelSpec, provider: Provider) -> None:
    """The identity names the model's files, not their contents: edited weights or data under the same path
    would mix two models' vectors in a resumed store, or hide behind 'already complete'."""
    recorded = {f["path"]: f["sha256"] for f in (manifest.get("checkpoint") or {}).get("files", [])}
    identity = _checkpoint_identity(spec, provider, manifest.get("provider") or {"name": provider.name})
    current = {f["path"]: f["sha256"] for f in (identity or {}).get("files", [])}
    changed = sorted(path for path in recorded.keys() | current.keys() if recorded.get(path) != current.get(path))
    if changed:
        raise StoreError(
            f"store {out} was extracted with other contents of {changed[0]}"
            + (f" and {len(changed) - 1} more files" if len(changed) > 1 else "")
            + "; pass --overwrite to re-extract it with the current files, or choose another --out"
        )


def _how_to_point_at(path: Path, provider: Provider) -> str:
    """The fix for a missing file: name the parameter that points at it, when one does."""
    for name, value in _plain(provider.parameters).items():
        if isinstance(value, str) and value and Path(path) in (Path(value), Path(value).expanduser()):
            return f"download it, or set the parameter {name} to your copy (--set {name}=PATH)"
    return "download it or fix the model's parameters"
