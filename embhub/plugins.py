"""Loading plugins: one pluggy manager, the ``embhub`` entry-point group, and what each registered.

``EMBHUB_LOAD_PLUGINS`` (comma-separated entry-point names; empty for none) restricts which plugins
load, which helps in tests and when one plugin is broken. A plugin that fails to import or implements a
hook embhub does not have is recorded with its error and skipped; it never breaks the CLI. A provider
that cannot be used (its name claimed by two plugins, a ``Parameters`` that is no usable dataclass) is
kept in ``Plugins.unusable`` with the reason, which the models that name it report.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from embhub import hookspecs
from embhub.errors import PluginError
from embhub.provider import Provider

ENTRY_POINT_GROUP = "embhub"
HOOKS = ("register_providers", "register_models", "register_datasets")


@dataclass
class PluginInfo:
    name: str
    module: str
    distribution: str | None
    version: str | None
    error: str | None = None
    provides: list[str] = field(default_factory=list)


@dataclass
class Plugins:
    """What the loaded plugins registered."""

    plugins: list[PluginInfo]
    providers: dict[str, type[Provider]]
    provider_plugin: dict[str, PluginInfo]
    model_entries: list[dict[str, Any]]
    datasets: dict[str, type]
    problems: list[str]
    unusable: dict[str, str] = field(default_factory=dict)
    """Provider name → why it cannot be used (claimed by two plugins, an unusable ``Parameters``)."""

    def provider(self, name: str) -> type[Provider]:
        if name in self.unusable:
            raise PluginError(self.unusable[name])
        try:
            return self.providers[name]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none"
            raise PluginError(
                f"no provider named '{name}' is installed (installed: {known}); "
                "install the plugin that provides it or fix the name"
            ) from None


_loaded: Plugins | None = None


def load_plugins(refresh: bool = False) -> Plugins:
    """Load every plugin of the entry-point group once per process and collect what it registers."""
    global _loaded
    if _loaded is not None and not refresh:
        return _loaded
    manager = pluggy.PluginManager("embhub")
    manager.add_hookspecs(hookspecs)
    wanted = _wanted_plugin_names()
    infos: list[PluginInfo] = []
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        if wanted is not None and entry_point.name not in wanted:
            continue
        dist = getattr(entry_point, "dist", None)
        info = PluginInfo(
            name=entry_point.name,
            module=entry_point.value,
            distribution=dist.name if dist else None,
            version=dist.version if dist else None,
        )
        infos.append(info)
        try:
            module = entry_point.load()
            manager.register(module, name=entry_point.name)
        except Exception as exc:  # a broken plugin must not break the CLI
            info.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            continue
        unknown = [caller.name for caller in manager.get_hookcallers(module) or [] if not caller.has_spec()]
        if unknown:
            manager.unregister(module)
            info.error = f"unknown hook '{unknown[0]}' (embhub's hooks: {', '.join(HOOKS)}); fix its name"
    _loaded = _collect(manager, infos)
    return _loaded


def _wanted_plugin_names() -> set[str] | None:
    value = os.environ.get("EMBHUB_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _collect(manager: pluggy.PluginManager, infos: list[PluginInfo]) -> Plugins:
    by_name = {info.name: info for info in infos}
    providers: dict[str, type[Provider]] = {}
    provider_plugin: dict[str, PluginInfo] = {}
    models: list[dict[str, Any]] = []
    datasets: dict[str, type] = {}
    problems: list[str] = []
    unusable: dict[str, str] = {}

    def callbacks(info: PluginInfo):
        def register_provider(cls):
            problem = _provider_problem(cls)
            if problem:
                problems.append(f"plugin '{info.name}': {problem}")
            elif cls.name in providers:
                other = provider_plugin[cls.name].name
                unusable[cls.name] = (
                    f"provider '{cls.name}' is registered by both plugin '{other}' and plugin '{info.name}'; "
                    "uninstall one of them, or load only one with EMBHUB_LOAD_PLUGINS"
                )
                problems.append(unusable[cls.name])
            else:
                providers[cls.name] = cls
                provider_plugin[cls.name] = info
                info.provides.append(f"provider:{cls.name}")
                problem = _parameters_problem(cls)
                if problem:
                    unusable[cls.name] = (
                        f"provider '{cls.name}' of plugin '{info.name}' cannot be used: {problem}; "
                        "fix the plugin or report it to its authors"
                    )
                    problems.append(unusable[cls.name])

        def register_model(name, **entry):
            models.append({"name": name, "source": f"plugin {info.name}", **entry})
            info.provides.append(f"model:{name}")

        def register_dataset(cls):
            name = getattr(cls, "name", None)
            if not name:
                problems.append(f"plugin '{info.name}' registers a dataset without a name")
            elif name in datasets:
                problems.append(f"plugin '{info.name}' registers dataset '{name}' twice")
            else:
                datasets[name] = cls
                info.provides.append(f"dataset:{name}")

        return {
            "register_providers": register_provider,
            "register_models": register_model,
            "register_datasets": register_dataset,
        }

    for hook_name in HOOKS:
        for impl in reversed(getattr(manager.hook, hook_name).get_hookimpls()):
            info = by_name[impl.plugin_name]
            try:
                impl.function(register=callbacks(info)[hook_name])
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}".splitlines()[0]
                problems.append(f"plugin '{info.name}' failed in {hook_name}: {message}")
                info.error = info.error or message

    return Plugins(infos, providers, provider_plugin, models, datasets, problems, unusable)


def _provider_problem(cls: Any) -> str | None:
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        return f"{cls!r} is not a subclass of embhub.provider.Provider"
    for attribute in ("name", "entity", "id_namespace", "key_namespace"):
        if not isinstance(getattr(cls, attribute, None), str):
            return f"provider {cls.__name__} does not declare '{attribute}'"
    return None


def _parameters_problem(cls: type[Provider]) -> str | None:
    """Why registry entries could not be checked against ``cls.Parameters`` and built from it, if they cannot."""
    parameters = getattr(cls, "Parameters", None)
    if not (isinstance(parameters, type) and dataclasses.is_dataclass(parameters)):
        return "its Parameters is not a dataclass; decorate it with @dataclass"
    try:
        typing.get_type_hints(parameters)
    except Exception as exc:
        return f"a parameter's type cannot be resolved ({type(exc).__name__}: {exc})"
    for f in dataclasses.fields(parameters):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            return f"parameter '{f.name}' has no default"
    return None
