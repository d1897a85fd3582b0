"""``embhub evaluate`` and ``embhub report``: score stores on a prepared dataset, re-render saved results."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from embhub.cli.render import console, error_console

app = typer.Typer(no_args_is_help=True)

OVERWRITE_HELP = "Replace the embhub files (results, summary, plots…) already in --out; other files stay."


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
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Score the no-change, random and idealized controls (the context mean and the ceilings are always scored)."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Threads over stores and inner splits (0: one per available core)."),
    device: str = typer.Option("auto", help="Device: auto (a CUDA GPU when present), cpu, cuda, mps. kNN runs on CUDA or the CPU; the DEG logistic model on any."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default ./embhub-results/<dataset>-<timestamp>/)."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG and SVG figures."),
):
    """Which embedding predicts perturbation responses best? The study's protocol, every store × cell line × fold."""
    from rich.progress import Progress

    from embhub.datasets.prepared import PreparedDataset
    from embhub.errors import InputError
    from embhub.evaluate.report import check_out_dir, default_out_dir, write_outputs
    from embhub.evaluate.runner import evaluate
    from embhub.store import EmbeddingStore

    if jobs < 0:
        raise InputError(f"--jobs {jobs}: give a number of threads, or 0 for one per available core")
    prepared = PreparedDataset.open(dataset)
    out_dir = out or default_out_dir(prepared.name)
    check_out_dir(out_dir, overwrite)
    if device not in ("auto", "cpu"):
        from embhub.accel import pick_device

        pick_device(device)
    paths = _store_paths(list(stores or []) + list(store_args or []), all_stores, prepared.entity)
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
    files = write_outputs(evaluation, out_dir, plots=plots, overwrite=overwrite)
    if prepared.simulated:
        render_simulated(prepared.name)
    render_summary(evaluation.results, evaluation.coverage)
    console.print(f"results: [bold]{out_dir}[/] ({', '.join(f.name for f in files)})")


def _store_paths(names: list[str], all_stores: bool, entity: str) -> list[Path]:
    """The stores to open, as absolute paths (the results record where each store was)."""
    from embhub.errors import InputError, StoreError
    from embhub.evaluate.coverage import all_store_paths, resolve_store_paths
    from embhub.paths import default_store_dir

    for name in names:
        looks_like_path = "/" in name or os.sep in name or name.endswith(".zarr")
        if looks_like_path and not Path(name).exists():
            raise StoreError(f"store path {name} does not exist; check the path (model names are listed by 'embhub stores list')")
    paths = [Path(os.path.abspath(p)) for p in resolve_store_paths(names, default_store_dir())] if names else []
    if all_stores:
        found, skipped = all_store_paths(default_store_dir(), entity)
        for reason in skipped:
            error_console.print(f"[yellow]skipped[/] {reason}")
        if not found and not paths:
            raise InputError(
                f"--all found no complete {entity} store under {default_store_dir()}; make one with "
                f"'embhub extract --model MODEL' (see 'embhub models') or 'embhub stores import', or give --stores PATH"
            )
        paths += [p for p in map(Path, map(os.path.abspath, found)) if p not in paths]
    if not paths:
        raise InputError("no stores to evaluate: give --stores PATH|MODEL … or --all")
    return paths


def report_command(
    results: Path = typer.Argument(..., help="An 'embhub evaluate' output directory, or its results.parquet / results.csv."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write tables and plots (default: beside the results)."),
    metric: Optional[str] = typer.Option(None, help="Metric of the summary and plots: L2, MSE, MAE, Pearson, Spearman, F1, recall or precision (default: L2, and F1 when present)."),
    subset: Optional[str] = typer.Option(None, help="all (every test perturbation) or common (covered by every store); default: both in the summary, all in the plots."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG and SVG figures."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
):
    """Re-render the summary, study-layout table and plots from saved results."""
    from embhub.evaluate.report import rerender

    report = rerender(results, out, plots=plots, metric=metric, subset=subset, overwrite=overwrite)
    if report.simulated:
        render_simulated(", ".join(dict.fromkeys(report.frame["dataset"])))
    render_summary(report.frame, report.coverage, report.metrics, report.subset)
    console.print(f"wrote {', '.join(str(f) for f in report.files)}")


def render_simulated(dataset: str) -> None:
    console.print(f"[bold yellow]SIMULATED dataset[/] '{dataset}': these scores come from simulated data, not a real screen")


def render_summary(frame, coverage=None, metrics: list[str] | None = None, subset: str | None = None) -> None:
    """Per metric and cell line, methods by rank. Without a chosen ``subset``: every test perturbation, and
    where a store covers only part of them also the perturbations every store covers; then the coverage."""
    from embhub.evaluate.summary import headline_metrics, summarise

    metrics = metrics or headline_metrics(frame)
    if not metrics:
        console.print("[yellow]these results hold no L2 or F1 scores[/]")
    for metric in metrics:
        if subset is not None:
            for cell_line, part in summarise(frame, metric, subset).groupby("cell_line", sort=False):
                _render_table(part, cell_line, metric, subset)
            continue
        common = summarise(frame, metric, "common")
        for cell_line, part in summarise(frame, metric, "all").groupby("cell_line", sort=False):
            _render_table(part, cell_line, metric, "all")
            if not (part["coverage"] < 1).any():
                continue
            common_part = common[common["cell_line"] == cell_line]
            if common_part.empty:
                console.print(f"[yellow]{cell_line}: no test perturbation is covered by every store, so there is no "
                              f"{metric} ranking on the common subset[/]")
            else:
                console.print(f"{cell_line}: some stores cover only part of the test perturbations (the rest are the "
                              "fallback's predictions); ranked again on those every store covers:")
                _render_table(common_part, cell_line, metric, "common")
    if coverage is not None and len(coverage):
        _render_coverage(coverage)


def _render_table(part, cell_line: str, metric: str, subset: str) -> None:
    import math

    from rich.table import Table

    table = Table(title=f"{cell_line}: {metric} over folds ({subset} test perturbations)", title_justify="left")
    for column in ("rank", "method", f"{metric} mean ± sd", "median", "gap closed", "coverage", "folds"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in part.itertuples():
        rank = "–" if math.isnan(row.rank) else str(int(row.rank))
        sd = "–" if math.isnan(row.sd) else f"{row.sd:.4f}"
        if row.ceiling_not_better:
            gap = "–*"
        else:
            gap = "" if math.isnan(row.gap_closed) else f"{row.gap_closed:.2f}"
        coverage = "" if math.isnan(row.coverage) else f"{row.coverage:.1%}"
        table.add_row(rank, row.label, f"{row.mean:.4f} ± {sd}", f"{row.median:.4f}", gap, coverage, str(row.n_folds))
    console.print(table)
    if part["ceiling_not_better"].any():
        console.print(f"* the ceiling's median {metric} is not better than the reference baseline's here, so the "
                      "fraction of gap closed means nothing")


def _render_coverage(coverage) -> None:
    from rich.table import Table

    table = Table(title="coverage of the dataset's perturbations", title_justify="left")
    for column in ("store", "cell line", "covered", "fraction", "ids mapped via identity layer", "unmapped ids",
                   "superseded ids"):
        table.add_column(column)
    for row in coverage.itertuples():
        table.add_row(row.embedding, row.cell_line, f"{row.n_covered}/{row.n_perturbations}", f"{row.fraction:.1%}",
                      str(row.harmonised_ids), str(getattr(row, "unmapped_store_ids", "")),
                      str(getattr(row, "superseded_store_ids", "")))
    console.print(table)


TOP_LEVEL_COMMANDS = (evaluate_command, report_command)
