"""Speed of ``embhub evaluate``'s kNN protocol against the study's scikit-learn implementation.

Synthetic Essential-sized data (default: 2,050 perturbations × 6,640 genes, 5 folds) and random stores.
For one store × (cell line, fold) it times

- embhub: scaler/PCA per inner split, one sorted neighbour search per split, every k from the response
  Gram matrix, refit, test metrics (the fold's shared Gram and ranks reported separately: they are
  computed once per (cell line, fold) for all stores);
- the baseline: ``GridSearchCV(Pipeline([StandardScaler(), PCA(100, svd_solver="full"), KNeighborsRegressor()]),
  k ∈ {20..100}, KFold(5, shuffle=True, random_state=42), scoring −mean L2)`` plus the same metrics,

checks that both select the same k and give the same predictions (max |Δ|), prints the ratio, the time of
the six exact eigensolves a store × fold needs (five inner splits and the refit, each of size min(rows, d))
run alone on the same threads — a floor for any exact implementation of the protocol — and the
time of the study's Essential kNN sweep shape (33 stores × 4 cell lines × 5 folds): measured on one
(cell line, fold) with all 33 stores and multiplied by 20, or run in full with ``--full-sweep``.

embhub runs its inner splits (single store) or its stores (sweep) on ``--workers`` threads with one BLAS
thread each (:mod:`embhub.evaluate.parallel`); scikit-learn runs as the study ran it.

Run on 2 cores:  ``taskset -c 0,1 python benchmarks/bench_evaluate.py``
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from embhub.evaluate.eigen import top_eigenpairs
from embhub.evaluate.folds import FoldData
from embhub.evaluate.knn import CVProjections, knn_cv_predict
from embhub.evaluate.metrics import lfc_metrics
from embhub.evaluate.parallel import available_cores, one_blas_thread, parallel_map
from embhub.evaluate.projection import inner_kfold
from embhub.evaluate.protocol import K_GRID


def synthetic(n_perts: int, n_genes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_perts, 16))
    lfc = (np.tanh(latent @ rng.normal(size=(16, n_genes)) * 0.3) * 0.1 + rng.normal(scale=0.05, size=(n_perts, n_genes))).astype(np.float32)
    folds = rng.permutation(np.arange(n_perts) % 5)
    return latent, lfc, folds


def store_vectors(latent: np.ndarray, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (latent @ rng.normal(size=(latent.shape[1], dim)) + rng.normal(scale=2.0, size=(len(latent), dim))).astype(np.float32)


def embhub_store_fold(fold: FoldData, x: np.ndarray, folds: np.ndarray, k_grid=K_GRID, workers: int = 1, device=None):
    test = folds == fold.fold
    if device is not None:
        from embhub.evaluate.device_knn import fit_projections, knn_predict

        projections = fit_projections(x[~test], x[test], 100, 5, 42, device)
        fit = knn_predict(projections, fold.response_gram, np.arange(len(fold.train_ids)), fold.y_train, k_grid, device)
        if device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        return fit, fold.score(fit.predictions).summary()
    with one_blas_thread(workers):  # as embhub evaluate runs a fold's stores
        projections = CVProjections.fit(x[~test], x[test], 100, 5, 42, workers)
        fit = knn_cv_predict(projections, fold.response_gram, np.arange(len(fold.train_ids)), fold.y_train, k_grid, workers)
        return fit, fold.score(fit.predictions, workers).summary()


def eigensolve_floor(n_train: int, dim: int, workers: int) -> float:
    """Seconds for the top-100 eigenpairs of six random symmetric matrices of the sizes one store × fold
    solves (the refit first, as embhub queues it), best of 3, on ``workers`` threads."""
    sizes = [n_train] + [len(train) for train, _ in inner_kfold(n_train, 5, 42)]
    rng = np.random.default_rng(0)
    matrices = []
    for rows in sizes:
        a = rng.normal(size=(min(rows, dim), min(rows, dim) + 64))
        matrices.append(a @ a.T)
    best = np.inf
    with one_blas_thread(workers):
        for _ in range(3):
            start = time.perf_counter()
            parallel_map(lambda m: top_eigenpairs(m, min(100, len(m))), matrices, workers)
            best = min(best, time.perf_counter() - start)
    return best


def sklearn_store_fold(fold: FoldData, x: np.ndarray, folds: np.ndarray, k_grid=K_GRID):
    from sklearn.decomposition import PCA
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    def neg_l2(y, y_hat):
        return -np.mean(np.linalg.norm(y - y_hat, axis=1))

    test = folds == fold.fold
    n_train = int((~test).sum())
    n_components = min(100, x.shape[1], n_train - -(-n_train // 5))
    pipeline = Pipeline([("scaler", StandardScaler()), ("pca", PCA(n_components, svd_solver="full")), ("knn", KNeighborsRegressor())])
    search = GridSearchCV(pipeline, {"knn__n_neighbors": list(k_grid)}, cv=KFold(5, shuffle=True, random_state=42),
                          scoring=make_scorer(neg_l2))
    search.fit(x[~test].astype(np.float64), fold.y_train)
    predictions = search.predict(x[test].astype(np.float64))
    return search.best_params_["knn__n_neighbors"], predictions, lfc_metrics(fold.y_test, predictions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--perts", type=int, default=2050)
    parser.add_argument("--genes", type=int, default=6640)
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 1536])
    parser.add_argument("--stores", type=int, default=33)
    parser.add_argument("--sweep-dim", type=int, default=512, help="dimension of the 33 sweep stores")
    parser.add_argument("--full-sweep", action="store_true", help="run all 4 × 5 (cell line, fold) units instead of projecting")
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--deg", action="store_true", help="also time one DEG logistic fit (Essential size) on the picked device")
    parser.add_argument("--workers", type=int, default=available_cores(), help="embhub threads (default: available cores)")
    parser.add_argument("--device", default="cpu", help="cpu (NumPy path) or cuda (the torch path of embhub.evaluate.device_knn)")
    args = parser.parse_args()
    device = None
    if args.device != "cpu":
        from embhub.accel import pick_device

        device = pick_device(args.device)
    import scipy.stats  # noqa: F401  (warm the import so it is not timed as work)

    print(f"machine: {platform.processor() or platform.machine()}, {available_cores()} cores available, "
          f"data {args.perts} perturbations × {args.genes} genes; embhub on "
          f"{args.device if device is not None else f'{args.workers} threads'}, "
          "scikit-learn as the study ran it (GridSearchCV n_jobs=None, BLAS on every core)")
    latent, lfc, folds = synthetic(args.perts, args.genes)
    pert_ids = np.array([f"P{i}" for i in range(args.perts)])
    start = time.perf_counter()
    fold = FoldData.from_arrays("K-562", 0, pert_ids, folds, lfc)
    _ = fold.response_gram, fold.test_truth
    shared = time.perf_counter() - start
    print(f"shared per (cell line, fold): response Gram + centred test responses and ranks {shared:.3f} s (once for all stores)")
    for dim in args.dims:
        x = store_vectors(latent, dim, dim)
        embhub_store_fold(fold, x, folds, workers=args.workers, device=device)
        ours_time = np.inf
        for _ in range(3):
            start = time.perf_counter()
            fit, ours = embhub_store_fold(fold, x, folds, workers=args.workers, device=device)
            ours_time = min(ours_time, time.perf_counter() - start)
        line = f"d={dim:5d}: embhub {ours_time:.3f} s per store × fold, best of 3 (k={fit.k}, L2 {ours['L2']:.6f})"
        if device is None:
            floor = eigensolve_floor(int((folds != 0).sum()), dim, args.workers)
            line += f" | its six exact eigensolves alone {floor:.3f} s ({floor / ours_time:.0%})"
        if not args.skip_sklearn:
            start = time.perf_counter()
            k, predictions, theirs = sklearn_store_fold(fold, x, folds)
            sklearn_time = time.perf_counter() - start
            difference = float(np.abs(predictions - fit.predictions).max())
            same = k == fit.k and all(abs(ours[m] - theirs[m]) < 1e-6 for m in ours)
            line += (f" | sklearn GridSearchCV {sklearn_time:.2f} s (k={k}) | ratio {sklearn_time / ours_time:.1f}x"
                     f" | identical numbers: {same} (max |Δ prediction| {difference:.1e})")
        print(line, flush=True)

    if args.deg:
        time_logistic(int((folds != 0).sum()), args.genes)

    xs = [store_vectors(latent, args.sweep_dim, 1000 + i) for i in range(args.stores)]
    units = [(c, f) for c in range(4) for f in range(5)] if args.full_sweep else [(0, 0)]
    start = time.perf_counter()
    for cell, f in units:
        unit = FoldData.from_arrays(f"line{cell}", f, pert_ids, folds, lfc)
        _ = unit.response_gram, unit.test_truth
        if device is None:
            parallel_map(lambda x: embhub_store_fold(unit, x, folds), xs, args.workers)
        else:
            for x in xs:
                embhub_store_fold(unit, x, folds, device=device)
    elapsed = time.perf_counter() - start
    per_unit = elapsed / (len(units) * len(xs))
    print(f"sweep throughput: {per_unit:.3f} s per store × fold ({args.workers} stores at a time, d={args.sweep_dim}, "
          "including each (cell line, fold)'s shared response Gram)")
    if args.full_sweep:
        print(f"Essential kNN sweep shape ({args.stores} stores × 4 cell lines × 5 folds, d={args.sweep_dim}): {elapsed:.1f} s")
    else:
        print(f"Essential kNN sweep shape ({args.stores} stores × 4 cell lines × 5 folds, d={args.sweep_dim}): "
              f"{elapsed * 20:.1f} s projected from one (cell line, fold) measured in {elapsed:.1f} s")


def time_logistic(n_train: int, n_genes: int) -> None:
    """One DEG logistic fit, and the cost of one evaluation of the objective and its gradient against the study's
    closure (autograd through ``log_softmax`` over logits viewed ``(n, G, 3)``) on the same data and device.
    The number of evaluations per fit depends on C and on rounding, so the ratio is per evaluation."""
    import torch

    from embhub.accel import pick_device
    from embhub.evaluate import deg

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_train, 100))
    labels = np.where(rng.random((n_train, n_genes)) < 0.1, rng.choice([-1, 1], size=(n_train, n_genes)), 0)
    device = pick_device("auto")
    deg.fit_logistic(x[:64], labels[:64, :50], 1e3)
    evaluations = []
    counted = deg._Objective.__call__

    def counting(objective, parameters):
        evaluations.append(1)
        return counted(objective, parameters)

    deg._Objective.__call__ = counting
    try:
        start = time.perf_counter()
        deg.fit_logistic(x, labels, 1e3)
        synchronise = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        synchronise()
        fit_time = time.perf_counter() - start
    finally:
        deg._Objective.__call__ = counted

    features = torch.as_tensor(x, dtype=torch.float32, device=device)
    y = torch.as_tensor(labels + 1, device=device)
    layer = torch.nn.Linear(100, 3 * n_genes).to(device)
    counts = torch.stack([(y == k).sum(dim=0) for k in range(3)], dim=1).float()
    sample_weights = torch.gather(torch.where(counts > 0, n_train / (3 * counts.clamp(min=1)), 0.0).T, 0, y)

    def study_closure():
        layer.zero_grad()
        nll = -torch.log_softmax(layer(features).view(n_train, n_genes, 3), dim=2).gather(2, y.unsqueeze(2)).squeeze(2)
        loss = ((sample_weights * nll).sum(dim=0) / sample_weights.sum(dim=0)).mean() + (layer.weight**2).sum() / 1e3
        loss.backward()
        return loss

    study_closure()
    synchronise()
    start = time.perf_counter()
    for _ in range(3):
        study_closure()
    synchronise()
    study_time = (time.perf_counter() - start) / 3
    ours = fit_time / len(evaluations)
    print(f"DEG logistic ({n_train} × 100 → 3 × {n_genes}) on {device}: one L-BFGS fit {fit_time:.2f} s, {len(evaluations)} "
          f"evaluations, ≤ {ours:.3f} s each (with the optimiser's own steps) | the study's autograd closure {study_time:.3f} s "
          f"| ratio ≥ {study_time / ours:.1f}x (a C grid search is 21 fits per store × fold)")


if __name__ == "__main__":
    main()
