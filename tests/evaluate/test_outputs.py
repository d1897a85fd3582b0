"""What ``embhub evaluate`` and ``embhub report`` write and print: output folders, damaged tables, the chosen
metric and subset, coverage beside the ranking, the DEG summary, the SIMULATED label, interrupts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import zarr

from embhub.errors import InputError
from embhub.evaluate import results as R
from embhub.evaluate import runner
from embhub.evaluate.report import SUMMARY_CSV
from tests.evaluate.conftest import build_store, informative_vectors
from tests.support.cli import assert_one_line_error, run_cli

FOLD = 0


def _evaluate(toy, out, *stores, extra=()):
    return run_cli("evaluate", "--dataset", toy.path, "--stores", *[s.path for s in stores], "--cell-line", "K-562",
                   "--fold", FOLD, "--no-plots", "--out", out, *extra)


def _never_computes(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("evaluate ran although the command should have stopped first")

    monkeypatch.setattr(runner, "evaluate", refuse)


def _row(method, embedding, metric, subset, fold, value, n_test=40, n_covered=40):
    return {"dataset": "syn", "dataset_id": "d0", "cell_line": "K-562", "fold": fold, "method": method,
            "embedding": embedding, "store_path": "", "store_id": "", "estimator_params": "{}", "metric": metric,
            "value": value, "n_test": n_test, "n_covered": n_covered, "subset": subset}


def _saved(directory, per_fold, simulated=False, subsets=("all", "common")):
    """A results directory from ``{(method, embedding, metric): [value per fold]}``, every subset alike."""
    rows = [_row(method, embedding, metric, subset, fold, value)
            for (method, embedding, metric), values in per_fold.items()
            for fold, value in enumerate(values) for subset in subsets]
    R.save_results(R.results_frame(rows), directory, {"dataset": "syn", "simulated": simulated})
    return directory


L2_AND_F1 = {
    ("knn", "good", "L2"): [2.0, 2.2, 2.1],
    ("baseline", R.CONTEXT_MEAN, "L2"): [3.0, 3.1, 3.2],
    ("ceiling", R.CEILING, "L2"): [1.0, 1.1, 1.2],
    ("logistic", "good", "F1"): [0.40, 0.45, 0.41],
    ("logistic", "poor", "F1"): [0.20, 0.22, 0.21],
    ("baseline", R.MOST_FREQUENT, "F1"): [0.30, 0.32, 0.31],
    ("ceiling", R.DEG_CEILING, "F1"): [0.70, 0.72, 0.71],
}


# A: --out, damaged tables and the device are checked before any computing, one line each


def test_an_out_that_is_a_file_or_cannot_be_written_is_refused_before_computing(tmp_path, toy, stores, monkeypatch):
    _never_computes(monkeypatch)
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert_one_line_error(_evaluate(toy, afile, stores["wide"]), f"--out {afile} is a file")
    assert_one_line_error(_evaluate(toy, afile / "sub", stores["wide"]), "cannot write to --out", "Not a directory")
    assert afile.read_text() == "mine"

    results = _saved(tmp_path / "res", L2_AND_F1)
    assert_one_line_error(run_cli("report", results, "--out", afile), f"--out {afile} is a file")
    assert_one_line_error(run_cli("report", results, "--out", afile / "sub"), "cannot write to --out")


def test_mps_without_mps_is_refused_before_computing(toy, stores, tmp_path, monkeypatch):
    import torch

    from embhub.accel import pick_device

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(InputError, match="'mps' requested but Apple's MPS backend is not available"):
        pick_device("mps")
    _never_computes(monkeypatch)
    outcome = _evaluate(toy, tmp_path / "out", stores["wide"], extra=("--device", "mps", "--deg"))
    assert_one_line_error(outcome, "device 'mps'", "--device cpu")
    assert not (tmp_path / "out").exists()


def test_damaged_results_tables_are_one_line_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "results.csv").write_text("a,b\n1,2\n")
    assert_one_line_error(run_cli("report", garbage), f"{garbage / 'results.csv'} is not an embhub results table",
                          "store_path", "re-run 'embhub evaluate'")

    truncated = _saved(tmp_path / "truncated", L2_AND_F1)
    parquet = truncated / R.RESULTS_PARQUET
    parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    assert_one_line_error(run_cli("report", truncated), f"{parquet} is damaged", "re-run 'embhub evaluate'")

    mistyped = _saved(tmp_path / "mistyped", L2_AND_F1)
    (mistyped / R.RESULTS_PARQUET).unlink()
    table = pd.read_csv(mistyped / R.RESULTS_CSV, dtype={"value": object})
    table.loc[3, "value"] = "n/a (crashed)"
    table.to_csv(mistyped / R.RESULTS_CSV, index=False)
    assert_one_line_error(run_cli("report", mistyped / R.RESULTS_CSV), f"{mistyped / R.RESULTS_CSV} is damaged")


# B: an existing output folder is replaced only when asked, and then only embhub's own files


def test_evaluate_into_earlier_results_needs_overwrite_which_removes_only_embhub_files(tmp_path, toy, stores):
    out = tmp_path / "run"
    assert _evaluate(toy, out, stores["wide"]).exit_code == 0
    (out / "f1_boxplot.png").write_bytes(b"a figure of an earlier --deg run")
    (out / "notes.txt").write_text("my notes")
    (out / "my_boxplot.png").write_bytes(b"my own figure")
    before = (out / R.RESULTS_CSV).read_bytes()

    refused = run_cli("evaluate", "--dataset", toy.path, "--stores", stores["narrow"].path, "--cell-line", "K-562",
                      "--fold", "1", "--no-plots", "--out", out)
    assert_one_line_error(refused, f"--out {out} already holds embhub results", "--overwrite")
    assert (out / R.RESULTS_CSV).read_bytes() == before and (out / "f1_boxplot.png").exists()

    again = run_cli("evaluate", "--dataset", toy.path, "--stores", stores["narrow"].path, "--cell-line", "K-562",
                    "--fold", "1", "--no-plots", "--out", out, "--overwrite")
    assert again.exit_code == 0, again.stderr
    frame = R.load_results(out)
    assert set(frame.fold) == {1} and "narrow" in set(frame.embedding) and "wide" not in set(frame.embedding)
    assert not (out / "f1_boxplot.png").exists()
    assert (out / "notes.txt").read_text() == "my notes" and (out / "my_boxplot.png").read_bytes() == b"my own figure"


def test_report_replaces_earlier_figures_and_needs_overwrite_for_another_runs_folder(tmp_path):
    results = _saved(tmp_path / "res", L2_AND_F1)
    (results / "pearson_boxplot.svg").write_text("<svg>from an earlier report</svg>")
    (results / "notes.txt").write_text("mine")
    table = (results / R.RESULTS_CSV).read_bytes()
    in_place = run_cli("report", results, "--metric", "L2")
    assert in_place.exit_code == 0, in_place.stderr
    assert not (results / "pearson_boxplot.svg").exists() and (results / "l2_boxplot.svg").exists()
    assert (results / R.RESULTS_CSV).read_bytes() == table and (results / "notes.txt").read_text() == "mine"

    other = tmp_path / "other"
    assert run_cli("report", results, "--metric", "F1", "--out", other).exit_code == 0
    assert (other / "f1_boxplot.svg").exists()
    assert_one_line_error(run_cli("report", results, "--metric", "L2", "--out", other), "already holds embhub results", "--overwrite")
    assert run_cli("report", results, "--metric", "L2", "--out", other, "--overwrite").exit_code == 0
    assert (other / "l2_boxplot.svg").exists() and not (other / "f1_boxplot.svg").exists()


# C: --metric and --subset choose what the written summary and plots hold


def test_report_metric_and_subset_shape_the_written_summary_and_plots(tmp_path):
    per_fold = {
        ("knn", "good", "L2"): [2.0, 2.2, 2.1],
        ("baseline", R.CONTEXT_MEAN, "L2"): [3.0, 3.1, 3.2],
        ("logistic", "good", "F1"): [0.40, 0.45, 0.41],
        ("baseline", R.MOST_FREQUENT, "F1"): [0.30, 0.32, 0.31],
    }
    rows = [_row(m, e, metric, "all", fold, value) for (m, e, metric), values in per_fold.items() for fold, value in enumerate(values)]
    common_f1 = {"good": [0.50, 0.58, 0.52], R.MOST_FREQUENT: [0.33, 0.35, 0.36]}
    method = {"good": "logistic", R.MOST_FREQUENT: "baseline"}
    rows += [_row(method[e], e, "F1", "common", fold, value, 10, 10) for e, values in common_f1.items() for fold, value in enumerate(values)]
    results = tmp_path / "res"
    R.save_results(R.results_frame(rows), results, {"dataset": "syn", "simulated": False})

    out = tmp_path / "f1-common"
    outcome = run_cli("report", results, "--metric", "f1", "--subset", "common", "--out", out)
    assert outcome.exit_code == 0, outcome.stderr
    assert "K-562: F1 over folds (common test perturbations)" in outcome.stdout and "L2 over folds" not in outcome.stdout
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.metric) == {"F1"} and set(summary.subset) == {"common"}
    medians = summary.set_index("embedding")["median"]
    for embedding, values in common_f1.items():
        assert medians[embedding] == pytest.approx(float(np.median(values)))
    assert summary.set_index("embedding").loc["good", "rank"] == 1
    written = {p.name for p in out.iterdir()}
    assert {"f1_boxplot_common.png", "f1_boxplot_common.svg", "f1_rank_plot_common.svg"} <= written
    assert not {"l2_boxplot.png", "rank_plot.png", "f1_boxplot.png"} & written

    assert_one_line_error(run_cli("report", results, "--metric", "R2"),
                          "unknown metric 'R2'", "L2, MSE, MAE, Pearson, Spearman, F1, recall, precision")
    assert_one_line_error(run_cli("report", results, "--metric", "pearson"), "no Pearson scores", "L2, F1")
    assert_one_line_error(run_cli("report", results, "--subset", "none"), "unknown subset 'none'", "all or common")
    assert_one_line_error(run_cli("report", results, "--metric", "L2", "--subset", "common"),
                          "common subset holds no L2 scores", "--subset all")


# D: coverage beside the ranking, and the ranking on the perturbations every store covers


def test_partial_coverage_is_shown_with_the_common_ranking(tmp_path, toy, stores):
    test_ids = toy.pert_ids[toy.folds["K-562"] == FOLD]
    train_ids = toy.pert_ids[toy.folds["K-562"] != FOLD]
    chosen = np.concatenate([test_ids[:4], train_ids[:30]])
    rows = np.searchsorted(toy.pert_ids, chosen)
    sparse = build_store(tmp_path / "sparse.zarr", chosen, informative_vectors(toy, 20, 4)[rows], "sparse")
    out = tmp_path / "run"
    outcome = _evaluate(toy, out, stores["wide"], sparse)
    assert outcome.exit_code == 0, outcome.stderr

    frame = R.load_results(out)
    l2 = frame[(frame.metric == "L2") & (frame.subset == "all") & (frame.embedding == "sparse")].iloc[0]
    assert l2.n_covered == 4 and l2.n_test == len(test_ids)
    summary = pd.read_csv(out / "summary.csv")
    row = summary[(summary.metric == "L2") & (summary.subset == "all") & (summary.embedding == "sparse")].iloc[0]
    assert row.coverage == pytest.approx(4 / len(test_ids))
    assert summary[(summary.subset == "all") & (summary.embedding == "wide")].coverage.eq(1.0).all()

    printed = outcome.stdout
    assert "coverage" in printed
    sparse_line = next(line for line in printed.splitlines() if "knn: sparse" in line)
    assert f"{4 / len(test_ids):.1%}" in sparse_line
    assert "K-562: L2 over folds (common test perturbations)" in printed
    common = frame[(frame.metric == "L2") & (frame.subset == "common")]
    assert set(common.n_test) == {4}
    common_summary = summary[(summary.metric == "L2") & (summary.subset == "common")].set_index("embedding")
    assert common_summary.loc["sparse", "median"] == pytest.approx(common[common.embedding == "sparse"].value.iloc[0])


def test_an_empty_common_subset_is_said_in_one_line(tmp_path, toy, stores):
    train_ids = toy.pert_ids[toy.folds["K-562"] != FOLD][:30]
    rows = np.searchsorted(toy.pert_ids, train_ids)
    elsewhere = build_store(tmp_path / "elsewhere.zarr", train_ids, informative_vectors(toy, 20, 5)[rows], "elsewhere")
    outcome = _evaluate(toy, tmp_path / "run", stores["wide"], elsewhere)
    assert outcome.exit_code == 0, outcome.stderr
    assert "K-562: no test perturbation is covered by every store, so there is no L2 ranking on the common subset" in outcome.stdout
    assert "(common test perturbations)" not in outcome.stdout


# E: the DEG summary comes with --deg; gap closed and ranks follow each metric's direction


def _one_c_value(toy):
    group = zarr.open_group(str(toy.path), mode="r+")
    manifest = dict(group.attrs["embhub_dataset"])
    group.attrs["embhub_dataset"] = {**manifest, "protocol": {"c_grid": [1000.0]}}


def test_a_deg_run_prints_and_writes_the_f1_summary(tmp_path, toy, stores):
    _one_c_value(toy)
    out = tmp_path / "deg"
    outcome = _evaluate(toy, out, stores["wide"], extra=("--deg",))
    assert outcome.exit_code == 0, outcome.stderr
    assert "K-562: F1 over folds (all test perturbations)" in outcome.stdout
    frame = R.load_results(out)
    f1 = frame[(frame.metric == "F1") & (frame.subset == "all")].set_index("embedding")["value"]
    summary = pd.read_csv(out / "summary.csv")
    f1_summary = summary[(summary.metric == "F1") & (summary.subset == "all")].set_index("embedding")
    assert f1_summary.loc["wide", "median"] == pytest.approx(f1["wide"])
    by_rank = f1_summary.dropna(subset=["rank"]).sort_values("rank")
    assert by_rank["median"].is_monotonic_decreasing
    layout = pd.read_csv(out / R.STUDY_LAYOUT_DEG_CSV)  # the columns of the study's essential_deg.csv
    assert list(layout.columns) == ["dataset", "fold", "metrics", "name", "f1_score", "recall", "precision", "primary_metric",
                                    "cell_line", "quantile", "simulated"]
    by_name = layout.set_index("name")
    assert {"wide", "no_change", "most_frequent", "random", "pca"} <= set(by_name.index)
    assert by_name.loc["wide", "f1_score"] == pytest.approx(f1["wide"]) and by_name.loc["wide", "fold"] == "K-562.0"
    recall = frame[(frame.metric == "recall") & (frame.subset == "all")].set_index("embedding")["value"]
    assert by_name.loc["most_frequent", "recall"] == pytest.approx(recall[R.MOST_FREQUENT])
    assert (layout.primary_metric == "f1_score").all() and layout["quantile"].isna().all()


def test_f1_gap_closed_and_ranks_run_the_right_way(tmp_path):
    results = _saved(tmp_path / "res", L2_AND_F1)
    outcome = run_cli("report", results, "--out", tmp_path / "out", "--no-plots")
    assert outcome.exit_code == 0, outcome.stderr
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    f1 = summary[(summary.metric == "F1") & (summary.subset == "all")].set_index("embedding")
    reference, ceiling, good = 0.31, 0.71, 0.41  # medians over the three folds
    assert f1.loc["good", "gap_closed"] == pytest.approx((good - reference) / (ceiling - reference))
    assert f1.loc["good", "rank"] == 1 and f1.loc["poor", "rank"] == 3 and f1.loc[R.MOST_FREQUENT, "rank"] == 2
    assert np.isnan(f1.loc[R.DEG_CEILING, "rank"])
    l2 = summary[(summary.metric == "L2") & (summary.subset == "all")].set_index("embedding")
    assert l2.loc["good", "gap_closed"] == pytest.approx((3.1 - 2.1) / (3.1 - 1.1))
    assert l2.loc["good", "rank"] == 1
    assert "K-562: F1 over folds (all test perturbations)" in outcome.stdout
    good_line = next(line for line in outcome.stdout.splitlines() if "logistic: good" in line)
    assert "0.25" in good_line


def test_gap_closed_is_a_dash_where_the_ceiling_is_worse_than_the_context_mean(tmp_path):
    results = _saved(tmp_path / "res", {
        ("knn", "good", "L2"): [7.0, 7.2, 7.1],
        ("baseline", R.CONTEXT_MEAN, "L2"): [7.5, 7.6, 7.7],
        ("ceiling", R.CEILING, "L2"): [8.2, 8.3, 8.4],
    })
    outcome = run_cli("report", results, "--no-plots")
    assert outcome.exit_code == 0, outcome.stderr
    summary = pd.read_csv(results / "summary.csv")
    assert summary.gap_closed.isna().all() and summary.ceiling_not_better.all()
    good_line = next(line for line in outcome.stdout.splitlines() if "knn: good" in line)
    assert "–*" in good_line
    assert "fraction of gap closed means nothing" in outcome.stdout


# F: one fold has no spread


def test_one_fold_shows_no_spread_instead_of_zero(tmp_path):
    results = _saved(tmp_path / "res", {("knn", "good", "L2"): [2.0], ("baseline", R.CONTEXT_MEAN, "L2"): [3.0]})
    outcome = run_cli("report", results, "--no-plots")
    assert outcome.exit_code == 0, outcome.stderr
    assert "2.0000 ± –" in outcome.stdout and "± 0.0000" not in outcome.stdout
    assert pd.read_csv(results / "summary.csv").sd.isna().all()


# G: Ctrl-C advice per command


def test_interrupted_evaluate_says_it_starts_again_and_wrote_nothing(tmp_path, toy, stores, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "evaluate", interrupted)
    outcome = _evaluate(toy, tmp_path / "out", stores["wide"])
    assert outcome.exit_code == 130
    assert "'embhub evaluate'" in outcome.stderr and "re-run it to start again" in outcome.stderr
    assert "resume" not in outcome.stderr.replace("nothing to resume from", "")
    assert not (tmp_path / "out").exists()


def test_interrupted_extract_still_says_resume(tmp_path, monkeypatch, isolated_home):
    import embhub.cli.extract as extract_cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(extract_cli, "extract", interrupted)
    items = tmp_path / "genes.txt"
    items.write_text("ENSG00000000001\nENSG00000000002\n")
    outcome = run_cli("extract", "--model", "random-gene-100", "--input", items, "--out", tmp_path / "s.zarr")
    assert outcome.exit_code == 130
    assert "re-run the same command to resume where it stopped" in outcome.stderr


# H: SIMULATED on every output


def test_simulated_results_are_labelled_in_report_tables_and_plots(tmp_path):
    results = _saved(tmp_path / "sim", L2_AND_F1, simulated=True)
    outcome = run_cli("report", results)
    assert outcome.exit_code == 0, outcome.stderr
    assert "SIMULATED dataset 'syn'" in outcome.stdout
    for name in (R.RESULTS_CSV, "summary.csv", R.STUDY_LAYOUT_CSV):
        assert pd.read_csv(results / name).simulated.all(), name
    assert pd.read_parquet(results / R.RESULTS_PARQUET).simulated.all()
    for figure in ("l2_boxplot.svg", "rank_plot.svg", "f1_boxplot.svg"):
        assert "SIMULATED data — " in (results / figure).read_text(), figure

    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / R.RESULTS_CSV).write_bytes((results / R.RESULTS_CSV).read_bytes())
    assert "SIMULATED dataset" in run_cli("report", alone, "--no-plots").stdout

    real = _saved(tmp_path / "real", L2_AND_F1, simulated=False)
    outcome = run_cli("report", real)
    assert outcome.exit_code == 0 and "SIMULATED" not in outcome.stdout
    assert not pd.read_csv(real / "summary.csv").simulated.any()
    assert "SIMULATED" not in (real / "l2_boxplot.svg").read_text()


def test_evaluate_labels_its_tables_simulated(tmp_path, toy, stores):
    out = tmp_path / "run"
    assert _evaluate(toy, out, stores["wide"]).exit_code == 0
    assert json.loads((out / R.RUN_METADATA).read_text())["simulated"] is True
    for name in (R.RESULTS_CSV, "summary.csv", R.STUDY_LAYOUT_CSV):
        assert pd.read_csv(out / name).simulated.all(), name


# I: store paths


def test_store_paths_missing_paths_and_an_empty_all(tmp_path, toy, stores, isolated_home, monkeypatch):
    missing = tmp_path / "nope" / "doesnotexist.zarr"
    outcome = run_cli("evaluate", "--dataset", toy.path, "--stores", missing, "--out", tmp_path / "o")
    assert_one_line_error(outcome, f"store path {missing} does not exist")
    assert "embhub extract --model" not in outcome.stderr
    outcome = run_cli("evaluate", "--dataset", toy.path, "--all", "--out", tmp_path / "o")
    assert_one_line_error(outcome, "--all found no complete gene store under", str(isolated_home / "stores"), "embhub extract")

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    relative = stores["wide"].path.relative_to(tmp_path)
    outcome = run_cli("evaluate", "--dataset", toy.path, "--stores", relative, "--cell-line", "K-562", "--fold", FOLD,
                      "--no-plots", "--out", "run")
    assert outcome.exit_code == 0, outcome.stderr
    recorded = set(R.load_results(out).query("embedding == 'wide'").store_path)
    assert recorded == {str(tmp_path / relative)}


def test_results_with_repeated_scores_or_no_rows_are_refused_not_summarised(tmp_path):
    doubled = _saved(tmp_path / "doubled", L2_AND_F1)
    (doubled / R.RESULTS_PARQUET).unlink()
    table = pd.read_csv(doubled / R.RESULTS_CSV)
    context_mean = table[(table.embedding == R.CONTEXT_MEAN) & (table.fold == 0)]
    pd.concat([table, context_mean]).to_csv(doubled / R.RESULTS_CSV, index=False)
    before = (doubled / SUMMARY_CSV).exists()
    assert_one_line_error(run_cli("report", doubled), f"{doubled / R.RESULTS_CSV} holds 4 rows that repeat a score",
                          f"baseline {R.CONTEXT_MEAN}, K-562 fold 0, L2", "evaluate the stores of several runs together")
    assert (doubled / SUMMARY_CSV).exists() == before

    empty = tmp_path / "empty"
    empty.mkdir()
    table.iloc[:0].to_csv(empty / R.RESULTS_CSV, index=False)
    assert_one_line_error(run_cli("report", empty), f"{empty / R.RESULTS_CSV} holds no results rows", "re-run 'embhub evaluate'")
    assert not (empty / SUMMARY_CSV).exists()


def test_a_hand_edited_results_csv_beside_its_parquet_is_not_ignored(tmp_path):
    """`report DIR` reads the parquet; a csv edited by hand would vanish without a word, so a difference is one
    line naming both tables, and either one can be chosen."""
    results = _saved(tmp_path / "res", L2_AND_F1)
    assert run_cli("report", results, "--no-plots").exit_code == 0  # the twins agree (csv digits round-trip)
    table = pd.read_csv(results / R.RESULTS_CSV)
    table.loc[table.index[0], "value"] += 0.5
    table.to_csv(results / R.RESULTS_CSV, index=False)
    assert_one_line_error(run_cli("report", results, "--no-plots"), f"{results} holds a results.csv that differs from its "
                          "results.parquet", f"embhub report {results / R.RESULTS_CSV}")
    for chosen in (R.RESULTS_CSV, R.RESULTS_PARQUET):
        assert run_cli("report", results / chosen, "--no-plots").exit_code == 0
    (results / R.RESULTS_CSV).write_text("not,a\nresults,table\n")
    assert_one_line_error(run_cli("report", results, "--no-plots"), "differs from its results.parquet")


def test_report_in_place_without_plots_keeps_the_figures_it_does_not_redraw(tmp_path):
    results = _saved(tmp_path / "res", L2_AND_F1)
    assert run_cli("report", results).exit_code == 0
    figures = sorted(p.name for p in results.iterdir() if p.suffix in (".png", ".svg"))
    assert figures
    assert run_cli("report", results, "--no-plots").exit_code == 0
    assert sorted(p.name for p in results.iterdir() if p.suffix in (".png", ".svg")) == figures
