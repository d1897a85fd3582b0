"""Writing an evaluation's files: the results table, coverage, the study layout, summary, metadata and plots.

An output directory is checked before anything is computed: it must be a writable directory, and one that
already holds embhub's files is replaced only when asked (``overwrite``). Replacing removes exactly the files
embhub writes (:func:`embhub_files`), so figures of an earlier run (``f1_boxplot`` of a ``--deg`` run) do not
linger beside the new ones, and files of the user's own are never touched. ``report`` re-rendering into the
results' own directory replaces only the files it derives (study layout, summary, plots).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from embhub.errors import InputError
from embhub.evaluate import results as R
from embhub.evaluate.plots import all_plots, plot_file_names
from embhub.evaluate.summary import check_subset, headline_metrics, resolve_metric, summary_table

COVERAGE_CSV = "coverage.csv"
SUMMARY_CSV = "summary.csv"
RESULT_FILES = (R.RESULTS_PARQUET, R.RESULTS_CSV, R.RUN_METADATA, COVERAGE_CSV)
DERIVED_FILES = (R.STUDY_LAYOUT_CSV, R.STUDY_LAYOUT_DEG_CSV, SUMMARY_CSV)


@dataclass
class Report:
    """What ``embhub report`` re-rendered: the results, the metrics and subset it summarised, and its files."""

    frame: pd.DataFrame
    metrics: list[str]
    subset: str | None
    simulated: bool
    coverage: pd.DataFrame | None
    files: list[Path]


def default_out_dir(dataset: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("embhub-results") / f"{dataset}-{stamp}"


def embhub_files(directory: Path, derived_only: bool = False, plots: bool = True) -> list[Path]:
    """The files in ``directory`` that embhub writes there (results, coverage, metadata, summaries and, unless
    ``plots`` is false, plots)."""
    names = set(DERIVED_FILES) | (plot_file_names() if plots else set())
    if not derived_only:
        names |= set(RESULT_FILES)
    return sorted(directory / name for name in names if (directory / name).is_file())


def check_out_dir(out_dir: Path, overwrite: bool = False) -> None:
    """Refuse an ``--out`` that is a file, cannot be written, or holds embhub files (unless ``overwrite``)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file, not a directory; give a directory path")
    if out_dir.is_dir() and not overwrite:
        existing = embhub_files(out_dir)
        if existing:
            shown = ", ".join(f.name for f in existing[:4]) + (", …" if len(existing) > 4 else "")
            raise InputError(f"--out {out_dir} already holds embhub results ({shown}); "
                             "give another directory or add --overwrite to replace them")
    check_writable(out_dir)


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` and a file in it, then remove what was created: a later failure to write would lose
    all the computing done before it."""
    created = []
    parent = Path(out_dir)
    while not parent.exists() and parent != parent.parent:
        created.append(parent)
        parent = parent.parent
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise InputError(f"cannot write to --out {out_dir} ({exc.strerror or exc}); give a writable directory") from None
    finally:
        for directory in created:
            try:
                directory.rmdir()
            except OSError:
                pass


def _remove(files: list[Path]) -> None:
    for file in files:
        file.unlink()


def write_outputs(evaluation, out_dir: Path, plots: bool = True, overwrite: bool = False) -> list[Path]:
    """Save ``evaluation`` (:class:`~embhub.evaluate.runner.Evaluation`) under ``out_dir``; returns the files."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove(embhub_files(out_dir))
    simulated = bool(evaluation.metadata.get("simulated", False))
    R.save_results(evaluation.results, out_dir, evaluation.metadata)
    evaluation.coverage.to_csv(out_dir / COVERAGE_CSV, index=False)
    files = [out_dir / name for name in RESULT_FILES]
    metrics = headline_metrics(evaluation.results)
    files += _write_derived(evaluation.results, out_dir, metrics, list(R.SUBSETS), "all", simulated, plots)
    return files


def _write_derived(frame: pd.DataFrame, out_dir: Path, metrics: list[str], subsets: list[str], plot_subset: str,
                   simulated: bool, plots: bool) -> list[Path]:
    R.study_layout(frame).assign(simulated=simulated).to_csv(out_dir / R.STUDY_LAYOUT_CSV, index=False)
    files = [out_dir / R.STUDY_LAYOUT_CSV]
    if frame["metric"].isin(R.DEG_METRICS).any():
        R.study_layout_deg(frame).assign(simulated=simulated).to_csv(out_dir / R.STUDY_LAYOUT_DEG_CSV, index=False)
        files.append(out_dir / R.STUDY_LAYOUT_DEG_CSV)
    summary_table(frame, metrics, subsets).assign(simulated=simulated).to_csv(out_dir / SUMMARY_CSV, index=False)
    files.append(out_dir / SUMMARY_CSV)
    if plots:
        files += all_plots(frame, out_dir, metrics, plot_subset, simulated)
    return files


def rerender(results_path: Path, out_dir: Path | None = None, plots: bool = True, metric: str | None = None,
             subset: str | None = None, overwrite: bool = False) -> Report:
    """``embhub report``: reload saved results and re-write the study layout, summary and plots.

    ``metric`` (default: L2, and F1 when present) and ``subset`` (default: both in the summary, "all" in
    the plots) choose what the summary and plots hold.
    """
    results_path = Path(results_path)
    frame = R.load_results(results_path)
    if metric is not None:
        metrics = [resolve_metric(frame, metric)]
    else:
        metrics = headline_metrics(frame)
    if subset is not None:
        if metric is None:
            metrics = [m for m in metrics if ((frame["metric"] == m) & (frame["subset"] == subset)).any()] or metrics[:1]
        for name in metrics:
            check_subset(frame, name, subset)
    source_dir = results_path if results_path.is_dir() else results_path.parent
    out_dir = Path(out_dir or source_dir)
    in_place = out_dir.is_dir() and out_dir.resolve() == source_dir.resolve()
    if in_place:
        check_writable(out_dir)
    else:
        check_out_dir(out_dir, overwrite)
        out_dir.mkdir(parents=True, exist_ok=True)
    _remove(embhub_files(out_dir, derived_only=in_place, plots=plots or not in_place))
    simulated = R.results_simulated(results_path)
    files = _write_derived(frame, out_dir, metrics, [subset] if subset else list(R.SUBSETS), subset or "all", simulated, plots)
    return Report(frame, metrics, subset, simulated, _coverage(source_dir), files)


def _coverage(source_dir: Path) -> pd.DataFrame | None:
    file = source_dir / COVERAGE_CSV
    if not file.exists():
        return None
    try:
        return pd.read_csv(file)
    except (OSError, ValueError) as exc:
        raise InputError(f"{file} is damaged ({exc}); re-run 'embhub evaluate' to recreate it") from None
