"""The results table: one tidy row per (method, embedding, cell line, fold, metric, subset).

Shared by ``embhub evaluate`` and ``embhub fuse`` (contract in the helpers' shared contracts)::

    dataset, dataset_id, cell_line, fold, method, embedding, store_path, store_id,
    estimator_params, metric, value, n_test, n_covered, subset

``method`` is one of :data:`METHODS`; baselines that run through an estimator (random embeddings, the
idealized PCA-of-responses control) keep that estimator's method ("knn", "lasso", "logistic") and carry
the baseline's name in ``embedding``. ``subset`` is "all" (every test perturbation; missing ones predicted
by the fallback) or "common" (perturbations covered by every compared store). Saved as
``results.parquet`` + ``results.csv`` (+ ``run.json`` with the run's metadata) in one directory.
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
BASELINE_EMBEDDINGS = (NO_CHANGE, CONTEXT_MEAN, MOST_FREQUENT, RANDOM, IDEALIZED, CEILING)

RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"
RUN_METADATA = "run.json"
STUDY_LAYOUT_CSV = "study_layout.csv"


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


def save_results(frame: pd.DataFrame, out_dir: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``results.parquet``, ``results.csv`` (and ``run.json``) into ``out_dir``; returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = _typed(frame)
    frame.to_parquet(out / RESULTS_PARQUET, index=False)
    frame.to_csv(out / RESULTS_CSV, index=False)
    if metadata is not None:
        (out / RUN_METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str))
    return out


def load_results(path: str | Path) -> pd.DataFrame:
    """Read a results table from its directory, its ``.parquet`` or its ``.csv``."""
    path = Path(path)
    if path.is_dir():
        if (path / RESULTS_PARQUET).exists():
            path = path / RESULTS_PARQUET
        elif (path / RESULTS_CSV).exists():
            path = path / RESULTS_CSV
        else:
            raise InputError(f"{path} holds no {RESULTS_PARQUET} or {RESULTS_CSV}; give an 'embhub evaluate' output directory")
    if not path.exists():
        raise InputError(f"no results at {path}; give an 'embhub evaluate' output directory")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
        frame["store_path"] = frame["store_path"].fillna("")
    else:
        raise InputError(f"cannot read results from {path}: give a .parquet, a .csv or their directory")
    return _typed(frame)


def load_run_metadata(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    file = directory / RUN_METADATA
    return json.loads(file.read_text()) if file.exists() else {}


def study_row_name(method: str, embedding: str) -> str:
    """The study's ``name`` column: ``knn_baseline_<embedding>``, ``context mean baseline``…"""
    if method == "baseline":
        return {NO_CHANGE: "no change baseline", CONTEXT_MEAN: "context mean baseline"}.get(embedding, embedding)
    if method == "ceiling":
        return "Experimental error (quantile 0.9)"
    study_embedding = {RANDOM: "random", IDEALIZED: "pca"}.get(embedding, embedding)
    if method in ("knn", "lasso"):
        return f"{method}_baseline_{study_embedding}"
    return study_embedding


def study_layout(frame: pd.DataFrame) -> pd.DataFrame:
    """LFC rows of the "all" subset in the study's ``results/scores`` layout (one row per name × fold).

    Columns: ``dataset, fold ("K-562.0"), name, L2, MSE, MAE, Spearman, Pearson, cell_line``.
    """
    lfc = frame[(frame["subset"] == "all") & frame["metric"].isin(LFC_METRICS)]
    if lfc.empty:
        return pd.DataFrame(columns=["dataset", "fold", "name", *("L2", "MSE", "MAE", "Spearman", "Pearson"), "cell_line"])
    lfc = lfc.assign(name=[study_row_name(m, e) for m, e in zip(lfc["method"], lfc["embedding"])])
    wide = lfc.pivot_table(index=["dataset", "cell_line", "fold", "name"], columns="metric", values="value",
                           aggfunc="first", dropna=False).reset_index()
    for metric in LFC_METRICS:
        if metric not in wide.columns:
            wide[metric] = np.nan
    wide["fold"] = [f"{cell}.{fold}" for cell, fold in zip(wide["cell_line"], wide["fold"])]
    return wide[["dataset", "fold", "name", "L2", "MSE", "MAE", "Spearman", "Pearson", "cell_line"]].reset_index(drop=True)
