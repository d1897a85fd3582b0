"""Writing a fusion run next to (or into) an ``embhub evaluate`` output directory.

``results.parquet``/``results.csv`` get the fusion rows (and the concatenation-kNN rows) merged into whatever
results the directory already holds, replacing earlier rows of the same dataset, method, embedding, cell line and
fold, so single-store kNN rows and fusion rows share one table and one set of plots, and runs over other folds
(``--fold 0``, then ``--fold 1``) add to it. The side files merge the same way (per fold, or per fold and cell
line; ``run.json`` keeps the earlier runs' records under ``earlier_runs``). Besides, under ``fusion/``:

    <name>/run.json              what ran: sources with coverage, folds, seed, base configuration
    <name>/params.json           per fold: chosen configuration, best epoch, validation loss, timings
    <name>/optuna.json           per fold: the Optuna study (sampler, space, best trial, every trial)
    <name>/attention.csv/.png    CLS attention per source (per fold × cell line; the plot averages them)
    <name>/leave_one_out.csv/.png  test ΔL2 when each source is removed (when requested)

When the directory holds an ``embhub evaluate`` report (``summary.csv``), its summary, study layout and
figures are re-rendered from the merged table (``embhub report``), so they include the fusion rows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from embhub.errors import InputError
from embhub.evaluate.results import RESULTS_CSV, RESULTS_PARQUET, load_results, save_results
from embhub.fuse.ablation import LEAVE_ONE_OUT_COLUMNS, attention_summary, leave_one_out_summary
from embhub.fuse.run import FusionRun


def run_directory(out_dir: Path, name: str, task: str = "lfc") -> Path:
    """``fusion/<name>`` (LFC) or ``fusion/<name>-deg``: the two tasks' runs of the same stores share one table."""
    folder = re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_")
    return Path(out_dir) / "fusion" / (folder if task == "lfc" else f"{folder}-{task}")


RESULT_KEY = ("dataset", "method", "embedding", "cell_line", "fold", "metric")


def check_fusion_out(out_dir: str | Path, dataset: str, dataset_id: str) -> pd.DataFrame | None:
    """Refuse, before any training, an ``--out`` that cannot take this run's results; return the results it
    already holds (None when it holds none).

    A file, an unwritable directory, a damaged results table, or one holding rows of another version of the
    same dataset (other responses or folds, so the fusion rows would be compared with unrelated scores).
    """
    from embhub.evaluate.report import check_writable

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a directory; give a directory path")
    existing = None
    if (out / RESULTS_PARQUET).exists() or (out / RESULTS_CSV).exists():
        existing = load_results(out)
        other = existing[(existing["dataset"] == dataset) & (existing["dataset_id"] != dataset_id)]
        if not other.empty:
            raise InputError(
                f"--out {out} holds results of another version of dataset '{dataset}' (dataset_id "
                f"{other['dataset_id'].iloc[0]}, this one is {dataset_id}); give another --out"
            )
    check_writable(out)
    return existing


def merge_results(existing: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """``existing`` without the rows ``new`` replaces (same :data:`RESULT_KEY`), then ``new``."""
    return _merged(existing, new, RESULT_KEY)


def _merged(
    existing: pd.DataFrame | None, new: pd.DataFrame, key: tuple[str, ...], replaced: set[tuple] | None = None
) -> pd.DataFrame:
    """``existing`` without the rows whose key is in ``replaced`` (default: the keys of ``new``), then ``new``."""
    if existing is None or existing.empty:
        return new.reset_index(drop=True)
    if replaced is None:
        replaced = set(zip(*(new[column] for column in key)))
    keep = [row not in replaced for row in zip(*(existing[column] for column in key))]
    if new.empty:
        return existing[keep].reset_index(drop=True)
    return pd.concat([existing[keep], new], ignore_index=True)


def _merged_csv(path: Path, new: pd.DataFrame) -> pd.DataFrame:
    """An attention or leave-one-out table merged per (fold, cell line) with the one already at ``path``."""
    return _merged(pd.read_csv(path) if path.exists() else None, new, ("fold", "cell_line"))


def _merged_fold_records(path: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """``params.json``: the earlier runs' records of other folds, then this run's, by fold."""
    folds = {record["fold"] for record in records}
    earlier = json.loads(path.read_text()).get("folds", []) if path.exists() else []
    merged = [record for record in earlier if record.get("fold") not in folds] + records
    return {"folds": sorted(merged, key=lambda record: record["fold"])}


def _merged_run(path: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """``run.json``: this run's record, with the records of the runs written here before it."""
    if not path.exists():
        return metadata
    earlier = json.loads(path.read_text())
    history = earlier.pop("earlier_runs", [])
    return {**metadata, "earlier_runs": [*history, earlier]}


def save_fusion_run(run: FusionRun, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write the results table (merged) and the run's side files; returns the written paths by role."""
    out = Path(out_dir)
    existing = check_fusion_out(out, run.metadata["dataset"], run.metadata["dataset_id"])
    save_results(merge_results(existing, run.results), out, simulated=run.metadata.get("simulated"))
    from embhub.evaluate.report import SUMMARY_CSV, rerender

    if (out / SUMMARY_CSV).exists():
        rerender(out, plots=plots)
    folder = run_directory(out, run.name, run.task)
    folder.mkdir(parents=True, exist_ok=True)
    written = {"results": out / RESULTS_PARQUET}
    written["run"] = _write_json(folder / "run.json", _merged_run(folder / "run.json", run.metadata))
    written["params"] = _write_json(folder / "params.json", _merged_fold_records(folder / "params.json", run.folds))
    # The refitted folds' earlier studies and ablations described the models this run replaced.
    refitted = {record["fold"] for record in run.folds}
    optuna = folder / "optuna.json"
    earlier = json.loads(optuna.read_text()) if optuna.exists() else {}
    studies = {k: v for k, v in earlier.items() if int(k) not in refitted} | {str(k): v for k, v in run.studies.items()}
    if studies:
        written["optuna"] = _write_json(optuna, studies)
    else:
        optuna.unlink(missing_ok=True)
    attention = _merged_csv(folder / "attention.csv", run.attention)
    attention.to_csv(folder / "attention.csv", index=False)
    written["attention"] = folder / "attention.csv"
    scored = run.results[run.results["method"] == "fusion"]
    loo_csv, loo_png = folder / "leave_one_out.csv", folder / "leave_one_out.png"
    leave_one_out = _merged(
        pd.read_csv(loo_csv) if loo_csv.exists() else None,
        run.leave_one_out if run.leave_one_out is not None else pd.DataFrame(columns=list(LEAVE_ONE_OUT_COLUMNS)),
        ("fold", "cell_line"),
        set(zip(scored["fold"], scored["cell_line"])),
    )
    if leave_one_out.empty:
        loo_csv.unlink(missing_ok=True)
        loo_png.unlink(missing_ok=True)
    else:
        leave_one_out.to_csv(loo_csv, index=False)
        written["leave_one_out"] = loo_csv
    if plots:
        from embhub.fuse.plots import plot_attention, plot_leave_one_out

        if not attention.empty:
            written["attention_plot"] = plot_attention(attention_summary(attention), folder / "attention.png", run.name)
        if not leave_one_out.empty:
            written["leave_one_out_plot"] = plot_leave_one_out(leave_one_out_summary(leave_one_out), loo_png, run.name)
    return written


def _write_json(path: Path, payload: Any) -> Path:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    return path
