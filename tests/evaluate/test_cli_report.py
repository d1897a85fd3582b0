"""`embhub evaluate` end to end through the CLI, then `embhub report` from the saved results."""

import ast
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from embhub.cli import app
from embhub.evaluate import results as R
from tests.evaluate.conftest import build_store, informative_vectors

runner = CliRunner()


def test_evaluate_writes_table_layout_plots_and_report_rerenders(tmp_path, toy, stores, isolated_home):
    model_dir = isolated_home / "stores" / "wide-model"
    model_dir.mkdir(parents=True)
    build_store(model_dir / "default-abc.zarr", toy.pert_ids, informative_vectors(toy, 150, 1), "wide-model")
    out = tmp_path / "run"
    result = runner.invoke(app, ["evaluate", "--dataset", str(toy.path), "--stores", "wide-model", str(stores["partial"].path),
                                 "--cell-line", "K-562", "--fold", "0", "--fold", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "K-562: L2 over folds" in result.output and "coverage" in result.output
    frame = R.load_results(out)
    assert set(frame.columns) == set(R.RESULT_COLUMNS)
    assert set(frame.embedding) >= {"wide-model", "partial", R.CONTEXT_MEAN, R.NO_CHANGE, R.RANDOM, R.IDEALIZED, R.CEILING}
    assert set(frame.subset) == {"all", "common"}
    keys = ["method", "embedding", "cell_line", "fold", "metric", "subset"]
    assert not frame.duplicated(keys).any()
    csv = R.load_results(out / "results.csv")
    pd.testing.assert_frame_equal(frame, csv, check_exact=False, rtol=1e-12)
    wide = frame[(frame.embedding == "wide-model") & (frame.metric == "L2")]
    assert (wide.store_id.str.len() == 16).all() and wide.store_path.str.endswith("default-abc.zarr").all()
    layout = pd.read_csv(out / "study_layout.csv")
    assert list(layout.columns) == ["dataset", "fold", "metrics", "name", "primary_metric", "L2", "MSE", "MAE", "Spearman",
                                    "Pearson", "cell_line", "simulated"]
    assert layout.simulated.all() and (layout.primary_metric == "L2").all()
    knn = layout[layout.name == "knn_baseline_wide-model"].iloc[0]
    scores = ast.literal_eval(knn.metrics)  # the CSV's columns keep 16 significant digits, the literal all 17
    assert scores.pop("primary_metric") == "L2"
    assert scores == pytest.approx({m: knn[m] for m in ("L2", "MSE", "MAE", "Spearman", "Pearson")}, rel=1e-14)
    ceiling = layout[layout.name == "Experimental error (quantile 0.9)"].iloc[0]
    assert ast.literal_eval(ceiling.metrics) == {"primary_metric": "L2", "L2": pytest.approx(ceiling.L2, rel=1e-14)}
    assert {"knn_baseline_wide-model", "context mean baseline", "no change baseline", "knn_baseline_random", "knn_baseline_pca",
            "Experimental error (quantile 0.9)"} <= set(layout.name)
    assert set(layout.fold) == {"K-562.0", "K-562.1"}
    cm = layout[(layout.name == "context mean baseline") & (layout.fold == "K-562.0")].L2.iloc[0]
    assert cm == frame[(frame.embedding == R.CONTEXT_MEAN) & (frame.fold == 0) & (frame.metric == "L2") & (frame.subset == "all")].value.iloc[0]
    coverage = pd.read_csv(out / "coverage.csv")
    assert coverage.set_index("embedding").loc["partial", "n_covered"] < 200
    metadata = json.loads((out / "run.json").read_text())
    assert metadata["protocol"]["k_grid"] == [20, 40, 60, 80, 100]
    for stem in ("l2_boxplot", "rank_plot"):
        for extension in ("png", "svg"):
            assert (out / f"{stem}.{extension}").stat().st_size > 1000

    summary = pd.read_csv(out / "summary.csv")
    k562 = summary[(summary.cell_line == "K-562") & (summary.metric == "L2") & (summary.subset == "all")].set_index("embedding")
    cm_median = k562.loc[R.CONTEXT_MEAN, "median"]
    ceiling_median = k562.loc[R.CEILING, "median"]
    model_median = k562.loc["wide-model", "median"]
    expected_gap = (cm_median - model_median) / (cm_median - ceiling_median)
    assert np.isclose(k562.loc["wide-model", "gap_closed"], expected_gap)
    assert k562.loc["wide-model", "rank"] < k562.loc[R.CONTEXT_MEAN, "rank"]
    assert k562.loc["wide-model", "rank"] < k562.loc[R.RANDOM, "rank"]
    assert np.isnan(k562.loc[R.IDEALIZED, "rank"])

    (out / "l2_boxplot.png").unlink()
    report = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "again")])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "again" / "l2_boxplot.svg").exists() and (tmp_path / "again" / "study_layout.csv").exists()
    assert "wide-model" in report.output


def test_report_refuses_a_directory_without_results(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "holds no results.parquet" in result.output
