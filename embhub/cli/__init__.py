"""The ``embhub`` command. Commands are thin: parse options, call one library function, render.

Errors users can cause (:class:`embhub.errors.EmbhubError`) become one red line and exit code 1.
"""

from __future__ import annotations

import sys

import click
import typer
from typer.core import TyperGroup

from embhub.cli.render import error_console
from embhub.errors import EmbhubError


class EmbhubGroup(TyperGroup):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EmbhubError as exc:
            error_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
            ctx.exit(1)
        except KeyboardInterrupt:
            error_console.print(f"[yellow]interrupted[/]: {interrupted_advice(ctx.invoked_subcommand)}")
            ctx.exit(130)


RESUMABLE_COMMANDS = {"extract"}


def interrupted_advice(command: str | None) -> str:
    """What a user should do after Ctrl-C: only extraction keeps its finished batches to resume from."""
    if command in RESUMABLE_COMMANDS:
        return "re-run the same command to resume where it stopped"
    return f"'embhub {command}' keeps no partial work and wrote nothing to resume from; re-run it to start again"


app = typer.Typer(
    cls=EmbhubGroup,
    help="Embeddings of genes and drugs, measured as perturbation-response predictors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    from embhub.cli import datasets, evaluate, extract, fuse, genept_import, ids, listing, stores

    app.command("plugins")(listing.plugins_command)
    app.command("models")(listing.models_command)
    app.command("extract")(extract.extract_command)
    app.add_typer(stores.app, name="stores", help="List, inspect, verify, import and export embedding stores.")
    stores.app.command("import-genept")(genept_import.import_genept_command)
    app.add_typer(ids.app, name="ids", help="Check and map gene identifiers.")
    app.add_typer(datasets.app, name="datasets", help="List, prepare and simulate perturbation datasets.")
    for module in (datasets, evaluate, fuse):
        for command in getattr(module, "TOP_LEVEL_COMMANDS", ()):
            app.command(command.__name__.removesuffix("_command").replace("_", "-"))(command)


_register_commands()


def main() -> None:
    """The console script: like ``app``, plus provider progress logs (e.g. GNN epochs) on stderr."""
    import logging

    from rich.logging import RichHandler

    handler = RichHandler(console=error_console, show_path=False, show_time=False, markup=False)
    logger = logging.getLogger("embhub")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    sys.exit(app())
