"""``embhub fuse`` as a library call: per outer fold, search or train the fusion model, score it, ablate it.

For each fold of the prepared dataset (the same folds ``embhub evaluate`` uses): split the pooled training
rows into fit and validation by perturbation id, run the Optuna search (or train the given configuration when
``trials`` is 0), predict the fold's test rows of every cell line, and score them into rows of the shared
results table (method "fusion"). Alongside: CLS attention per source, optional leave-one-source-out
retraining, and the concatenation kNN baseline (method "knn", embedding ``concat[...]``).
torch and optuna are imported only when this runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from embhub.datasets.prepared import PreparedDataset
from embhub.evaluate.metrics import lfc_metrics
from embhub.evaluate.protocol import ProtocolSettings, settings_for
from embhub.evaluate.results import results_frame
from embhub.fuse.ablation import ATTENTION_COLUMNS, LEAVE_ONE_OUT_COLUMNS, attention_table, leave_one_out_rows
from embhub.fuse.concat_knn import concat_knn_predictions, params_json
from embhub.fuse.config import DEFAULT_TRIALS, TASKS, TRAINING_SEED, FusionConfig, default_config
from embhub.fuse.data import FusionData, SourceInfo, load_fusion_data, resolve_store_path
from embhub.fuse.scoring import fallback_prediction, score_rows
from embhub.fuse.splits import fold_rows
from embhub.errors import InputError
from embhub.store import EmbeddingStore

MAX_NAME_LENGTH = 80


@dataclass
class FusionRun:
    """Everything one ``embhub fuse`` run produced (see :func:`embhub.fuse.output.save_fusion_run`)."""

    name: str
    task: str
    results: pd.DataFrame
    folds: list[dict[str, Any]]
    studies: dict[int, dict[str, Any]]
    attention: pd.DataFrame
    leave_one_out: pd.DataFrame | None
    sources: list[SourceInfo]
    metadata: dict[str, Any] = field(default_factory=dict)


def fuse_dataset(
    dataset: str | Path | PreparedDataset,
    stores: Sequence[str | Path],
    task: str = "lfc",
    *,
    cell_lines: Sequence[str] | None = None,
    **options: Any,
) -> FusionRun:
    """Open a prepared dataset and stores by name or path, then :func:`run_fusion`."""
    prepared = dataset if isinstance(dataset, PreparedDataset) else PreparedDataset.open(dataset)
    opened = [EmbeddingStore.open(resolve_store_path(s)) for s in stores]
    data = load_fusion_data(prepared, opened, cell_lines=cell_lines, task=task)
    options.setdefault("settings", settings_for(prepared.name, prepared.manifest))
    return run_fusion(data, task, **options)


def fusion_name(data: FusionData) -> str:
    name = "fusion[" + "+".join(data.source_names) + "]"
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256("\n".join(i.store_id for i in data.source_info).encode()).hexdigest()[:8]
    return f"fusion[{len(data.source_info)} stores {digest}]"


def run_fusion(
    data: FusionData,
    task: str = "lfc",
    *,
    name: str | None = None,
    folds: Sequence[int] | None = None,
    trials: int = DEFAULT_TRIALS,
    config: FusionConfig | None = None,
    seed: int = TRAINING_SEED,
    device: str = "auto",
    precision: str = "auto",
    leave_one_out: bool = False,
    concat_baseline: bool = True,
    attention_layers: str = "last",
    settings: ProtocolSettings | None = None,
    progress: Any = None,
    cpu_threads: int | None = None,
) -> FusionRun:
    """Fusion over ``folds`` (default: all). ``trials`` > 0 searches hyperparameters per fold around ``config``."""
    from embhub.fuse.train import cls_attention, train_fusion

    if task not in TASKS:
        raise InputError(f"task '{task}' is not one of {', '.join(TASKS)}")
    if trials < 0:
        raise InputError(f"trials must be 0 (no search) or more, not {trials}")
    if cpu_threads is not None and cpu_threads < 1:
        raise InputError(f"--cpu-threads {cpu_threads} must be at least 1 (or left out: torch's own setting)")
    if attention_layers not in ("last", "all"):
        raise InputError(f"attention layers '{attention_layers}' is not 'last' or 'all'")
    skipped: dict[str, str] = {}
    if task == "deg" and (leave_one_out or concat_baseline):
        wanted = (("leave_one_out", leave_one_out), ("concat_baseline", concat_baseline))
        skipped = {part: "LFC only" for part, asked in wanted if asked}
        leave_one_out = concat_baseline = False
    if leave_one_out and len(data.source_info) < 2:
        skipped["leave_one_out"] = "needs at least two stores"
        leave_one_out = False
    config = config or default_config(task)
    settings = settings or ProtocolSettings()
    name = name or fusion_name(data)
    chosen_folds = list(dict.fromkeys(folds)) if folds is not None else data.folds
    unknown = sorted(set(chosen_folds) - set(data.folds))
    if unknown:
        raise InputError(f"dataset '{data.dataset}' has no fold {unknown[0]} (folds: {data.folds})")
    if leave_one_out:
        _check_leave_one_out(data, chosen_folds, task)
    common = {
        "store_path": ";".join(i.path for i in data.source_info),
        "store_id": ";".join(i.store_id for i in data.source_info),
    }
    results: list[dict[str, Any]] = []
    attention: list[dict[str, Any]] = []
    loso: list[dict[str, Any]] = []
    fold_records: list[dict[str, Any]] = []
    studies: dict[int, dict[str, Any]] = {}
    train_options = dict(seed=seed, device=device, precision=precision, progress=progress, cpu_threads=cpu_threads)

    for fold in chosen_folds:
        rows = fold_rows(data, fold, task)
        label = f"fold {fold}"
        if trials > 0:
            from embhub.fuse.search import search_fusion

            outcome = search_fusion(data, rows.fit, rows.validation, config, trials, task, label=label, **train_options)
            trained, studies[fold] = outcome.trained, outcome.summary
        else:
            trained = train_fusion(data, rows.fit, rows.validation, config, task, label=label, **train_options)
        params = {
            "config": trained.config.to_dict(),
            "best_epoch": trained.best_epoch,
            "validation_loss": trained.best_validation_loss,
            "trials": trials,
            "seed": seed,
        }
        fold_records.append({
            "fold": fold,
            **params,
            "seconds_per_epoch": trained.seconds_per_epoch,
            "epochs_run": len(trained.history),
            "n_fit": len(rows.fit),
            "n_validation": len(rows.validation),
            "n_test": len(rows.test),
            "n_train_without_embedding": rows.train_uncovered,
            "device": str(trained.device),
            "precision": str(trained.dtype).removeprefix("torch."),
        })
        predicted = _predict_fold(data, rows.test, fold, task, lambda r: _predict(trained, data, r))
        full_l2 = {}
        for line, (test, predictions, covered) in predicted.items():
            results += score_rows(
                data, task, fold, test, predictions, covered, method="fusion", embedding=name,
                params=params_json(params), cell_line=line, **common,
            )
            if task == "lfc":
                full_l2[line] = lfc_metrics(data.lfc[test], predictions)["L2"]
        test_covered = rows.test[data.row_covered[rows.test]]
        weights = cls_attention(trained, data, test_covered, layers=attention_layers)
        attention += attention_table(weights, data, test_covered, fold, trained.config.cell_line, attention_layers)
        if leave_one_out:
            loso += leave_one_out_rows(
                data, fold, full_l2, lambda reduced: _retrain_without(reduced, fold, task, trained.config, train_options)
            )
        if concat_baseline:
            results += _concat_rows(data, fold, settings)

    return FusionRun(
        name=name,
        task=task,
        results=results_frame(results),
        folds=fold_records,
        studies=studies,
        attention=pd.DataFrame(attention, columns=list(ATTENTION_COLUMNS)),
        leave_one_out=pd.DataFrame(loso, columns=list(LEAVE_ONE_OUT_COLUMNS)) if leave_one_out else None,
        sources=data.source_info,
        metadata={
            "name": name,
            "task": task,
            "dataset": data.dataset,
            "dataset_id": data.dataset_id,
            "simulated": data.simulated,
            "cell_lines": data.cell_lines,
            "folds": chosen_folds,
            "trials": trials,
            "seed": seed,
            "base_config": config.to_dict(),
            "attention_layers": attention_layers,
            "sources": [s.__dict__ for s in data.source_info],
            "rows": data.n_rows,
            "rows_without_any_embedding": int((~data.row_covered).sum()),
            "skipped": skipped,
        },
    )


def _predict(trained: Any, data: FusionData, rows: np.ndarray) -> np.ndarray:
    from embhub.fuse.train import predict

    return predict(trained, data, rows)


def _predict_fold(data: FusionData, test_rows: np.ndarray, fold: int, task: str, model_predict) -> dict[str, tuple]:
    """Per cell line: (test rows, predictions, covered mask); uncovered rows get the cell line's fallback."""
    covered = data.row_covered
    out = {}
    for line_index, line in enumerate(data.cell_lines):
        test = test_rows[data.row_cell_line[test_rows] == line_index]
        if not test.size:
            continue
        train = np.flatnonzero((data.row_cell_line == line_index) & (data.row_fold != fold))
        if task == "deg":
            train = train[data.deg_mask[train]]
        fallback = fallback_prediction(data, train, task)
        predictions = np.tile(fallback, (len(test), 1))
        test_covered = covered[test]
        if test_covered.any():
            predictions[test_covered] = model_predict(test[test_covered])
        out[line] = (test, predictions, test_covered)
    return out


def _check_leave_one_out(data: FusionData, folds: Sequence[int], task: str) -> None:
    """Refuse, before any training, an ablation model that could not be trained."""
    for name in data.source_names:
        reduced = data.without_source(name)
        for fold in folds:
            try:
                fold_rows(reduced, fold, task)
            except InputError as error:
                raise InputError(
                    f"--leave-one-out cannot retrain fold {fold} without store '{name}': {error}; "
                    "leave out --leave-one-out, or the stores that cover few perturbations"
                ) from None


def _retrain_without(reduced: FusionData, fold: int, task: str, config: FusionConfig, train_options: dict) -> dict:
    from embhub.fuse.train import train_fusion

    rows = fold_rows(reduced, fold, task)
    trained = train_fusion(reduced, rows.fit, rows.validation, config, task, label=f"fold {fold} leave-one-out", **train_options)
    predicted = _predict_fold(reduced, rows.test, fold, task, lambda r: _predict(trained, reduced, r))
    return {line: (test, predictions) for line, (test, predictions, _) in predicted.items()}


def _concat_rows(data: FusionData, fold: int, settings: ProtocolSettings) -> list[dict[str, Any]]:
    embedding = "concat[" + "+".join(data.source_names) + "]"
    if len(embedding) > MAX_NAME_LENGTH:
        embedding = fusion_name(data).replace("fusion[", "concat[", 1)
    rows = []
    for line, (test, predictions, covered, params) in concat_knn_predictions(data, fold, settings).items():
        rows += score_rows(
            data, "lfc", fold, test, predictions, covered, method="knn", embedding=embedding,
            store_path=";".join(i.path for i in data.source_info),
            store_id=";".join(i.store_id for i in data.source_info),
            params=params_json(params), cell_line=line,
        )
    return rows
