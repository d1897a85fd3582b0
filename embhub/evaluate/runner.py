"""``evaluate``: every store × cell line × fold under the study's protocol, as one tidy results table.

For each (cell line, fold) the responses are split by the dataset's stored folds; each store is aligned
to the dataset (:mod:`~embhub.evaluate.coverage`), its covered training perturbations train the
estimators (kNN, Lasso; logistic on DEG labels) and its uncovered test perturbations are predicted by the
fallback (the context mean by default, as the study does). Baselines, the idealized control and the
experimental-error ceiling are scored on the same folds. Every score is given on all test perturbations
("all") and on those covered by every compared store ("common").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from embhub.errors import InputError, StoreError
from embhub.evaluate import results as R
from embhub.evaluate.baselines import idealized_embeddings, most_frequent_class, random_embeddings
from embhub.evaluate.coverage import AlignedStore, align_store, coverage_rows, refuse_stores_given_twice
from embhub.evaluate.device_knn import cuda_device, fit_projections, knn_predict
from embhub.evaluate.folds import FoldData, LineResponses
from embhub.evaluate.knn import CVProjections, knn_cv_predict
from embhub.evaluate.metrics import deg_scores
from embhub.evaluate.parallel import one_blas_thread, parallel_map, resolve_jobs
from embhub.evaluate.protocol import ProtocolSettings, settings_for

ESTIMATORS = ("knn", "lasso")
FALLBACKS = ("context_mean", "no_change")
MIN_TRAINING = 10
ProgressCallback = Callable[[int, int, str], None]


@dataclass
class Evaluation:
    results: pd.DataFrame
    coverage: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Unit:
    """One cell line to evaluate: its arrays read once, and the folds chosen."""

    name: str
    line: Any
    pert_ids: np.ndarray
    folds: np.ndarray
    deg_mask: np.ndarray | None
    chosen: list[int] = field(default_factory=list)


@dataclass
class _Context:
    dataset: Any
    dataset_id: str
    settings: ProtocolSettings
    estimators: tuple[str, ...]
    fallback: str
    device: str
    knn_device: Any = None
    """A CUDA torch device when the kNN protocol runs on the GPU (:mod:`embhub.evaluate.device_knn`), else None."""


def evaluate(
    dataset: Any,
    stores: Sequence[Any],
    *,
    cell_lines: Sequence[str] | None = None,
    folds: Sequence[int] | None = None,
    estimators: Sequence[str] = ("knn",),
    deg: bool = False,
    baselines: bool = True,
    fallback: str = "context_mean",
    settings: ProtocolSettings | None = None,
    jobs: int | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
) -> Evaluation:
    """Score ``stores`` (opened :class:`~embhub.store.EmbeddingStore`) on a :class:`PreparedDataset`.

    ``jobs``: threads (default: one per available core) over the stores and baselines of each fold, or
    over one store's inner splits when there are fewer of those than threads.
    """
    jobs = resolve_jobs(jobs)
    estimators = tuple(dict.fromkeys(estimators))
    for estimator in estimators:
        if estimator not in ESTIMATORS:
            raise InputError(f"unknown estimator '{estimator}'; choose from {', '.join(ESTIMATORS)}")
    if fallback not in FALLBACKS:
        raise InputError(f"unknown fallback '{fallback}'; choose from {', '.join(FALLBACKS)}")
    cell_lines = list(dict.fromkeys(cell_lines or dataset.cell_lines))
    folds = None if folds is None else list(dict.fromkeys(int(f) for f in folds))
    lines = {name: dataset.cell_line(name) for name in cell_lines}
    if deg:
        without = [name for name, line in lines.items() if not line.has_deg]
        if without:
            raise InputError(f"dataset '{dataset.name}' has no DEG labels for {', '.join(without)}; drop --deg or prepare them")
    settings = settings or settings_for(dataset.name, dataset.manifest)
    context = _Context(dataset, R.manifest_id(dataset.manifest), settings, estimators, fallback, device, cuda_device(device))

    units = [_Unit(name, line, line.pert_ids, line.folds, line.deg_mask if deg else None) for name, line in lines.items()]
    all_ids = sorted({pid for unit in units for pid in unit.pert_ids})
    aligned = [align_store(store, dataset, all_ids) for store in stores]
    _name_apart(aligned)

    rows: list[dict[str, Any]] = []
    coverage: list[dict[str, Any]] = []
    for unit in units:
        available = sorted(int(f) for f in set(unit.folds.tolist()) if f >= 0)
        unit.chosen = available if folds is None else list(folds)
        for fold in unit.chosen:
            if fold not in available:
                raise InputError(
                    f"cell line '{unit.name}' of dataset '{dataset.name}' has no fold {fold} (folds: {', '.join(map(str, available))})"
                )
        coverage.extend(coverage_rows(a, unit.name, unit.pert_ids) for a in aligned)
    _check_training_coverage(units, aligned)
    total = sum(len(unit.chosen) for unit in units)
    done = 0
    for unit in units:
        name, line, pert_ids, line_folds, deg_mask = unit.name, unit.line, unit.pert_ids, unit.folds, unit.deg_mask
        lfc = line.lfc
        ceiling = line.ceiling_l2(settings.ceiling_quantile) if line.has_ceiling else None
        deg_labels = line.deg if deg else None
        deg_ceiling = _deg_ceiling(line, settings.deg_ceiling_quantile) if deg else None
        shared = LineResponses(lfc)
        for fold in unit.chosen:
            fold_data = FoldData.from_arrays(name, fold, pert_ids, line_folds, lfc, deg_labels, deg_mask, ceiling, shared)
            rows.extend(_evaluate_fold(context, fold_data, aligned, baselines, jobs))
            if deg:
                ceiling_scores = None if deg_ceiling is None else {m: v[fold] for m, v in deg_ceiling.items()}
                rows.extend(_evaluate_fold_deg(context, fold_data, aligned, baselines, ceiling_scores))
            done += 1
            if progress:
                progress(done, total, f"{name} fold {fold}")
    metadata = {
        "dataset": dataset.name,
        "dataset_path": str(dataset.path),
        "dataset_id": context.dataset_id,
        "simulated": dataset.simulated,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cell_lines": cell_lines,
        "folds": folds,
        "estimators": list(estimators),
        "deg": deg,
        "fallback": fallback,
        "knn_device": str(context.knn_device or "cpu"),
        "protocol": settings.as_dict(),
        "stores": [{"name": a.name, "path": a.path, "store_id": a.store_id, "dim": a.dim, "unmapped_ids": a.unmapped,
                    "superseded_ids": {dropped: kept for dropped, kept in a.superseded}} for a in aligned],
        "deviations": [
            "PCA is exact (svd 'full'-equivalent), not the study's unseeded 'auto' solver",
            f"random embeddings are seeded ({settings.random_seed}, cell line, fold)",
            "PCA components = min(q, dim, smallest inner training split)",
        ],
    }
    return Evaluation(R.results_frame(rows), pd.DataFrame(coverage), metadata)


def _name_apart(aligned: list[AlignedStore]) -> None:
    """Refuse a store given twice; stores that share a name, or take a baseline's, get their id appended."""
    refuse_stores_given_twice(aligned)
    names = [a.name for a in aligned]
    for a in aligned:
        if names.count(a.name) > 1 or a.name in R.BASELINE_EMBEDDINGS:
            a.name = f"{a.name}@{a.store_id[:8]}"


def _check_training_coverage(units: list[_Unit], aligned: list[AlignedStore]) -> None:
    """Before any fitting: every store must cover enough training perturbations of every evaluated fold
    (DEG-labelled ones too when the unit carries DEG labels)."""
    for unit in units:
        for a in aligned:
            covered = a.covers(unit.pert_ids)
            for fold in unit.chosen:
                train = unit.folds != fold
                counts = [("", int((covered & train).sum()))]
                if unit.deg_mask is not None:
                    counts.append(("DEG-labelled ", int((covered & train & unit.deg_mask).sum())))
                for kind, count in counts:
                    if count < MIN_TRAINING:
                        raise StoreError(
                            f"store '{a.name}' covers only {count} {kind}training perturbations of {unit.name} fold {fold}; "
                            f"at least {MIN_TRAINING} are needed: leave the store out or choose other folds or cell lines"
                        )


def _row(context: _Context, fold: FoldData, method: str, embedding: str, metric: str, value: float,
         n_test: int, n_covered: int, subset: str, params: dict[str, Any] | None = None,
         aligned: AlignedStore | None = None) -> dict[str, Any]:
    return {
        "dataset": context.dataset.name,
        "dataset_id": context.dataset_id,
        "cell_line": fold.cell_line,
        "fold": fold.fold,
        "method": method,
        "embedding": embedding,
        "store_path": aligned.path if aligned else "",
        "store_id": aligned.store_id if aligned else "",
        "estimator_params": json.dumps(params or {}, sort_keys=True),
        "metric": metric,
        "value": value,
        "n_test": n_test,
        "n_covered": n_covered,
        "subset": subset,
    }


def _scored_rows(context, fold, method, embedding, predictions, covered, common, params, aligned=None, workers: int = 1):
    rows = []
    scores = fold.score(predictions, workers)
    for subset, mask in (("all", np.ones(len(fold.test_ids), bool)), ("common", common)):
        if not mask.any():
            continue
        n_covered = int((covered & mask).sum())
        for metric, value in scores.summary(mask).items():
            rows.append(_row(context, fold, method, embedding, metric, value, int(mask.sum()), n_covered, subset, params, aligned))
    return rows


def _evaluate_fold(context: _Context, fold: FoldData, aligned: list[AlignedStore], baselines: bool, jobs: int) -> list[dict]:
    settings = context.settings
    common = np.ones(len(fold.test_ids), bool)
    for a in aligned:
        common &= a.covers(fold.test_ids)
    everything = np.ones(len(fold.test_ids), bool)
    _ = fold.response_gram, fold.test_truth, fold.context_mean  # computed once (BLAS on every core), then shared
    # the idealized control's eigensolve too: beside the stores' kNN on a 2-core machine it ran twice as slowly
    ideal = _idealized_embeddings(context, fold) if baselines else None
    rows: list[dict] = []
    tasks: list[Callable[[int], list[dict]]] = []
    mean = np.broadcast_to(fold.context_mean, fold.y_test.shape)
    rows += _scored_rows(context, fold, "baseline", R.CONTEXT_MEAN, mean, everything, common, {}, workers=jobs)
    if baselines:
        zeros = np.zeros_like(fold.y_test)
        rows += _scored_rows(context, fold, "baseline", R.NO_CHANGE, zeros, everything, common, {}, workers=jobs)
        tasks.append(lambda workers: _random_rows(context, fold, everything, common, workers))
        tasks.append(lambda workers: _idealized_rows(context, fold, ideal, everything, common, workers))
    if fold.ceiling_test is not None:
        for subset, mask in (("all", everything), ("common", common)):
            if mask.any():
                value = float(np.mean(fold.ceiling_test[mask]))
                rows.append(_row(context, fold, "ceiling", R.CEILING, "L2", value, int(mask.sum()), int(mask.sum()), subset,
                                 {"quantile": settings.ceiling_quantile}))

    def one_store(a: AlignedStore, workers: int) -> list[dict]:
        covered_train, x_train = a.rows(fold.train_ids)
        covered_test, x_test = a.rows(fold.test_ids)
        if x_test.shape[0] == 0:
            x_test = np.zeros((0, a.dim))
        return _estimator_rows(context, fold, a.name, x_train, x_test, np.flatnonzero(covered_train), covered_test, common,
                               settings.pca_components, {"dim": a.dim}, aligned=a, workers=workers)

    store_tasks = [lambda workers, a=a: one_store(a, workers) for a in aligned]
    with one_blas_thread(jobs):
        if len(store_tasks) >= jobs:
            batches = [(tasks + store_tasks, 1)]
        else:  # fewer stores than workers: the controls side by side first, then each store's splits on several
            batches = [(tasks, 1), (store_tasks, jobs // max(1, len(store_tasks)))]
        for batch, inner in batches:
            for task_rows in parallel_map(lambda task: task(inner), batch, jobs):
                rows += task_rows
    return rows


def _random_rows(context: _Context, fold: FoldData, everything: np.ndarray, common: np.ndarray, workers: int) -> list[dict]:
    settings = context.settings
    dim = settings.pca_components
    x_train, x_test = random_embeddings(len(fold.train_ids), len(fold.test_ids), dim, settings.random_seed, fold.cell_line, fold.fold)
    return _estimator_rows(context, fold, R.RANDOM, x_train, x_test, np.arange(len(fold.train_ids)), everything, common,
                           settings.pca_components, {"seed": settings.random_seed, "dim": dim}, workers=workers)


def _idealized_embeddings(context: _Context, fold: FoldData) -> tuple[np.ndarray, np.ndarray]:
    n_ideal = min(context.settings.pca_components, len(fold.train_ids) + len(fold.test_ids), fold.y_train.shape[1])
    return fold.idealized_embeddings(n_ideal)


def _idealized_rows(context: _Context, fold: FoldData, embeddings: tuple[np.ndarray, np.ndarray], everything: np.ndarray,
                    common: np.ndarray, workers: int) -> list[dict]:
    x_train, x_test = embeddings
    return _estimator_rows(context, fold, R.IDEALIZED, x_train, x_test, np.arange(len(fold.train_ids)), everything, common,
                           None, {"pca_of_responses": x_train.shape[1], "leaks_test_labels": True}, workers=workers)


def _estimator_rows(context, fold, embedding, x_train, x_test, train_rows, covered_test, common, n_components, params,
                    aligned=None, workers: int = 1):
    settings = context.settings
    if context.knn_device is not None and n_components is not None:
        projections = fit_projections(x_train, x_test, n_components, settings.inner_folds, settings.inner_seed, context.knn_device)
    else:
        projections = CVProjections.fit(x_train, x_test, n_components, settings.inner_folds, settings.inner_seed, workers)
    fallback = fold.context_mean if context.fallback == "context_mean" else np.zeros(fold.y_train.shape[1])
    rows = []
    for estimator in context.estimators:
        if estimator == "knn":
            if context.knn_device is not None:
                fit = knn_predict(projections, fold.response_gram, train_rows, fold.y_train, settings.k_grid, context.knn_device)
            else:
                fit = knn_cv_predict(projections, fold.response_gram, train_rows, fold.y_train, settings.k_grid, workers)
            chosen = {"k": fit.k, "cv_l2": {str(k): v for k, v in fit.cv_l2.items()}}
        else:
            from embhub.evaluate.lasso import lasso_cv_predict

            fit = lasso_cv_predict(projections, train_rows, fold.y_train, settings.alpha_grid)
            chosen = {"alpha": fit.alpha, "cv_l2": {str(k): v for k, v in fit.cv_l2.items()}}
        predictions = np.empty_like(fold.y_test)
        predictions[:] = fallback
        predictions[covered_test] = fit.predictions
        full_params = {**params, **chosen, "pca_components": projections.n_components, "n_train": int(len(train_rows)),
                       "fallback": context.fallback, "n_fallback": int((~covered_test).sum())}
        rows += _scored_rows(context, fold, estimator, embedding, predictions, covered_test, common, full_params, aligned, workers)
    return rows


def _deg_ceiling(line: Any, quantile: float) -> dict[str, np.ndarray] | None:
    """The DEG ceiling's F1, recall and precision per fold ``(n_folds,)`` at ``quantile``, or None."""
    if not line.has_deg_ceiling:
        return None
    return {metric: line.deg_ceiling(quantile, metric.lower()) for metric in R.DEG_METRICS}


def _evaluate_fold_deg(context: _Context, fold: FoldData, aligned: list[AlignedStore], baselines: bool,
                       ceiling: dict[str, float] | None = None) -> list[dict]:
    """``ceiling``: the fold's DEG ceiling scores (computed over all its labelled test perturbations, so it
    is given on the "common" subset only when every store covers them all)."""
    from embhub.evaluate.deg import logistic_cv_predict

    settings = context.settings
    train_mask, test_mask = fold.deg_train_mask, fold.deg_test_mask
    train_ids, test_ids = fold.train_ids[train_mask], fold.test_ids[test_mask]
    labels_train, labels_test = fold.deg_train[train_mask], fold.deg_test[test_mask]
    if len(test_ids) == 0:
        return []
    common = np.ones(len(test_ids), bool)
    for a in aligned:
        common &= a.covers(test_ids)
    everything = np.ones(len(test_ids), bool)
    prior = most_frequent_class(labels_train)

    def scored(method, embedding, predictions, covered, params, a=None):
        rows = []
        for subset, mask in (("all", everything), ("common", common)):
            if not mask.any():
                continue
            for metric, value in deg_scores(labels_test[mask], predictions[mask]).items():
                rows.append(_row(context, fold, method, embedding, metric, value, int(mask.sum()), int((covered & mask).sum()),
                                 subset, params, a))
        return rows

    rows: list[dict] = []
    if ceiling is not None and all(np.isfinite(v) for v in ceiling.values()):
        for subset in ("all", "common") if common.all() else ("all",):
            for metric, value in ceiling.items():
                rows.append(_row(context, fold, "ceiling", R.DEG_CEILING, metric, float(value), len(test_ids), len(test_ids),
                                 subset, {"quantile": context.settings.deg_ceiling_quantile}))
    rows += scored("baseline", R.MOST_FREQUENT, np.broadcast_to(prior, labels_test.shape), everything, {})
    if baselines:
        rows += scored("baseline", R.NO_CHANGE, np.zeros_like(labels_test), everything, {})
        dim = settings.pca_components
        x_train, x_test = random_embeddings(len(train_ids), len(test_ids), dim, settings.random_seed, fold.cell_line, fold.fold)
        fit = logistic_cv_predict(x_train, labels_train, x_test, settings.c_grid, dim, settings.inner_folds, context.device)
        rows += scored("logistic", R.RANDOM, fit.predictions, everything, {"C": fit.c, "pca_components": fit.n_components})
        n_ideal = min(dim, len(train_ids) + len(test_ids), labels_train.shape[1])
        x_train, x_test = idealized_embeddings(labels_train.astype(np.float64), labels_test.astype(np.float64), n_ideal)
        fit = logistic_cv_predict(x_train, labels_train, x_test, settings.c_grid, None, settings.inner_folds, context.device)
        rows += scored("logistic", R.IDEALIZED, fit.predictions, everything, {"C": fit.c, "pca_of_labels": n_ideal})
    for a in aligned:
        covered_train, x_train = a.rows(train_ids)
        covered_test, x_test = a.rows(test_ids)
        predictions = np.broadcast_to(prior, labels_test.shape).copy()
        params: dict[str, Any] = {"dim": a.dim, "fallback": "most_frequent", "n_fallback": int((~covered_test).sum())}
        if covered_test.any():
            fit = logistic_cv_predict(x_train, labels_train[covered_train], x_test, settings.c_grid, settings.pca_components,
                                      settings.inner_folds, context.device)
            predictions[covered_test] = fit.predictions
            params.update({"C": fit.c, "cv_f1": {str(c): v for c, v in fit.cv_f1.items()}, "pca_components": fit.n_components})
        rows += scored("logistic", a.name, predictions, covered_test, params, a)
    return rows
