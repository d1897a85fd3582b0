"""``embhub datasets list|prepare|import|demo|show`` and ``embhub ceiling``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from embhub.cli.render import console, error_console

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_command() -> None:
    """List dataset recipes and the datasets prepared under $EMBHUB_HOME/datasets."""
    from embhub.datasets.catalog import dataset_recipes
    from embhub.datasets.prepared import PreparedDataset, prepared_dir

    table = Table("dataset", "entity", "raw files", "description")
    for name, recipe in dataset_recipes().items():
        table.add_row(name, recipe.entity, recipe.raw_files, recipe.description)
    console.print(table)
    prepared = sorted(prepared_dir().glob("*.zarr")) if prepared_dir().exists() else []
    if prepared:
        done = Table("prepared", "kind", "cell lines", "perturbations", "ceiling", "path")
        for path in prepared:
            try:
                data = PreparedDataset.open(path)
            except Exception as exc:
                done.add_row(path.stem, f"[red]unreadable: {exc}[/]", "", "", "", str(path))
                continue
            kind = "[bold yellow]SIMULATED[/]" if data.simulated else data.manifest.get("kind", "")
            counts = [len(data.cell_line(c).pert_ids) for c in data.cell_lines]
            ceiling = "yes" if "ceiling" in data.manifest else "no"
            done.add_row(data.name, kind, ", ".join(data.cell_lines), str(sum(counts)), ceiling, str(path))
        console.print(done)


@app.command("prepare")
def prepare_command(
    name: str = typer.Argument(..., help="Dataset recipe (see 'embhub datasets list')."),
    raw: List[Path] = typer.Option(..., "--raw", help="Raw file(s) in the dataset's public layout."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output .zarr (default $EMBHUB_HOME/datasets/NAME.zarr)."
    ),
    layer: Optional[str] = typer.Option(None, help="h5ad layer holding raw counts (default X)."),
) -> None:
    """Stream the raw cells once and write responses, DEG labels and folds (memory stays flat in cells)."""
    from embhub.datasets.catalog import dataset_recipe
    from embhub.datasets.prepare import prepare_dataset

    with error_console.status(f"preparing {name}"):
        prepared = prepare_dataset(dataset_recipe(name), raw, out, layer=layer)
    show_prepared(prepared)


@app.command("import")
def import_command(
    name: str = typer.Argument(..., help="essential, norman, sciplex3 or tahoe."),
    files: List[Path] = typer.Argument(..., help="The study's pseudobulk .h5ad and optionally its DEG .h5ad."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output .zarr (default $EMBHUB_HOME/datasets/NAME.zarr)."
    ),
) -> None:
    """Import the reference study's preprocessed files (with their folds) so they can be evaluated at once."""
    from embhub.datasets.preprocessed import import_study_files

    show_prepared(import_study_files(name, files, out))


@app.command("demo")
def demo_command(
    cells: int = typer.Option(30_000, help="Total cells of the simulated screen."),
    perturbations: int = typer.Option(200, help="Knocked-down genes (from the bundled STRING subgraph)."),
    cell_lines: int = typer.Option(2, help="Simulated cell lines (1-4)."),
    seed: int = typer.Option(0, help="Simulation seed."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Prepared .zarr (default $EMBHUB_HOME/datasets/demo.zarr)."
    ),
    ceiling: bool = typer.Option(True, help="Also bootstrap the experimental-error ceiling."),
    jobs: int = typer.Option(1, help="Processes for the ceiling bootstrap."),
) -> None:
    """Write a SIMULATED CRISPRi screen (Replogle layout, effects spread over real STRING) and prepare it."""
    from embhub.datasets.demo import build_demo
    from embhub.datasets.simulate import ScreenSpec

    spec = ScreenSpec(cells=cells, perturbations=perturbations, cell_lines=cell_lines, seed=seed)
    with error_console.status("simulating") as status:
        prepared = build_demo(spec, out, ceiling=ceiling, n_jobs=jobs, progress=lambda m: status.update(m))
    show_prepared(prepared)


@app.command("show")
def show_command(name: str = typer.Argument(..., help="Prepared dataset name or path.")) -> None:
    """Summarise a prepared dataset: cell lines, perturbations, folds, DEG coverage, ceiling, exclusions."""
    from embhub.datasets.prepared import PreparedDataset

    show_prepared(PreparedDataset.open(name))


def ceiling_command(
    name: str = typer.Argument(..., help="Prepared dataset name or path."),
    raw: Optional[List[Path]] = typer.Option(None, "--raw", help="Raw files, if they moved since preparing."),
    jobs: int = typer.Option(1, help="Processes drawing bootstrap weights in parallel over perturbations."),
    seed: int = typer.Option(5050, help="Root seed of the bootstrap (study: 5050)."),
    outer: int = typer.Option(10, help="Batch resamples per perturbation (study: 10)."),
    inner: Optional[int] = typer.Option(None, help="Cell resamples per batch (study: 10, plate-matched 20)."),
    deg: bool = typer.Option(True, help="Also the DEG noise floor: F1 of DEG calls re-run on resampled cells."),
    deg_trials: Optional[int] = typer.Option(
        None, help="DEG resampling trials (pooled, study: 20) or plate draws (plate vote, study: 3, × 3 cell draws)."
    ),
) -> None:
    """Bootstrap the experimental-error ceiling (LFC, and DEG F1) of a prepared dataset and save it with it."""
    from embhub.datasets.ceiling import ceiling_of_prepared

    with error_console.status(f"bootstrapping the ceiling of {name}"):
        prepared = ceiling_of_prepared(
            name, [str(p) for p in raw] if raw else None, outer, inner, seed, jobs, deg=deg, deg_trials=deg_trials
        )
    show_prepared(prepared)


def show_prepared(prepared) -> None:
    if prepared.simulated:
        console.print("[bold yellow]SIMULATED dataset — not real data[/]")
    summary = prepared.manifest.get("ceiling", {}).get("summary", {})
    table = Table(
        "cell line", "perturbations", "perturbations per fold", "with DEG labels", "genes", "ceiling L2 (q0.9)",
        "ceiling DEG F1 (q0.1)",
    )
    for line in prepared.cell_lines:
        data = prepared.cell_line(line)
        mask = data.deg_mask
        folds = data.folds
        ceiling = summary.get(line, {}).get("cell_line_l2_q0.9")
        deg_ceiling = summary.get(line, {}).get("cell_line_deg_f1_q0.1")
        table.add_row(
            line,
            str(len(data.pert_ids)),
            "/".join(str(int((folds == k).sum())) for k in range(prepared.n_folds)),
            "-" if mask is None else str(int(mask.sum())),
            str(len(prepared.genes)),
            "-" if ceiling is None else f"{ceiling:.3f}",
            "-" if deg_ceiling is None else f"{deg_ceiling:.3f}",
        )
    console.print(f"[bold]{prepared.name}[/] ({prepared.manifest.get('kind')}) → {prepared.path}")
    console.print(table)
    for reason, count in prepared.manifest.get("exclusions", {}).items():
        error_console.print(f"[yellow]excluded:[/] {count} {reason}")
    for note in prepared.manifest.get("notes", []):
        error_console.print(f"[cyan]note:[/] {note}", highlight=False)


TOP_LEVEL_COMMANDS = (ceiling_command,)


@app.command("perturbations")
def perturbations_command(
    name: str = typer.Argument(..., help="Prepared dataset name or path."),
    out: Path = typer.Option(..., "--out", "-o", help="TSV to write: one row per perturbation (all cell lines)."),
) -> None:
    """Write a prepared dataset's perturbations (id, gene id or drug name, label, aliases such as smiles) as a
    TSV, ready as `embhub extract --input`."""
    from embhub.datasets.prepared import PreparedDataset

    dataset = PreparedDataset.open(name)
    records = dataset.perturbations()
    column = "gene" if dataset.entity == "gene" else "drug"
    value = "id" if dataset.entity == "gene" else "label"
    aliases = sorted({key for record in records for key in record} - {"id", "label", column})
    header = ["id", column, "label", *aliases]
    rows = [[r["id"], r[value], r["label"], *(r.get(a, "") for a in aliases)] for r in records]
    out.write_text("".join("\t".join(row) + "\n" for row in [header, *rows]))
    console.print(f"wrote {len(records)} perturbations of {dataset.name} to {out}")
