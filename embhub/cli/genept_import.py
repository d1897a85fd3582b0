"""``embhub stores import-genept``: GenePT's published pickle of gene vectors → a gene store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from embhub.cli.render import console, error_console


def import_genept_command(
    source: Path = typer.Argument(..., help="GenePT embedding pickle (dict of gene symbol → vector)."),
    out: Path = typer.Option(..., "--out", "-o", help="Store path to write."),
    name: Optional[str] = typer.Option(None, help="Store/model name (default: the file's stem)."),
    overwrite: bool = typer.Option(False, help="Replace an existing store at --out."),
) -> None:
    """Import GenePT's vectors, keyed by Ensembl id; the pickle is read with a restricted unpickler."""
    from embhub_genept.genept_file import import_genept

    result = import_genept(source, out, name=name, overwrite=overwrite)
    console.print(f"wrote {out}: {result.imported} genes, dim {result.store.dim}, {len(result.skipped)} skipped")
    for skipped in result.skipped[:10]:
        error_console.print(f"[yellow]skipped[/] '{skipped.symbol}': {skipped.reason}", highlight=False)
    if len(result.skipped) > 10:
        error_console.print(f"… and {len(result.skipped) - 10} more; 'embhub stores show {out} --json' lists all")
