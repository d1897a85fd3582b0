"""The results table: one tidy row per (method, embedding, cell line, fold, metric, subset).

Shared by ``embhub evaluate`` and ``embhub fuse`` (contract in the helpers' shared contracts)::

    dataset, dataset_id, cell_line, fold, method, embedding, store_path, store_id,
    estimator_params, metric, value, n_test, n_covered, subset

``method`` is one of :data:`METHODS`; baselines that run through an estimator (random embeddings, the
idealized PCA-of-responses control) keep that estimator's method ("knn", "lasso", "logistic") and carry
the baseline's name in ``embedding``. ``subset`` is "all" (every test perturbation; missing ones predicted
by the fallback) or "common" (perturbations covered by every compared store). Saved as
``results.parquet`` + ``results.csv`` (+ ``run.json`` with the run's metadata) in one directory; the saved
tables add a ``simulated`` column (True when the dataset is simulated), which loading leaves out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from embhub.errors import InputError

RESULT_COLUMNS = (
    "dataset",
    "dataset_id",
    "cell_line",
    "fold",
    "method",
    "embedding",
    "store_path",
    "store_id",
    "estimator_params",
    "metric",
    "value",
    "n_test",
    "n_covered",
    "subset",
)
SCORE_KEY = ("dataset", "cell_line", "fold", "method", "embedding", "metric", "subset")
"""What one row scores; a results table holds each once."""
METHODS = ("knn", "lasso", "logistic", "baseline", "fusion", "ceiling")
SUBSETS = ("all", "common")
LFC_METRICS = ("L2", "MSE", "MAE", "Pearson", "Spearman")
DEG_METRICS = ("F1", "recall", "precision")
LOWER_IS_BETTER = {"L2": True, "MSE": True, "MAE": True, "Pearson": False, "Spearman": False, "F1": False,
                   "recall": False, "precision": False}

NO_CHANGE = "no_change"
CONTEXT_MEAN = "context_mean"
MOST_FREQUENT = "most_frequent"
RANDOM = "random"
IDEALIZED = "idealized_pca (leaks test labels)"
CEILING = "experimental_error_q0.9"
DEG_CEILING = "experimental_error_q0.1"
BASELINE_EMBEDDINGS = (NO_CHANGE, CONTEXT_MEAN, MOST_FREQUENT, RANDOM, IDEALIZED, CEILING, DEG_CEILING)

RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"
RUN_METADATA = "run.json"
STUDY_LAYOUT_CSV = "study_layout.csv"
STUDY_LAYOUT_DEG_CSV = "study_layout_deg.csv"
STUDY_LFC_COLUMNS = ("dataset", "fold", "metrics", "name", "primary_metric", "L2", "MSE", "MAE", "Spearman", "Pearson",
                     "cell_line")
STUDY_DEG_COLUMNS = ("dataset", "fold", "metrics", "name", "f1_score", "recall", "precision", "primary_metric",
                     "cell_line", "quantile")
STUDY_DEG_METRICS = {"F1": "f1_score", "recall": "recall", "precision": "precision"}


def manifest_id(manifest: Mapping[str, Any]) -> str:
    """A short identity of a store or dataset: its content checksum when it has one, else a manifest hash."""
    for key in ("content_sha256", "sha256", "id"):
        value = manifest.get(key)
        if isinstance(value, str) and value:
            return value[:16]
    canonical = json.dumps(manifest, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def results_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (dicts with the :data:`RESULT_COLUMNS` keys) as a typed DataFrame in column order."""
    frame = pd.DataFrame(list(rows), columns=list(RESULT_COLUMNS))
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"results table lacks columns {missing}; is it an embhub results file?")
    frame = frame[list(RESULT_COLUMNS)].copy()
    for column in ("dataset", "dataset_id", "cell_line", "method", "embedding", "store_path", "store_id",
                   "estimator_params", "metric", "subset"):
        frame[column] = frame[column].fillna("").astype(str)
    frame["fold"] = frame["fold"].astype(np.int64)
    frame["value"] = frame["value"].astype(np.float64)
    frame["n_test"] = frame["n_test"].astype(np.int64)
    frame["n_covered"] = frame["n_covered"].astype(np.int64)
    return frame


def save_results(
    frame: pd.DataFrame, out_dir: str | Path, metadata: Mapping[str, Any] | None = None, simulated: bool | None = None
) -> Path:
    """Write ``results.parquet``, ``results.csv`` (and ``run.json``) into ``out_dir``; returns the directory.

    The files carry one more column than the frame, ``simulated``: the argument, else from ``metadata`` or the
    directory's ``run.json``, so that a table passed on alone still says whether its dataset was simulated.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if simulated is None:
        known = metadata if metadata is not None else load_run_metadata(out)
        simulated = bool(known.get("simulated", False))
    labelled = _typed(frame).assign(simulated=simulated)
    labelled.to_parquet(out / RESULTS_PARQUET, index=False)
    labelled.to_csv(out / RESULTS_CSV, index=False)
    if metadata is not None:
        (out / RUN_METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str))
    return out


def results_file(path: str | Path) -> Path:
    """The table file behind ``path``: the file itself, or a directory's parquet (preferred) or csv."""
    path = Path(path)
    if path.is_dir():
        for name in (RESULTS_PARQUET, RESULTS_CSV):
            if (path / name).exists():
                return path / name
        raise InputError(f"{path} holds no {RESULTS_PARQUET} or {RESULTS_CSV}; give an 'embhub evaluate' output directory")
    if not path.exists():
        raise InputError(f"no results at {path}; give an 'embhub evaluate' output directory")
    if path.suffix not in (".parquet", ".csv"):
        raise InputError(f"cannot read results from {path}: give a .parquet, a .csv or their directory")
    return path


def load_results(path: str | Path) -> pd.DataFrame:
    """Read a results table from its directory, its ``.parquet`` or its ``.csv``.

    A directory's parquet is read, but its csv is compared with it: one edited by hand would otherwise be
    ignored without a word."""
    file = results_file(path)
    frame = _load_table(file)
    twin = file.with_name(RESULTS_CSV)
    if Path(path).is_dir() and file.name == RESULTS_PARQUET and twin.exists():
        _refuse_differing_twin(frame, file, twin)
    return frame


def _refuse_differing_twin(frame: pd.DataFrame, parquet: Path, csv: Path) -> None:
    try:
        other = _load_table(csv)
        same = (
            other.shape == frame.shape
            and other.drop(columns="value").equals(frame.drop(columns="value"))
            and np.allclose(other["value"], frame["value"], rtol=1e-12, atol=0.0, equal_nan=True)
        )
    except InputError:
        same = False
    if not same:
        raise InputError(
            f"{csv.parent} holds a {csv.name} that differs from its {parquet.name} (was one edited?); give the table "
            f"to use: 'embhub report {csv}' or 'embhub report {parquet}'"
        )


def _load_table(file: Path) -> pd.DataFrame:
    damaged = "re-run 'embhub evaluate' to recreate it"
    try:
        raw = _read_table(file)
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{file} is damaged or not an embhub results table ({reason}); {damaged}") from None
    missing = [c for c in RESULT_COLUMNS if c not in raw.columns]
    if missing:
        raise InputError(f"{file} is not an embhub results table (it lacks the columns {', '.join(missing)}); {damaged}")
    try:
        frame = _typed(raw)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{file} is damaged: a column holds values of the wrong type ({exc}); {damaged}") from None
    if frame.empty:
        raise InputError(f"{file} holds no results rows; {damaged}")
    repeated = frame[frame.duplicated(list(SCORE_KEY), keep=False)]
    if len(repeated):
        row = repeated.iloc[0]
        raise InputError(
            f"{file} holds {len(repeated)} rows that repeat a score (e.g. {row.method} {row.embedding}, {row.cell_line} "
            f"fold {row.fold}, {row.metric}, {row.subset}), which would count those folds twice; each score must appear "
            f"once: remove the repeated rows, or evaluate the stores of several runs together"
        )
    return frame


def _read_table(file: Path, columns: list[str] | None = None) -> pd.DataFrame:
    if file.suffix == ".parquet":
        return pd.read_parquet(file, columns=columns)
    return pd.read_csv(file, keep_default_na=False, na_values=[""], usecols=columns)


def results_simulated(path: str | Path) -> bool:
    """Whether the results at ``path`` come from a simulated dataset: ``run.json`` says, else the table's column."""
    metadata = load_run_metadata(path)
    if "simulated" in metadata:
        return bool(metadata["simulated"])
    file = results_file(path)
    try:
        column = _read_table(file, columns=["simulated"])["simulated"]
    except (OSError, ValueError, KeyError):
        return False
    return bool(column.astype(str).str.lower().isin(["true", "1"]).any())


def load_run_metadata(path: str | Path) -> dict[str, Any]:
    """The ``run.json`` beside the results at ``path`` (a directory or a table file); empty when absent or unreadable."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    file = directory / RUN_METADATA
    try:
        metadata = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    return metadata if isinstance(metadata, dict) else {}


def study_row_name(method: str, embedding: str, deg: bool = False) -> str:
    """The study's ``name`` column: ``knn_baseline_<embedding>``, ``context mean baseline``… on LFC results;
    the bare embedding name on DEG results (``no_change``, ``most_frequent``, ``random``, ``pca``, a store)."""
    if method == "ceiling":
        quantile = 0.1 if embedding == DEG_CEILING else 0.9
        return f"Experimental error (quantile {quantile})"
    if method == "baseline" and not deg:
        return {NO_CHANGE: "no change baseline", CONTEXT_MEAN: "context mean baseline"}.get(embedding, embedding)
    study_embedding = {RANDOM: "random", IDEALIZED: "pca"}.get(embedding, embedding)
    if method in ("knn", "lasso"):
        return f"{method}_baseline_{study_embedding}"
    return study_embedding


def study_layout(frame: pd.DataFrame) -> pd.DataFrame:
    """LFC rows of the "all" subset in the study's ``results/scores`` layout (one row per name × fold):
    :data:`STUDY_LFC_COLUMNS`, ``fold`` as "K-562.0" and ``metrics`` the row's scores as a Python dict literal."""
    wide = _study_rows(frame, LFC_METRICS, {metric: metric for metric in LFC_METRICS}, deg=False)
    if wide.empty:
        return pd.DataFrame(columns=list(STUDY_LFC_COLUMNS))
    wide["primary_metric"] = "L2"
    wide["metrics"] = [_metrics_literal("L2", row, LFC_METRICS) for row in wide.itertuples()]
    return wide[list(STUDY_LFC_COLUMNS)]


def study_layout_deg(frame: pd.DataFrame) -> pd.DataFrame:
    """DEG rows of the "all" subset in the layout of the study's ``essential_deg.csv``: :data:`STUDY_DEG_COLUMNS`,
    bare embedding names, ``quantile`` 0.1 on the experimental-error row."""
    wide = _study_rows(frame, DEG_METRICS, STUDY_DEG_METRICS, deg=True)
    if wide.empty:
        return pd.DataFrame(columns=list(STUDY_DEG_COLUMNS))
    wide["primary_metric"] = "f1_score"
    wide["quantile"] = np.where(wide["name"].str.startswith("Experimental error"), 0.1, np.nan)
    wide["metrics"] = [_metrics_literal("f1_score", row, STUDY_DEG_METRICS.values()) for row in wide.itertuples()]
    return wide[list(STUDY_DEG_COLUMNS)]


def _study_rows(frame: pd.DataFrame, metrics: Iterable[str], column_of: Mapping[str, str], deg: bool) -> pd.DataFrame:
    rows = frame[(frame["subset"] == "all") & frame["metric"].isin(list(metrics))]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(name=[study_row_name(m, e, deg) for m, e in zip(rows["method"], rows["embedding"])])
    wide = rows.pivot_table(index=["dataset", "cell_line", "fold", "name"], columns="metric", values="value",
                            aggfunc="first", dropna=False).reset_index()
    wide = wide.rename(columns=dict(column_of))
    for column in column_of.values():
        if column not in wide.columns:
            wide[column] = np.nan
    wide["fold"] = [f"{cell}.{fold}" for cell, fold in zip(wide["cell_line"], wide["fold"])]
    return wide.reset_index(drop=True)


def _metrics_literal(primary: str, row: Any, columns: Iterable[str]) -> str:
    scores = {"primary_metric": primary}
    scores.update({column: float(getattr(row, column)) for column in columns if not pd.isna(getattr(row, column))})
    return repr(scores)
