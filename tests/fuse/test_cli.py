"""``embhub fuse`` end to end: rows join an ``embhub evaluate`` results table; ablations are written."""

import json

import pandas as pd
import pytest

from embhub.evaluate.results import load_results, save_results
from embhub.evaluate.runner import evaluate
from embhub.interchange import write_store

from tests.support.cli import run_cli


@pytest.fixture(scope="module")
def fuse_output(screen, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuse-out")
    knn = evaluate(screen.dataset, [screen.stores["store_a"]], estimators=("knn",), folds=[0], baselines=False)
    save_results(knn.results, out)
    paths = [str(screen.stores[name].path) for name in ("store_a", "store_b", "noise", "half")]
    result = run_cli(
        "fuse", "--dataset", str(screen.dataset.path), "--stores", *paths, "--trials", "0", "--fold", "0",
        "--max-epochs", "20", "--d-model", "32", "--n-heads", "2", "--n-layers", "2", "--lr", "5e-3",
        "--dropout", "0.05", "--input-dropout", "0.1", "--response-offset", "none",
        "--cpu-threads", "1", "--leave-one-out", "--out", str(out),
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    return out, result


def test_fusion_rows_join_the_evaluate_table(fuse_output):
    out, result = fuse_output
    table = load_results(out)
    assert set(table.method) == {"knn", "fusion", "baseline"}
    assert set(table[table.method == "baseline"].embedding) == {"context_mean"}  # scored even without baselines
    assert {"store_a", "fusion[store_a+store_b+noise+half]", "concat[store_a+store_b+noise+half]"} <= set(table.embedding)
    assert set(table.fold) == {0}
    assert "mean L2 over folds" in result.stdout and "noise" in result.stdout
    folder = out / "fusion" / "fusion_store_a+store_b+noise+half"
    params = json.loads((folder / "params.json").read_text())
    config = params["folds"][0]["config"]
    assert config["d_model"] == 32 and config["max_epochs"] == 20
    assert config["dropout"] == 0.05 and config["input_dropout"] == 0.1 and config["response_offset"] == "none"
    run = json.loads((folder / "run.json").read_text())
    assert [s["n_covered"] for s in run["sources"]] == [300, 300, 300, 150]
    assert (folder / "attention.png").stat().st_size > 0


def test_leave_one_store_out_finds_the_informative_stores(fuse_output):
    out, _ = fuse_output
    folder = out / "fusion" / "fusion_store_a+store_b+noise+half"
    table = pd.read_csv(folder / "leave_one_out.csv")
    delta = table.groupby("removed").delta_L2.mean()
    assert delta["store_a"] > 1.0 and delta["store_b"] > 1.0
    assert delta["noise"] < min(delta["store_a"], delta["store_b"]) / 3
    assert (folder / "leave_one_out.png").exists()


def test_a_store_of_another_entity_is_one_red_line(screen, tmp_path):
    import numpy as np

    drugs = write_store(
        tmp_path / "drugs.zarr", np.array(["AAAAAAAAAAAAAA-BBBBBBBBBB-N"]), iter([np.ones((1, 3), np.float32)]), 3,
        name="drugs", entity="drug", key_namespace="inchikey", source="test",
    )
    result = run_cli("fuse", "--dataset", str(screen.dataset.path), "--stores", str(drugs.path), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "drug" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "option,value,fragment",
    [
        ("--dropout", "1.5", "dropout 1.5 must be in [0, 1)"),
        ("--response-offset", "median", "response_offset 'median' is not one of"),
        ("--lr", "-1", "lr -1.0 must be above 0"),  # was torch's ValueError traceback after loading the stores
        ("--lr", "0", "lr 0.0 must be above 0"),  # trained nothing without a word
        ("--patience", "0", "patience 0 must be at least 1"),  # stopped after the first epoch without a word
        ("--d-model", "0", "d_model 0 must be at least 1"),  # ZeroDivisionError traceback
        ("--n-heads", "0", "n_heads 0 must be at least 1"),  # ZeroDivisionError traceback
        ("--cpu-threads", "-1", "--cpu-threads -1 must be at least 1"),  # torch's RuntimeError traceback
    ],
)
def test_bad_fusion_options_are_one_red_line(screen, tmp_path, option, value, fragment):
    result = run_cli("fuse", "--dataset", str(screen.dataset.path), "--stores", str(screen.stores["store_a"].path),
                     option, value, "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and fragment in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_store_given_twice_is_one_red_line(screen, tmp_path):
    """As in 'embhub evaluate': the same store twice would be two tokens of one source, merged in the attention
    table and both removed by one leave-one-out step."""
    path = str(screen.stores["store_a"].path)
    result = run_cli("fuse", "--dataset", str(screen.dataset.path), "--stores", path, path, "--trials", "0",
                     "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "store 'store_a' is given twice" in result.stderr and "give each store once" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_leave_one_out_with_one_store_says_it_was_skipped(screen, tmp_path):
    """With one store there is nothing to leave out: the run says so instead of writing an empty ablation."""
    result = run_cli(
        "fuse", "--dataset", str(screen.dataset.path), "--stores", str(screen.stores["store_a"].path),
        "--trials", "0", "--fold", "0", "--max-epochs", "2", "--d-model", "16", "--n-heads", "2", "--n-layers", "1",
        "--no-concat-baseline", "--cpu-threads", "1", "--leave-one-out", "--out", str(tmp_path),
    )
    assert result.exit_code == 0, result.stderr
    assert "skipped leave one out: needs at least two stores" in " ".join(result.stderr.split())
    folder = tmp_path / "fusion" / "fusion_store_a"
    assert not (folder / "leave_one_out.csv").exists()
    assert json.loads((folder / "run.json").read_text())["skipped"] == {"leave_one_out": "needs at least two stores"}


def test_fusion_rows_reach_the_summary_of_an_evaluate_output(screen, tmp_path):
    """docs/fuse.md: fusion rows sit next to the kNN rows 'in every summary and plot' of the evaluate output."""
    from embhub.evaluate.report import rerender

    knn = evaluate(screen.dataset, [screen.stores["store_a"]], estimators=("knn",), folds=[0], baselines=False)
    save_results(knn.results, tmp_path)
    rerender(tmp_path)
    assert not pd.read_csv(tmp_path / "summary.csv").embedding.str.startswith("fusion").any()
    result = run_cli(
        "fuse", "--dataset", str(screen.dataset.path), "--stores", str(screen.stores["store_a"].path),
        str(screen.stores["store_b"].path), "--trials", "0", "--fold", "0", "--max-epochs", "2", "--d-model", "16",
        "--n-heads", "2", "--n-layers", "1", "--no-concat-baseline", "--cpu-threads", "1", "--out", str(tmp_path),
    )
    assert result.exit_code == 0, result.stderr
    summary = pd.read_csv(tmp_path / "summary.csv")
    table = load_results(tmp_path)
    for line in ("line-A", "line-B"):
        fused = summary[(summary.embedding == "fusion[store_a+store_b]") & (summary.cell_line == line)
                        & (summary.metric == "L2") & (summary.subset == "all")]
        scored = table[(table.embedding == "fusion[store_a+store_b]") & (table.cell_line == line)
                       & (table.metric == "L2") & (table.subset == "all")]
        assert len(fused) == 1 and len(scored) == 1
        assert fused["mean"].iloc[0] == pytest.approx(scored["value"].iloc[0])


def test_runs_over_other_folds_add_to_the_output_and_a_rerun_replaces_its_own(screen, tmp_path):
    """Fusing fold 0, then fold 1, into one folder keeps both (the second run used to drop fold 0's rows); fusing
    fold 0 again replaces fold 0's rows and side-file entries instead of adding a second copy."""
    stores = [str(screen.stores[name].path) for name in ("store_a", "store_b")]

    def fuse(fold):
        result = run_cli(
            "fuse", "--dataset", str(screen.dataset.path), "--stores", *stores, "--trials", "0", "--fold", str(fold),
            "--max-epochs", "2", "--d-model", "16", "--n-heads", "2", "--n-layers", "1", "--cpu-threads", "1",
            "--leave-one-out", "--out", str(tmp_path),
        )
        assert result.exit_code == 0, result.stderr

    folder = tmp_path / "fusion" / "fusion_store_a+store_b"
    fuse(0)
    first = load_results(tmp_path)
    fuse(1)
    both = load_results(tmp_path)
    fusion = both[both.method == "fusion"]
    assert set(fusion.fold) == {0, 1}
    assert len(both) == 2 * len(first)
    assert set(both[both.embedding.str.startswith("concat[")].fold) == {0, 1}
    assert [record["fold"] for record in json.loads((folder / "params.json").read_text())["folds"]] == [0, 1]
    assert set(pd.read_csv(folder / "attention.csv").fold) == {0, 1}
    assert set(pd.read_csv(folder / "leave_one_out.csv").fold) == {0, 1}

    fuse(0)
    again = load_results(tmp_path)
    assert len(again) == len(both)
    keys = ["cell_line", "fold", "method", "embedding", "metric", "subset"]
    assert again[again.fold == 1].sort_values(keys).value.tolist() == both[both.fold == 1].sort_values(keys).value.tolist()
    attention = pd.read_csv(folder / "attention.csv")
    assert len(attention) == len(attention.drop_duplicates(["fold", "cell_line", "token"]))
    run = json.loads((folder / "run.json").read_text())
    assert run["folds"] == [0] and [r["folds"] for r in run["earlier_runs"]] == [[0], [1]]


def test_training_that_diverges_is_one_red_line(screen, tmp_path):
    """Every validation loss NaN or inf left no best epoch to restore: a TypeError traceback after training."""
    result = run_cli(
        "fuse", "--dataset", str(screen.dataset.path), "--stores", str(screen.stores["store_a"].path),
        str(screen.stores["store_b"].path), "--trials", "0", "--fold", "0", "--max-epochs", "2", "--d-model", "16",
        "--n-heads", "2", "--n-layers", "1", "--lr", "1e30", "--no-concat-baseline", "--cpu-threads", "1",
        "--out", str(tmp_path / "o"),
    )
    assert result.exit_code == 1, result.stdout
    assert "fold 0" in result.stderr and "diverged" in result.stderr and "lower --lr" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_leave_one_out_that_cannot_train_is_refused_before_any_training(screen, tmp_path):
    """Without its only full-coverage store, the ablation model had too few training perturbations: the run
    failed after training every fold, with a message naming neither the ablation nor the store."""
    import numpy as np

    from embhub.errors import InputError
    from embhub.fuse.data import load_fusion_data
    from embhub.fuse.run import run_fusion

    from tests.fuse.conftest import small_config

    few = write_store(
        tmp_path / "few.zarr", screen.pert_ids[:3], iter([np.eye(3, 4, dtype=np.float32)]), 4,
        name="few", entity="gene", key_namespace="ensembl_gene_id", source="test",
    )
    data = load_fusion_data(screen.dataset, [screen.stores["store_a"], few])
    epochs = []
    with pytest.raises(InputError, match=r"--leave-one-out cannot retrain fold 0 without store 'store_a': only \d training"):
        run_fusion(data, trials=0, folds=[0], config=small_config(max_epochs=1), leave_one_out=True,
                   concat_baseline=False, cpu_threads=1, progress=epochs.append)
    assert epochs == []
