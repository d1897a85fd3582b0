"""``embhub fuse``: train the fusion transformer over several stores on the evaluation folds."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from embhub.cli.render import console, error_console

app = typer.Typer(no_args_is_help=True)


def fuse_command(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Prepared dataset name or path (see 'embhub datasets list')."),
    stores: List[str] = typer.Option(
        ..., "--stores", "-s", help="Stores to fuse (paths or model names); more may follow: --stores a b c."
    ),
    more_stores: Optional[List[str]] = typer.Argument(
        None, metavar="STORES", show_default=False, help="More stores, as in --stores a b c (the words after the first)."
    ),
    task: str = typer.Option("lfc", help="lfc (regress the response) or deg (classify genes −1/0/+1)."),
    out: Path = typer.Option(Path("results"), "--out", "-o", help="Output directory; fusion rows join its results table."),
    trials: int = typer.Option(20, help="Optuna trials per fold on the inner validation split (the study used 100; 0: no search)."),
    folds: Optional[List[int]] = typer.Option(None, "--fold", help="Only these outer folds (repeatable; default all)."),
    cell_lines: Optional[List[str]] = typer.Option(None, "--cell-line", help="Only these cell lines (repeatable)."),
    max_epochs: Optional[int] = typer.Option(None, help="Epoch limit (default 75 for lfc, 200 for deg)."),
    patience: int = typer.Option(25, help="Early-stopping patience in epochs (validation loss)."),
    d_model: int = typer.Option(100, help="Common dimension every source is projected to."),
    n_heads: int = typer.Option(5, help="Attention heads (must divide --d-model); searched when --trials > 0."),
    n_layers: int = typer.Option(4, help="Encoder layers; searched when --trials > 0."),
    lr: float = typer.Option(1e-3, help="Adam learning rate; searched when --trials > 0."),
    batch_size: int = typer.Option(64, help="Training batch size; searched when --trials > 0."),
    dropout: Optional[float] = typer.Option(None, help="Encoder dropout (default 0); searched when --trials > 0."),
    input_dropout: Optional[float] = typer.Option(None, help="Dropout on projected sources (default 0.1); searched when --trials > 0."),
    response_offset: Optional[str] = typer.Option(
        None, help="none (study: the head predicts the response) or context_mean (predict the difference from each cell "
        "line's mean response; helps small regularised models on small screens)."
    ),
    name: Optional[str] = typer.Option(None, help="Embedding name of the fusion rows (default: fusion[<stores>])."),
    leave_one_out: bool = typer.Option(False, "--leave-one-out", help="Also retrain without each store (ablation)."),
    concat_baseline: bool = typer.Option(True, "--concat-baseline/--no-concat-baseline", help="Also score kNN on the concatenated stores."),
    attention_layers: str = typer.Option("last", help="CLS attention from the 'last' layer or the mean of 'all'."),
    seed: int = typer.Option(123, help="Seed of training and of the Optuna sampler."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option("auto", help="auto (bf16/fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16."),
    cpu_threads: Optional[int] = typer.Option(None, help="torch CPU threads (1 is fastest for small models on busy CPUs)."),
) -> None:
    """Fuse several embedding stores with a transformer, on the same folds as 'embhub evaluate'."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from embhub.datasets.prepared import PreparedDataset
    from embhub.evaluate.results import manifest_id
    from embhub.fuse.config import default_config
    from embhub.fuse.output import check_fusion_out, save_fusion_run
    from embhub.fuse.run import fuse_dataset

    config = default_config(task).updated(
        patience=patience, d_model=d_model, n_heads=n_heads, n_layers=n_layers, lr=lr, batch_size=batch_size
    )
    optional = {"max_epochs": max_epochs, "dropout": dropout, "input_dropout": input_dropout, "response_offset": response_offset}
    config = config.updated(**{key: value for key, value in optional.items() if value is not None})
    prepared = PreparedDataset.open(dataset)
    check_fusion_out(out, prepared.name, manifest_id(prepared.manifest))
    with Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("{task.fields[losses]}"),
        TimeElapsedColumn(),
        console=error_console,
        transient=True,
    ) as bar:
        task_id = bar.add_task("fusion", total=config.max_epochs, losses="")

        def progress(report) -> None:
            bar.update(
                task_id, description=report.label or "fusion", completed=report.epoch, total=report.max_epochs,
                losses=f"train {report.train_loss:.3f}  val {report.validation_loss:.3f} (best epoch {report.best_epoch})",
            )

        run = fuse_dataset(
            prepared, [*stores, *(more_stores or [])], task, cell_lines=cell_lines, name=name, folds=folds,
            trials=trials, config=config, seed=seed, device=device, precision=precision,
            leave_one_out=leave_one_out, concat_baseline=concat_baseline, attention_layers=attention_layers,
            progress=progress, cpu_threads=cpu_threads,
        )
    written = save_fusion_run(run, out)
    _render(run)
    console.print(f"wrote {written['results']} and {written['run'].parent}", markup=False)


def _render(run) -> None:
    from rich.markup import escape
    from rich.table import Table

    from embhub.fuse.ablation import attention_summary

    metric = "L2" if run.task == "lfc" else "F1"
    scores = run.results[(run.results["metric"] == metric) & (run.results["subset"] == "all")]
    table = Table("method", "embedding", "cell line", f"mean {metric} over folds", "folds")
    for (method, embedding, line), group in scores.groupby(["method", "embedding", "cell_line"], sort=False):
        table.add_row(method, escape(embedding), escape(line), f"{group['value'].mean():.4f}", str(len(group)))
    console.print(table)
    attention = Table("source", "mean CLS attention", "when present")
    for row in attention_summary(run.attention).itertuples():
        attention.add_row(escape(row.token), f"{row.attention:.3f}", f"{row.attention_when_present:.3f}")
    console.print(attention)
    for part, reason in run.metadata.get("skipped", {}).items():
        error_console.print(f"[yellow]skipped {part.replace('_', ' ')}[/]: {reason}")
    uncovered = run.metadata.get("rows_without_any_embedding", 0)
    if uncovered:
        error_console.print(
            f"[yellow]{uncovered} (perturbation, cell line) rows have no embedding in any store[/]: "
            "left out of training, predicted by the cell line's training mean when tested"
        )


TOP_LEVEL_COMMANDS = (fuse_command,)
