"""``embhub extract``: run a named model over an input list into a store."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from embhub.cli.listing import RegistryOption
from embhub.cli.render import console, error_console
from embhub.extract import extract
from embhub.inputs import read_items
from embhub.plugins import load_plugins
from embhub.registry import load_registry, parse_overrides


def extract_command(
    model: str = typer.Option(..., "--model", "-m", help="Model name from the registry (see 'embhub models')."),
    input: Optional[Path] = typer.Option(
        None, "--input", "-i", help="CSV/TSV table or plain list of items (gzip-compressed with a .gz suffix too); optional for models with default inputs."
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Store path (default: under $EMBHUB_HOME/stores)."),
    id_column: Optional[str] = typer.Option(None, help="Column of the input table holding your ids."),
    value_column: Optional[str] = typer.Option(None, help="Column holding what the model reads (e.g. SMILES)."),
    batch_size: Optional[int] = typer.Option(None, help="Items per batch (memory is bounded by this); a resumed run keeps the size it started with."),
    dtype: str = typer.Option("float32", help="Vector dtype: float32, float16 or float64."),
    overwrite: bool = typer.Option(False, help="Replace an existing store at --out instead of resuming it."),
    set_: Optional[List[str]] = typer.Option(
        None, "--set", help="KEY=VALUE: override a parameter of the model's entry for this run (repeatable), e.g. --set fasta=my.fasta."
    ),
    registry: Optional[List[Path]] = RegistryOption,
) -> None:
    """Embed the items of --input with --model into a Zarr store; re-running resumes an interrupted run."""
    plugins = load_plugins()
    spec, provider = load_registry(plugins, registry or []).resolve(model, plugins, parse_overrides(set_ or []))
    missing = provider.missing_requirements()
    if missing:
        from embhub.errors import PluginError

        raise PluginError(f"model '{model}' needs {', '.join(missing)}; install with: pip install {' '.join(missing)}")
    items = None
    if input is not None:
        items = read_items(input, provider.input_columns, id_column=id_column, value_column=value_column)
    with Progress(
        TextColumn(f"[bold]{model}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=error_console,
        transient=True,
    ) as bar:
        task = bar.add_task("extract", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = extract(
            spec,
            provider,
            items,
            out,
            plugins=plugins,
            batch_size=batch_size,
            dtype=dtype,
            overwrite=overwrite,
            source=str(input) if input else None,
            progress=progress,
        )
    counts = result.manifest["counts"]
    if result.already_complete:
        console.print(f"store {result.path} is already complete: {counts['done']} embedded, {counts['failed']} failed")
        return
    resumed = f" (resumed after {result.resumed_batches} finished batches)" if result.resumed_batches else ""
    console.print(
        f"wrote {result.path}: {counts['done']} embedded, {counts['failed']} failed, "
        f"dim {result.manifest['dim']}{resumed}"
    )
    for failure in result.manifest["failures"][:10]:
        error_console.print(f"[yellow]failed[/] row {failure['row']} ('{failure['input_id']}'): {failure['reason']}", highlight=False)
    if counts["failed"] > 10:
        error_console.print(f"… and {counts['failed'] - 10} more; 'embhub stores show {result.path} --failures' lists all")
