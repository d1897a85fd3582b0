"""Writing an evaluation's files: the results table, coverage, the study layout, metadata and plots."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from embhub.evaluate import results as R
from embhub.evaluate.plots import all_plots

COVERAGE_CSV = "coverage.csv"
SUMMARY_CSV = "summary.csv"


def default_out_dir(dataset: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("embhub-results") / f"{dataset}-{stamp}"


def write_outputs(evaluation, out_dir: Path, plots: bool = True) -> list[Path]:
    """Save ``evaluation`` (:class:`~embhub.evaluate.runner.Evaluation`) under ``out_dir``; returns the files."""
    from embhub.evaluate.summary import summarise

    out_dir = R.save_results(evaluation.results, out_dir, evaluation.metadata)
    evaluation.coverage.to_csv(out_dir / COVERAGE_CSV, index=False)
    R.study_layout(evaluation.results).to_csv(out_dir / R.STUDY_LAYOUT_CSV, index=False)
    summarise(evaluation.results).to_csv(out_dir / SUMMARY_CSV, index=False)
    files = [out_dir / name for name in (R.RESULTS_PARQUET, R.RESULTS_CSV, R.RUN_METADATA, COVERAGE_CSV, R.STUDY_LAYOUT_CSV, SUMMARY_CSV)]
    if plots:
        files += all_plots(evaluation.results, out_dir)
    return files


def rerender(results_path: Path, out_dir: Path | None = None, plots: bool = True) -> tuple[pd.DataFrame, list[Path]]:
    """``embhub report``: reload saved results and re-write the study layout, summary and plots."""
    from embhub.evaluate.summary import summarise

    frame = R.load_results(results_path)
    source_dir = results_path if results_path.is_dir() else results_path.parent
    out_dir = Path(out_dir or source_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    R.study_layout(frame).to_csv(out_dir / R.STUDY_LAYOUT_CSV, index=False)
    summarise(frame).to_csv(out_dir / SUMMARY_CSV, index=False)
    files = [out_dir / R.STUDY_LAYOUT_CSV, out_dir / SUMMARY_CSV]
    if plots:
        files += all_plots(frame, out_dir)
    return frame, files
