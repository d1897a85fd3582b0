"""What ``embhub fuse`` writes into ``--out``: nothing lost, nothing mixed, bad directories refused before training."""

import json

import pandas as pd

from embhub.evaluate.results import RESULTS_PARQUET, load_results, results_simulated, save_results
from embhub.evaluate.runner import evaluate
from embhub.fuse.data import load_fusion_data

from tests.support.cli import run_cli

TINY = ("--trials", "0", "--max-epochs", "1", "--d-model", "16", "--n-heads", "2", "--n-layers", "1",
        "--no-concat-baseline", "--cpu-threads", "1", "--device", "cpu")


def fuse(screen, out, *extra):
    stores = [str(screen.stores[name].path) for name in ("store_a", "store_b")]
    return run_cli("fuse", "--dataset", str(screen.dataset.path), "--stores", *stores, *TINY, *extra, "--out", str(out))


def test_an_out_that_is_a_file_is_one_red_line(screen, tmp_path):
    target = tmp_path / "results"
    target.write_text("my notes")
    result = fuse(screen, target, "--fold", "0")
    assert result.exit_code == 1
    assert f"--out {target} is a file" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert target.read_text() == "my notes"


def test_fusion_rows_of_a_simulated_dataset_are_marked_simulated(screen, tmp_path):
    assert screen.dataset.simulated
    result = fuse(screen, tmp_path, "--fold", "0")
    assert result.exit_code == 0, result.stderr
    assert pd.read_parquet(tmp_path / RESULTS_PARQUET)["simulated"].all()
    assert results_simulated(tmp_path)


def test_a_deg_run_keeps_the_lfc_fusion_run_of_the_same_stores(screen, tmp_path):
    """evaluate --deg keeps LFC and DEG rows in one table; a DEG fusion run into the LFC run's --out used to
    replace its fusion rows (same dataset, method, embedding, cell line and fold) and its side files."""
    assert fuse(screen, tmp_path, "--fold", "0").exit_code == 0
    lfc = load_results(tmp_path)
    folder = tmp_path / "fusion" / "fusion_store_a+store_b"
    lfc_params = json.loads((folder / "params.json").read_text())
    result = fuse(screen, tmp_path, "--fold", "0", "--task", "deg")
    assert result.exit_code == 0, result.stderr
    both = load_results(tmp_path)
    fusion = both[both.method == "fusion"]
    assert set(fusion.metric) == {"L2", "MSE", "MAE", "Pearson", "Spearman", "F1", "recall", "precision"}
    kept = fusion[fusion.metric == "L2"].sort_values(["cell_line", "subset"]).value.tolist()
    assert kept == lfc[lfc.metric == "L2"].sort_values(["cell_line", "subset"]).value.tolist()
    assert json.loads((folder / "params.json").read_text()) == lfc_params
    deg_run = json.loads((tmp_path / "fusion" / "fusion_store_a+store_b-deg" / "run.json").read_text())
    assert deg_run["task"] == "deg" and "earlier_runs" not in deg_run


def test_an_out_holding_another_version_of_the_dataset_is_one_red_line(screen, tmp_path):
    """Fusion rows next to kNN rows of a differently prepared dataset of the same name would be compared over
    other responses and folds."""
    knn = evaluate(screen.dataset, [screen.stores["store_a"]], estimators=("knn",), folds=[0], baselines=False)
    save_results(knn.results.assign(dataset_id="0123456789abcdef"), tmp_path)
    before = (tmp_path / RESULTS_PARQUET).read_bytes()
    result = fuse(screen, tmp_path, "--fold", "0")
    assert result.exit_code == 1
    assert "0123456789abcdef" in result.stderr and "another --out" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / RESULTS_PARQUET).read_bytes() == before


def test_a_fold_given_twice_is_fused_once(screen, tmp_path):
    """It was trained twice and its rows written twice, so 'embhub report' refused the table."""
    result = fuse(screen, tmp_path, "--fold", "0", "--fold", "0")
    assert result.exit_code == 0, result.stderr
    table = load_results(tmp_path)
    assert len(table) == len(table.drop_duplicates(["cell_line", "fold", "method", "embedding", "metric", "subset"]))
    assert [record["fold"] for record in json.loads((tmp_path / "fusion" / "fusion_store_a+store_b" / "params.json")
                                                     .read_text())["folds"]] == [0]
    assert run_cli("report", str(tmp_path), "--no-plots").exit_code == 0


def test_a_cell_line_given_twice_is_used_once(screen):
    once = load_fusion_data(screen.dataset, [screen.stores["store_a"]], cell_lines=["line-A"])
    twice = load_fusion_data(screen.dataset, [screen.stores["store_a"]], cell_lines=["line-A", "line-A"])
    assert twice.cell_lines == ["line-A"] and twice.n_rows == once.n_rows


def test_a_rerun_of_a_fold_drops_that_folds_ablation_and_study_of_the_model_it_replaced(screen, tmp_path):
    """The second run's fold 0 has no search and no ablation: the first run's fold 0 study and leave-one-out rows
    described a model whose results rows were just replaced (their L2_all_sources no longer in the table)."""
    folder = tmp_path / "fusion" / "fusion_store_a+store_b"
    assert fuse(screen, tmp_path, "--fold", "1", "--leave-one-out", "--trials", "1").exit_code == 0
    assert fuse(screen, tmp_path, "--fold", "0", "--leave-one-out", "--trials", "1").exit_code == 0
    assert set(pd.read_csv(folder / "leave_one_out.csv").fold) == {0, 1}
    assert set(json.loads((folder / "optuna.json").read_text())) == {"0", "1"}
    assert fuse(screen, tmp_path, "--fold", "0").exit_code == 0
    assert set(pd.read_csv(folder / "leave_one_out.csv").fold) == {1}
    assert set(json.loads((folder / "optuna.json").read_text())) == {"1"}
    assert fuse(screen, tmp_path, "--fold", "1").exit_code == 0
    assert not (folder / "leave_one_out.csv").exists() and not (folder / "leave_one_out.png").exists()
    assert not (folder / "optuna.json").exists()
