"""Named models: ``registry.yaml`` maps a model name to a provider, its parameters and checkpoint.

Sources, later ones shadowing earlier ones by name: the built-in ``registry.yaml``, entries that
plugins register, the user's ``$EMBHUB_HOME/registry.yaml``, files in ``$EMBHUB_REGISTRY``
(``os.pathsep``-separated) and files passed with ``--registry``. A name may appear only once per
file. Files are read with a safe YAML loader. A plugin's malformed entry, or a name two plugins register,
is refused for that name only (a registry file may define it), so one broken plugin never blocks the rest.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import Any, Iterable

import yaml

from embhub.errors import RegistryError
from embhub.paths import embhub_home
from embhub.plugins import Plugins
from embhub.provider import Provider

BUILTIN_REGISTRY = Path(__file__).with_name("registry.yaml")
ENTRY_KEYS = {"provider", "parameters", "checkpoint", "revision", "description"}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    provider: str
    parameters: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    revision: str | None = None
    description: str = ""
    source: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Values given on the command line (``--set``) for this run, already merged into the fields above."""

    def identity(self) -> str:
        """A canonical JSON string of what determines this model's vectors."""
        return json.dumps(
            {
                "provider": self.provider,
                "parameters": self.parameters,
                "checkpoint": self.checkpoint,
                "revision": self.revision,
            },
            sort_keys=True,
            default=str,
        )


@dataclass
class Registry:
    models: dict[str, ModelSpec]
    broken: dict[str, str] = field(default_factory=dict)
    """Model name → why a plugin's entry for it was refused; other models stay usable."""

    def get(self, name: str) -> ModelSpec:
        if name in self.broken:
            raise RegistryError(self.broken[name])
        if name in self.models:
            return self.models[name]
        close = difflib.get_close_matches(name, self.models, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else "; run 'embhub models' to list them"
        raise RegistryError(f"no model named '{name}' in the registry{hint}")

    def resolve(self, name: str, plugins: Plugins, overrides: dict[str, Any] | None = None) -> tuple[ModelSpec, Provider]:
        """The model's spec and a provider instance with validated parameters; ``overrides`` replace entry
        parameters (or ``checkpoint`` / ``revision``) for this run and are validated like the entry."""
        spec = with_overrides(self.get(name), overrides or {})
        provider_cls = provider_for(spec, plugins)
        return spec, provider_cls(build_parameters(spec, provider_cls))

    def problems(self, plugins: Plugins) -> list[str]:
        found = list(self.broken.values())
        for spec in self.models.values():
            try:
                build_parameters(spec, provider_for(spec, plugins))
            except RegistryError as exc:
                found.append(str(exc))
        return found


def load_registry(plugins: Plugins, extra_files: Iterable[str | Path] = ()) -> Registry:
    models: dict[str, ModelSpec] = {}
    for entry in _read_file(BUILTIN_REGISTRY, "built-in"):
        models[entry.name] = entry
    plugin_names: dict[str, str] = {}
    broken: dict[str, str] = {}
    for raw in plugins.model_entries:
        raw = dict(raw)
        name, source = raw.pop("name"), raw.pop("source")
        if name in plugin_names:
            both = " and ".join(sorted([plugin_names[name], source]))
            broken[name] = f"model '{name}' is registered by both {both}; uninstall one of them or define it in a registry file"
            continue
        plugin_names[name] = source
        try:
            models[name] = _entry(name, raw, source)
        except RegistryError as exc:
            broken[name] = f"{exc}; fix the plugin or report it to its authors"
    for name in broken:
        models.pop(name, None)
    user_files = [embhub_home() / "registry.yaml"]
    user_files += [Path(p) for p in os.environ.get("EMBHUB_REGISTRY", "").split(os.pathsep) if p]
    explicit = [Path(p) for p in extra_files]
    for path in user_files:
        if path.exists():
            for entry in _read_file(path, str(path)):
                models[entry.name] = entry
                broken.pop(entry.name, None)
    seen: dict[str, Path] = {}
    for path in explicit:
        if not path.exists():
            raise RegistryError(f"registry file {path} does not exist")
        for entry in _read_file(path, str(path)):
            if entry.name in seen and seen[entry.name] != path:
                raise RegistryError(f"model '{entry.name}' is defined in both {seen[entry.name]} and {path}")
            seen[entry.name] = path
            models[entry.name] = entry
            broken.pop(entry.name, None)
    return Registry(models, broken)


def with_overrides(spec: ModelSpec, overrides: dict[str, Any]) -> ModelSpec:
    if not overrides:
        return spec
    parameters = {**spec.parameters, **{k: v for k, v in overrides.items() if k not in ("checkpoint", "revision")}}
    changed = {k: overrides[k] for k in ("checkpoint", "revision") if k in overrides}
    shown = ", ".join(f"{k}={v}" for k, v in overrides.items())
    return replace(spec, parameters=parameters, source=f"{spec.source}; --set {shown}", overrides=dict(overrides), **changed)


def parse_overrides(assignments: Iterable[str]) -> dict[str, Any]:
    """``["radius=3", "fasta=my.fasta"]`` → ``{"radius": 3, "fasta": "my.fasta"}`` (values read as YAML scalars)."""
    overrides: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RegistryError(f"--set '{assignment}' is not KEY=VALUE; write e.g. --set radius=3")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if isinstance(value, (dict, list)):
            value = text
        if isinstance(value, str):
            value = _number_or_text(value)
        overrides[key] = value
    return overrides


def _number_or_text(text: str) -> Any:
    """YAML 1.1 reads ``1e-3`` as text; a command-line value that is a number should be one."""
    try:
        return float(text) if any(c in text.lower() for c in ".e") else int(text)
    except ValueError:
        return text


def provider_for(spec: ModelSpec, plugins: Plugins) -> type[Provider]:
    if spec.provider in plugins.unusable:
        raise RegistryError(f"model '{spec.name}' ({spec.source}): {plugins.unusable[spec.provider]}")
    if spec.provider not in plugins.providers:
        known = ", ".join(sorted(plugins.providers)) or "none"
        chosen = os.environ.get("EMBHUB_LOAD_PLUGINS")
        if chosen is not None:
            raise RegistryError(
                f"model '{spec.name}' ({spec.source}) names provider '{spec.provider}', which is not loaded: "
                f"EMBHUB_LOAD_PLUGINS='{chosen}' loads only those plugins (providers: {known}); add its plugin there or unset it"
            )
        raise RegistryError(
            f"model '{spec.name}' ({spec.source}) names provider '{spec.provider}', which is not "
            f"installed (installed: {known}); install its plugin or fix the entry"
        )
    return plugins.providers[spec.provider]


def build_parameters(spec: ModelSpec, provider_cls: type[Provider]) -> Any:
    """Check the entry's parameters against the provider's ``Parameters`` dataclass and build it."""
    fields = {f.name: f for f in provider_cls.parameter_fields()}
    values = dict(spec.parameters)
    for key in ("checkpoint", "revision"):
        if getattr(spec, key) is not None:
            if key not in fields:
                raise RegistryError(
                    f"model '{spec.name}': provider '{spec.provider}' takes no {key}; remove it from the entry"
                )
            values[key] = getattr(spec, key)
    hints = typing.get_type_hints(provider_cls.Parameters)
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise RegistryError(
                f"model '{spec.name}': provider '{spec.provider}' has no parameter '{key}' (parameters: {known})"
            )
        expected = hints.get(key)
        if isinstance(value, str) and not _matches(value, expected) and _takes_path(expected):
            value = values[key] = Path(value)
        if not _matches(value, expected):
            raise RegistryError(
                f"model '{spec.name}': parameter '{key}' = {value!r} should be {_describe(expected)}"
            )
    try:
        return provider_cls.Parameters(**values)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"model '{spec.name}': {exc}") from None


def _matches(value: Any, expected: Any) -> bool:
    if expected is None or expected is Any:
        return True
    origin = typing.get_origin(expected)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_matches(value, arg) for arg in typing.get_args(expected))
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    if expected is type(None):
        return value is None
    if origin is not None:
        expected = origin
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True


def _takes_path(expected: Any) -> bool:
    """Whether a parameter annotated ``expected`` takes a path: registry files and ``--set`` can only give text."""
    return any(isinstance(t, type) and issubclass(t, PurePath) for t in (expected, *typing.get_args(expected)))


def _describe(expected: Any) -> str:
    if typing.get_origin(expected) is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(expected))
    return getattr(expected, "__name__", str(expected)).replace("NoneType", "None")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    keys = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise RegistryError(
                f"duplicate key '{key}' at line {key_node.start_mark.line + 1} of {loader.name}; each name may appear once"
            )
        keys.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_file(path: Path, source: str) -> list[ModelSpec]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RegistryError(f"cannot read registry file {path}: {exc.strerror}") from None
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise RegistryError(f"registry file {path} is not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None
    finally:
        loader.dispose()
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
        raise RegistryError(f"registry file {path} must be a mapping with a 'models:' mapping of name → entry")
    unknown_top = set(data) - {"models"}
    if unknown_top:
        raise RegistryError(f"registry file {path}: unknown top-level key '{sorted(unknown_top)[0]}' (expected 'models')")
    return [_entry(str(name), raw, source) for name, raw in (data.get("models") or {}).items()]


def _entry(name: str, raw: Any, source: str) -> ModelSpec:
    if not isinstance(raw, dict):
        raise RegistryError(f"model '{name}' ({source}) must be a mapping with at least 'provider:'")
    unknown = set(raw) - ENTRY_KEYS
    if unknown:
        raise RegistryError(
            f"model '{name}' ({source}): unknown key '{sorted(unknown)[0]}' (allowed: {', '.join(sorted(ENTRY_KEYS))})"
        )
    if not isinstance(raw.get("provider"), str):
        raise RegistryError(f"model '{name}' ({source}) needs 'provider: NAME'")
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RegistryError(f"model '{name}' ({source}): 'parameters' must be a mapping")
    return ModelSpec(
        name=name,
        provider=raw["provider"],
        parameters=dict(parameters),
        checkpoint=None if raw.get("checkpoint") is None else str(raw["checkpoint"]),
        revision=None if raw.get("revision") is None else str(raw["revision"]),
        description=str(raw.get("description", "")),
        source=source,
    )


def parameter_table(provider_cls: type[Provider]) -> list[tuple[str, str, str]]:
    """(name, default, help) for each parameter, for documentation and ``embhub models --show``."""
    rows = []
    for f in provider_cls.parameter_fields():
        default = f.default if f.default is not dataclasses.MISSING else "(required)"
        rows.append((f.name, repr(default), f.metadata.get("help", "")))
    return rows
