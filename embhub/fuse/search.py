"""Hyperparameter search for one outer fold with Optuna (torch and optuna imported lazily by callers).

The study chose its final fusion values with 100 trials of a search it did not release
(benchmark-protocol-details.md §7); the search space here is ours and is recorded with the results. Every trial
trains on the fold's fit rows and is scored by its best validation loss, so the outer test fold is never
seen; trials that trail the median of earlier trials at the same epoch are pruned. The TPE sampler and each
trial's training are seeded, so a search on the CPU repeats exactly. Because every trial trains on the same
fit/validation split, the best trial's model *is* the fold's final model (the study also kept the best
validation checkpoint rather than refitting). The first trial is the base configuration itself, so a search
never ends worse on validation than training that configuration, however few its trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embhub.errors import InputError
from embhub.fuse.config import TRAINING_SEED, FusionConfig
from embhub.fuse.data import FusionData
from embhub.fuse.train import ProgressCallback, TrainedFusion, TrainingDiverged, train_fusion

SEARCH_SPACE = {
    "lr": "log-uniform [1e-5, 1e-2]",
    "n_layers": "int [1, 8]",
    "n_heads": "divisors of d_model among 1, 2, 4, 5, 8, 10, and the base value",
    "dropout": "uniform [0, 0.3]",
    "input_dropout": "uniform [0, 0.3]",
    "modal_drop": "uniform [0, 0.2]",
    "batch_size": "one of 32, 64, 128, and the base value",
    "head_layers": "int [0, 2] hidden layers of head_width",
    "gate": "False or True",
    "cell_line": "token or add",
}
PRUNER_STARTUP_TRIALS = 5
PRUNER_WARMUP_EPOCHS = 10


@dataclass
class SearchOutcome:
    trained: TrainedFusion
    summary: dict[str, Any]


def suggest_config(trial: Any, base: FusionConfig) -> FusionConfig:
    heads = sorted({h for h in (1, 2, 4, 5, 8, 10) if base.d_model % h == 0} | {base.n_heads})
    return base.updated(
        lr=trial.suggest_float("lr", 1e-5, 1e-2, log=True),
        n_layers=trial.suggest_int("n_layers", 1, 8),
        n_heads=trial.suggest_categorical("n_heads", heads),
        dropout=trial.suggest_float("dropout", 0.0, 0.3),
        input_dropout=trial.suggest_float("input_dropout", 0.0, 0.3),
        modal_drop=trial.suggest_float("modal_drop", 0.0, 0.2),
        batch_size=trial.suggest_categorical("batch_size", sorted({32, 64, 128, base.batch_size})),
        head_layers=trial.suggest_int("head_layers", 0, 2),
        gate=trial.suggest_categorical("gate", [False, True]),
        cell_line=trial.suggest_categorical("cell_line", ["token", "add"]),
    )


def base_params(base: FusionConfig) -> dict[str, Any]:
    """The base configuration's values of the searched parameters (Optuna accepts values outside a range)."""
    return {name: getattr(base, name) for name in SEARCH_SPACE}


def search_fusion(
    data: FusionData,
    fit_rows: np.ndarray,
    validation_rows: np.ndarray,
    base: FusionConfig,
    trials: int,
    task: str = "lfc",
    *,
    seed: int = TRAINING_SEED,
    device: str = "auto",
    precision: str = "auto",
    progress: ProgressCallback | None = None,
    label: str = "",
    cpu_threads: int | None = None,
) -> SearchOutcome:
    """Run ``trials`` seeded TPE trials on the validation rows; return the best trial's model and the study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS),
    )
    study.enqueue_trial(base_params(base))
    kept: dict[str, TrainedFusion] = {}

    def objective(trial: Any) -> float:
        config = suggest_config(trial, base)

        def report(epoch: int, loss: float) -> None:
            trial.report(loss, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            trained = train_fusion(
                data, fit_rows, validation_rows, config, task, seed=seed, device=device, precision=precision,
                progress=progress, epoch_hook=report, cpu_threads=cpu_threads, label=f"{label} trial {trial.number + 1}/{trials}".strip(),
            )
        except TrainingDiverged as diverged:
            trial.set_user_attr("diverged", str(diverged))
            return float("nan")
        trial.set_user_attr("best_epoch", trained.best_epoch)
        trial.set_user_attr("epochs_run", len(trained.history))
        trial.set_user_attr("seconds_per_epoch", trained.seconds_per_epoch)
        if "best" not in kept or trained.best_validation_loss < kept["best"].best_validation_loss:
            kept["best"] = trained
        return trained.best_validation_loss

    study.optimize(objective, n_trials=trials)
    if "best" not in kept:
        raise InputError(f"{label or 'fusion'}: training diverged in every one of the {trials} trials; lower --lr")
    return SearchOutcome(kept["best"], study_summary(study, base, seed))


def study_summary(study: Any, base: FusionConfig, seed: int) -> dict[str, Any]:
    """The study as plain JSON-ready data: sampler, space, best trial and every trial."""
    best = study.best_trial
    return {
        "sampler": f"TPESampler(seed={seed})",
        "pruner": f"MedianPruner(n_startup_trials={PRUNER_STARTUP_TRIALS}, n_warmup_steps={PRUNER_WARMUP_EPOCHS})",
        "objective": "best validation task loss (20% of training perturbation ids; never the test fold)",
        "search_space": SEARCH_SPACE,
        "fixed": {k: v for k, v in base.to_dict().items() if k not in SEARCH_SPACE},
        "n_trials": len(study.trials),
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": best.params,
        "trials": [
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                **t.user_attrs,
                "last_reported_epoch": max(t.intermediate_values, default=None),
            }
            for t in study.trials
        ],
    }
