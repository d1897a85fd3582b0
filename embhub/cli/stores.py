"""``embhub stores``: list, show, verify, import, export."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from embhub.cli.render import console, error_console
from embhub.errors import StoreError
from embhub.interchange import export_store, import_file
from embhub.paths import default_store_dir
from embhub.store import EmbeddingStore, list_stores, manifest_json

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_command(directory: Optional[Path] = typer.Option(None, "--dir", help="Directory to search (default: $EMBHUB_HOME/stores).")):
    """List the stores under a directory with their model, entity, size and state."""
    directory = directory or default_store_dir()
    table = Table("store", "model", "entity", "keys", "rows", "dim", "state")
    for path in list_stores(directory):
        try:
            store = EmbeddingStore.open(path, allow_incomplete=True)
        except StoreError as exc:
            table.add_row(str(path), "-", "-", "-", "-", "-", f"[red]{exc}[/]")
            continue
        manifest = store.manifest
        state = "[green]complete[/]" if store.complete else "[yellow]incomplete[/]"
        counts = store.counts
        table.add_row(
            str(path.relative_to(directory)),
            manifest.get("model", {}).get("name", "?"),
            manifest.get("entity", "?"),
            manifest.get("key_namespace", "?"),
            str(counts.get("done", "?")),
            str(manifest.get("dim", "?")),
            state,
        )
    console.print(table)


@app.command("show")
def show_command(
    path: Path,
    json_output: bool = typer.Option(False, "--json", help="Print the whole manifest as JSON."),
    failures: bool = typer.Option(False, "--failures", help="List every failed item with its reason."),
    head: int = typer.Option(5, help="How many rows to preview."),
):
    """Show a store's manifest summary and its first rows."""
    store = EmbeddingStore.open(path, allow_incomplete=True)
    manifest = store.manifest
    if json_output:
        console.print_json(manifest_json(manifest))
        return
    table = Table(show_header=False)
    provider = manifest.get("provider", {})
    rows = [
        ("model", manifest.get("model", {}).get("name")),
        ("provider", f"{provider.get('name')} {provider.get('version')} ({provider.get('distribution') or 'n/a'})"),
        ("state", "complete" if store.complete else "INCOMPLETE"),
        ("entity / keys", f"{manifest['entity']} / {manifest['key_namespace']} (input: {manifest['id_namespace']})"),
        ("rows × dim", f"{len(store)} × {manifest['dim']} {manifest['dtype']}"),
        ("failed", str(store.counts.get("failed", 0))),
        ("parameters", str(manifest.get("parameters"))),
        ("inputs", f"{manifest['inputs']['count']} from {manifest['inputs'].get('source')} (sha256 {manifest['inputs']['sha256'][:12]}…)"),
        ("created", f"{manifest.get('created')} by embhub {manifest.get('embhub_version')}"),
        ("licence", str(provider.get("licence"))),
        ("citation", str(provider.get("citation"))),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
    if store.complete and len(store):
        preview = Table("id", "input id", *store.label_names(), "vector")
        n = min(head, len(store))
        ids, input_ids = store.ids[:n], store.input_ids[:n]
        labels = [store.labels(name)[:n] for name in store.label_names()]
        vectors = store.vectors(slice(0, n))
        for i in range(n):
            shown = ", ".join(f"{v:.3g}" for v in vectors[i][:6])
            preview.add_row(ids[i], input_ids[i], *[column[i] for column in labels], f"[{shown}, …]")
        console.print(preview)
    if failures:
        for failure in manifest.get("failures", []):
            console.print(f"row {failure.get('row')} ('{failure['input_id']}'): {failure['reason']}", highlight=False)


@app.command("verify")
def verify_command(paths: List[Path]):
    """Re-check each store's integrity against its manifest (checksums, shapes, counts, finiteness)."""
    bad = 0
    for path in paths:
        try:
            problems = EmbeddingStore.open(path, allow_incomplete=True).verify()
        except StoreError as exc:
            problems = [str(exc)]
        if problems:
            bad += 1
            for problem in problems:
                error_console.print(f"[bold red]error:[/] {path}: {problem}", highlight=False)
        else:
            console.print(f"[green]ok[/] {path}")
    if bad:
        raise typer.Exit(1)


@app.command("import")
def import_command(
    source: Path,
    out: Path = typer.Option(..., "--out", "-o", help="Store to create."),
    entity: str = typer.Option(..., help="Entity kind of the rows: gene, drug, …"),
    key_namespace: str = typer.Option(..., help="What the row ids are: ensembl_gene_id, inchikey, …"),
    name: Optional[str] = typer.Option(None, help="Model name recorded in the manifest (default: file stem)."),
    overwrite: bool = typer.Option(False),
):
    """Create a store from .h5ad (rows = ids), .npz (ids, vectors), .csv or .parquet (id + one column per dim)."""
    store = import_file(source, out, name=name, entity=entity, key_namespace=key_namespace, overwrite=overwrite)
    console.print(f"imported {len(store)} × {store.dim} from {source} into {out}")


@app.command("export")
def export_command(path: Path, target: Path, overwrite: bool = typer.Option(False)):
    """Write a store to .h5ad, .npz, .csv or .parquet (chosen by the target's suffix)."""
    store = EmbeddingStore.open(path)
    export_store(store, target, overwrite=overwrite)
    console.print(f"exported {len(store)} × {store.dim} to {target}")
