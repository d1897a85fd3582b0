"""``embhub evaluate`` and ``embhub report``: score stores on a prepared dataset, re-render saved results."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from embhub.cli.render import console, error_console

app = typer.Typer(no_args_is_help=True)


def evaluate_command(
    dataset: str = typer.Option(..., "--dataset", help="Prepared dataset name (under $EMBHUB_HOME/datasets) or path."),
    store_args: Optional[List[str]] = typer.Argument(None, metavar="[STORES]...", help="More stores (paths or model names)."),
    stores: Optional[List[str]] = typer.Option(None, "--stores", help="Stores to compare: paths, or model names (newest complete store under $EMBHUB_HOME/stores/<model>/). `--stores a b c` works."),
    all_stores: bool = typer.Option(False, "--all", help="Every complete store of the dataset's entity under $EMBHUB_HOME/stores."),
    cell_line: Optional[List[str]] = typer.Option(None, "--cell-line", help="Cell line(s) to evaluate (default: all)."),
    fold: Optional[List[int]] = typer.Option(None, "--fold", help="Outer fold(s) to evaluate (default: all)."),
    estimator: Optional[List[str]] = typer.Option(None, "--estimator", help="knn (default) and/or lasso; repeat to run both."),
    deg: bool = typer.Option(False, "--deg", help="Also classify DEG labels with the study's logistic model (slow on CPU)."),
    fallback: str = typer.Option("context_mean", help="Prediction for test perturbations a store lacks: context_mean (study) or no_change."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Score no change, context mean, random and idealized controls."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Threads over stores and inner splits (0: one per available core)."),
    device: str = typer.Option("auto", help="Device: auto (a CUDA GPU when present), cpu, cuda, mps. kNN runs on CUDA or the CPU; the DEG logistic model on any."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default ./embhub-results/<dataset>-<timestamp>/)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG and SVG figures."),
):
    """Which embedding predicts perturbation responses best? The study's protocol, every store × cell line × fold."""
    from rich.progress import Progress

    from embhub.datasets.prepared import PreparedDataset
    from embhub.errors import InputError
    from embhub.evaluate.coverage import all_store_paths, resolve_store_paths
    from embhub.evaluate.report import default_out_dir, write_outputs
    from embhub.evaluate.runner import evaluate
    from embhub.paths import default_store_dir
    from embhub.store import EmbeddingStore

    prepared = PreparedDataset.open(dataset)
    names = list(stores or []) + list(store_args or [])
    paths = resolve_store_paths(names, default_store_dir()) if names else []
    if all_stores:
        found, skipped = all_store_paths(default_store_dir(), prepared.entity)
        for reason in skipped:
            error_console.print(f"[yellow]skipped[/] {reason}")
        paths += [p for p in found if p not in paths]
    if not paths:
        raise InputError("no stores to evaluate: give --stores PATH|MODEL … or --all")
    opened = [EmbeddingStore.open(p) for p in paths]
    with Progress(console=error_console, transient=True) as bar:
        task = bar.add_task("evaluating", total=None)
        evaluation = evaluate(
            prepared,
            opened,
            cell_lines=cell_line or None,
            folds=fold or None,
            estimators=tuple(estimator or ("knn",)),
            deg=deg,
            baselines=baselines,
            fallback=fallback,
            jobs=jobs,
            device=device,
            progress=lambda done, total, what: bar.update(task, completed=done, total=total, description=what),
        )
    out_dir = out or default_out_dir(prepared.name)
    files = write_outputs(evaluation, out_dir, plots=plots)
    if prepared.simulated:
        console.print(f"[bold yellow]SIMULATED dataset[/] '{prepared.name}': these scores come from simulated data, not a real screen")
    render_summary(evaluation.results, evaluation.coverage)
    console.print(f"results: [bold]{out_dir}[/] ({', '.join(f.name for f in files)})")


def report_command(
    results: Path = typer.Argument(..., help="An 'embhub evaluate' output directory, or its results.parquet / results.csv."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write tables and plots (default: beside the results)."),
    metric: str = typer.Option("L2", help="Metric of the summary table."),
    subset: str = typer.Option("all", help="all (every test perturbation) or common (covered by every store)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG and SVG figures."),
):
    """Re-render the summary, study-layout table and plots from saved results."""
    from embhub.evaluate.report import rerender

    frame, files = rerender(results, out, plots=plots)
    coverage_file = (results if results.is_dir() else results.parent) / "coverage.csv"
    coverage = None
    if coverage_file.exists():
        import pandas as pd

        coverage = pd.read_csv(coverage_file)
    render_summary(frame, coverage, metric=metric, subset=subset)
    console.print(f"wrote {', '.join(str(f) for f in files)}")


def render_summary(frame, coverage=None, metric: str = "L2", subset: str = "all") -> None:
    """Rich tables: per cell line, methods by rank with mean ± sd over folds and gap closed; coverage."""
    import math

    from rich.table import Table

    from embhub.evaluate.summary import summarise

    summary = summarise(frame, metric, subset)
    if summary.empty:
        console.print(f"[yellow]no {metric} rows in the {subset} subset[/]")
    for cell_line, part in summary.groupby("cell_line", sort=False):
        table = Table(title=f"{cell_line}: {metric} over folds ({subset} test perturbations)", title_justify="left")
        for column in ("rank", "method", f"{metric} mean ± sd", "median", "gap closed", "folds"):
            table.add_column(column, justify="left" if column == "method" else "right")
        for row in part.itertuples():
            rank = "–" if math.isnan(row.rank) else str(int(row.rank))
            gap = "" if math.isnan(row.gap_closed) else f"{row.gap_closed:.2f}"
            sd = 0.0 if math.isnan(row.sd) else row.sd
            table.add_row(rank, row.label, f"{row.mean:.4f} ± {sd:.4f}", f"{row.median:.4f}", gap, str(row.n_folds))
        console.print(table)
    if coverage is not None and len(coverage):
        table = Table(title="coverage of the dataset's perturbations", title_justify="left")
        for column in ("store", "cell line", "covered", "fraction", "ids mapped via identity layer"):
            table.add_column(column)
        for row in coverage.itertuples():
            table.add_row(row.embedding, row.cell_line, f"{row.n_covered}/{row.n_perturbations}", f"{row.fraction:.1%}", str(row.harmonised_ids))
        console.print(table)


TOP_LEVEL_COMMANDS = (evaluate_command, report_command)
