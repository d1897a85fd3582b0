"""``embhub ids``: check how a list of gene ids resolves, and map it to Ensembl ids and symbols."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from embhub.cli.render import console
from embhub.errors import InputError
from embhub.identity.genes import GENE_INPUT_COLUMNS, check_gene_ids, load_gene_identity, resolution_rows
from embhub.inputs import items_from_values, read_items
from embhub.provider import Item

app = typer.Typer(no_args_is_help=True)

IdsArgument = typer.Argument(None, help="Gene ids given on the command line (symbols, Ensembl, Entrez, UniProt…).")
InputOption = typer.Option(None, "--input", "-i", help="CSV/TSV table with a gene column, or a plain list of ids.")
ColumnOption = typer.Option(None, help="Column of the input table holding the gene ids.")


def _items(ids: Optional[List[str]], input: Optional[Path], value_column: Optional[str]) -> list[Item]:
    if input is not None and ids:
        raise InputError("give gene ids either as arguments or with --input, not both")
    if input is not None:
        return read_items(input, GENE_INPUT_COLUMNS, value_column=value_column)
    if ids:
        return items_from_values(ids)
    raise InputError("no gene ids given; pass them as arguments or with --input FILE")


@app.command("check")
def check_command(
    ids: Optional[List[str]] = IdsArgument,
    input: Optional[Path] = InputOption,
    value_column: Optional[str] = ColumnOption,
    show: int = typer.Option(20, help="How many ambiguous/unknown ids to list."),
    strict: bool = typer.Option(False, help="Exit with code 1 when any id is ambiguous or unknown."),
) -> None:
    """Report how many gene ids resolve, how they matched, and which are ambiguous or unknown."""
    items = _items(ids, input, value_column)
    ident = load_gene_identity()
    report = check_gene_ids([item.value for item in items], ident)
    summary = Table(title=f"{report.total} gene ids against {report.release}", show_header=True)
    summary.add_column("outcome")
    summary.add_column("ids", justify="right")
    summary.add_column("share", justify="right")
    rows = [("resolved", report.resolved)]
    rows += [(f"  by {kind}", n) for kind, n in sorted(report.matched_by.items(), key=lambda kv: -kv[1])]
    rows += [("ambiguous", len(report.ambiguous)), ("unknown", len(report.unknown))]
    for outcome, n in rows:
        summary.add_row(outcome, str(n), f"{n / report.total:.1%}")
    console.print(summary)
    for resolution in report.ambiguous[:show] + report.unknown[:show]:
        console.print(f"[yellow]{resolution.status}[/] {ident.failure_reason(resolution)}", highlight=False)
    hidden = max(0, len(report.ambiguous) - show) + max(0, len(report.unknown) - show)
    if hidden:
        console.print(f"… and {hidden} more; 'embhub ids map' writes every id's outcome to a table")
    for ensembl_id, queries in list(report.duplicates.items())[:show]:
        console.print(
            f"[yellow]same gene[/] {', '.join(repr(q) for q in queries)} all resolve to {ensembl_id} "
            f"{ident.symbol_of(ensembl_id)}; a store keeps the first",
            highlight=False,
        )
    if strict and (report.ambiguous or report.unknown):
        raise typer.Exit(1)


@app.command("map")
def map_command(
    ids: Optional[List[str]] = IdsArgument,
    input: Optional[Path] = InputOption,
    value_column: Optional[str] = ColumnOption,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="TSV to write (default: standard output)."),
) -> None:
    """Write one row per id: status, Ensembl gene id, symbol, how it matched, candidates, reason."""
    rows = resolution_rows(_items(ids, input, value_column))
    handle = out.open("w", newline="") if out else sys.stdout
    try:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    finally:
        if out:
            handle.close()
    if out:
        resolved = sum(row["status"] == "resolved" for row in rows)
        console.print(f"wrote {out}: {resolved} of {len(rows)} ids resolved")
