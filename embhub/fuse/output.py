"""Writing a fusion run next to (or into) an ``embhub evaluate`` output directory.

``results.parquet``/``results.csv`` get the fusion rows (and the concatenation-kNN rows) merged into whatever
results the directory already holds, replacing earlier rows of the same dataset, method and embedding, so
single-store kNN rows and fusion rows share one table and one set of plots. Besides, under ``fusion/``:

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

from embhub.evaluate.results import RESULTS_CSV, RESULTS_PARQUET, load_results, save_results
from embhub.fuse.ablation import attention_summary, leave_one_out_summary
from embhub.fuse.run import FusionRun


def run_directory(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / "fusion" / re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_")


def merge_results(existing: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """``existing`` without the rows ``new`` replaces (same dataset, method, embedding), then ``new``."""
    if existing is None or existing.empty:
        return new.reset_index(drop=True)
    replaced = set(zip(new["dataset"], new["method"], new["embedding"]))
    keep = [key not in replaced for key in zip(existing["dataset"], existing["method"], existing["embedding"])]
    return pd.concat([existing[keep], new], ignore_index=True)


def save_fusion_run(run: FusionRun, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write the results table (merged) and the run's side files; returns the written paths by role."""
    out = Path(out_dir)
    existing = load_results(out) if (out / RESULTS_PARQUET).exists() or (out / RESULTS_CSV).exists() else None
    save_results(merge_results(existing, run.results), out)
    from embhub.evaluate.report import SUMMARY_CSV, rerender

    if (out / SUMMARY_CSV).exists():
        rerender(out, plots=plots)
    folder = run_directory(out, run.name)
    folder.mkdir(parents=True, exist_ok=True)
    written = {"results": out / RESULTS_PARQUET}
    written["run"] = _write_json(folder / "run.json", run.metadata)
    written["params"] = _write_json(folder / "params.json", {"folds": run.folds})
    if run.studies:
        written["optuna"] = _write_json(folder / "optuna.json", {str(k): v for k, v in run.studies.items()})
    run.attention.to_csv(folder / "attention.csv", index=False)
    written["attention"] = folder / "attention.csv"
    if run.leave_one_out is not None:
        run.leave_one_out.to_csv(folder / "leave_one_out.csv", index=False)
        written["leave_one_out"] = folder / "leave_one_out.csv"
    if plots:
        from embhub.fuse.plots import plot_attention, plot_leave_one_out

        if not run.attention.empty:
            written["attention_plot"] = plot_attention(attention_summary(run.attention), folder / "attention.png", run.name)
        if run.leave_one_out is not None and not run.leave_one_out.empty:
            written["leave_one_out_plot"] = plot_leave_one_out(
                leave_one_out_summary(run.leave_one_out), folder / "leave_one_out.png", run.name
            )
    return written


def _write_json(path: Path, payload: Any) -> Path:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    return path
