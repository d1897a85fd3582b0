"""The Optuna search is seeded, reproducible on the CPU, and never sees the outer test fold."""

import dataclasses
import json

import numpy as np

from embhub.fuse.run import run_fusion
from embhub.fuse.search import SEARCH_SPACE, search_fusion
from embhub.fuse.splits import fold_rows
from embhub.fuse.train import train_fusion

from tests.fuse.conftest import small_config


def without_timings(summary):
    trials = [{k: v for k, v in t.items() if k != "seconds_per_epoch"} for t in summary["trials"]]
    return json.dumps({**summary, "trials": trials}, sort_keys=True)


def test_search_never_reads_test_responses_and_repeats_exactly(screen_data):
    rows = fold_rows(screen_data, 4)
    poisoned_lfc = screen_data.lfc.copy()
    poisoned_lfc[rows.test] = np.nan
    poisoned = dataclasses.replace(screen_data, lfc=poisoned_lfc)
    config = small_config(max_epochs=2)
    first = search_fusion(poisoned, rows.fit, rows.validation, config, trials=3, seed=11, cpu_threads=1)
    second = search_fusion(poisoned, rows.fit, rows.validation, config, trials=3, seed=11, cpu_threads=1)
    values = [t["value"] for t in first.summary["trials"]]
    assert len(values) == 3 and np.isfinite(values).all()
    assert without_timings(first.summary) == without_timings(second.summary)
    best = first.summary["best_params"]
    assert first.trained.best_validation_loss == min(values)
    assert {k: getattr(first.trained.config, k) for k in best} == best
    assert first.summary["sampler"] == "TPESampler(seed=11)"


def test_the_first_trial_trains_the_base_configuration(screen_data):
    rows = fold_rows(screen_data, 0)
    config = small_config(max_epochs=2, n_heads=4, batch_size=50)
    outcome = search_fusion(screen_data, rows.fit, rows.validation, config, trials=2, cpu_threads=1)
    first = outcome.summary["trials"][0]
    assert first["params"] == {name: getattr(config, name) for name in SEARCH_SPACE}
    assert first["value"] == train_fusion(screen_data, rows.fit, rows.validation, config, cpu_threads=1).best_validation_loss


def test_run_saves_the_chosen_parameters_and_study_per_fold(screen_data):
    run = run_fusion(screen_data, folds=[1], trials=2, config=small_config(max_epochs=2), cpu_threads=1, concat_baseline=False)
    assert list(run.studies) == [1]
    chosen = run.folds[0]["config"]
    study = run.studies[1]
    assert {k: chosen[k] for k in study["best_params"]} == study["best_params"]
    params = json.loads(run.results[run.results.method == "fusion"].estimator_params.iloc[0])
    assert params["config"] == chosen and params["trials"] == 2


def test_a_search_goes_on_past_a_diverging_trial(screen_data, monkeypatch):
    """A trial whose training diverges (every validation loss NaN) fails on its own; the search keeps the others."""
    import embhub.fuse.search as search
    from embhub.fuse.train import train_fusion

    def diverging_first(data, fit, validation, config, task="lfc", **options):
        if config.lr == 1e-3:
            return train_fusion(data, fit, validation, config.updated(lr=1e30), task, **options)
        return train_fusion(data, fit, validation, config, task, **options)

    monkeypatch.setattr(search, "train_fusion", diverging_first)
    rows = fold_rows(screen_data, 0)
    outcome = search.search_fusion(screen_data, rows.fit, rows.validation, small_config(max_epochs=2, lr=1e-3), 2,
                                   cpu_threads=1)
    states = [trial["state"] for trial in outcome.summary["trials"]]
    assert states == ["FAIL", "COMPLETE"]
    assert "training diverged" in outcome.summary["trials"][0]["diverged"]
    assert outcome.summary["best_trial"] == 1 and np.isfinite(outcome.trained.best_validation_loss)


def test_a_search_whose_every_trial_diverges_is_one_error(screen_data):
    import pytest

    from embhub.errors import InputError

    rows = fold_rows(screen_data, 0)
    with pytest.raises(InputError, match="fold 0: training diverged in every one of the 1 trials; lower --lr"):
        search_fusion(screen_data, rows.fit, rows.validation, small_config(max_epochs=2, lr=1e30), 1, cpu_threads=1,
                      label="fold 0")
