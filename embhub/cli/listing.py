"""``embhub plugins`` and ``embhub models``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Column, Table

from embhub.cli.render import console, error_console
from embhub.errors import RegistryError
from embhub.plugins import load_plugins
from embhub.registry import build_parameters, load_registry, provider_for

RegistryOption = typer.Option(None, "--registry", help="Extra registry file(s) with model entries.")


def plugins_command() -> None:
    """List loaded plugins with their versions and what they provide; broken plugins show their error."""
    plugins = load_plugins()
    table = Table("plugin", "distribution", "version", "provides", "status")
    for info in plugins.plugins:
        status = f"[red]failed: {info.error}[/]" if info.error else "[green]ok[/]"
        table.add_row(info.name, info.distribution or "-", info.version or "-", ", ".join(info.provides) or "-", status)
    console.print(table)
    for problem in plugins.problems:
        error_console.print(f"[yellow]warning:[/] {problem}")


def models_command(registry: Optional[List[Path]] = RegistryOption) -> None:
    """List named models: provider, entity, dimension, and whether they can run here."""
    plugins = load_plugins()
    reg = load_registry(plugins, registry or [])
    table = Table("provider", "entity", "dim", "installed", "source")
    table.columns.insert(0, Column("model", no_wrap=True))
    problems = []
    for spec in sorted(reg.models.values(), key=lambda s: s.name):
        entity, dim, installed = "?", "?", ""
        try:
            provider_cls = provider_for(spec, plugins)
            parameters = build_parameters(spec, provider_cls)
            entity = provider_cls.entity
            try:
                provider = provider_cls(parameters)
                known, missing = provider.dim, provider.missing_packages()
            except Exception:
                known, missing = None, provider_cls.missing_requirements()
            dim = str(known) if known else "at run"
            installed = f"[yellow]no: pip install {' '.join(missing)}[/]" if missing else "[green]yes[/]"
        except RegistryError as exc:
            problems.append(str(exc))
            installed = "[red]invalid entry[/]"
        table.add_row(spec.name, spec.provider, entity, dim, installed, spec.source)
    for name, problem in sorted(reg.broken.items()):
        problems.append(problem)
        table.add_row(name, "?", "?", "?", "[red]invalid entry[/]", "plugin")
    console.print(table)
    if problems:
        for problem in problems:
            error_console.print(f"[bold red]error:[/] {problem}", highlight=False)
        raise typer.Exit(1)
