"""Bad inputs are refused with one clear line naming the offending item."""

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from embhub.cli import app
from embhub.datasets.prepared import PreparedDataset
from embhub.errors import InputError, StoreError
from embhub.evaluate.runner import evaluate
from tests.evaluate.conftest import build_store, gene_ids, informative_vectors

runner = CliRunner()


def _one_line_error(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_store_without_overlap(tmp_path, toy):
    store = build_store(tmp_path / "other.zarr", gene_ids(50, offset=10**7), np.ones((50, 8)) * np.arange(8), "other")
    with pytest.raises(StoreError, match="covers none of the 200 perturbations of dataset 'toy'"):
        evaluate(PreparedDataset.open(toy.path), [store])
    line = _one_line_error(["evaluate", "--dataset", str(toy.path), "--stores", str(store.path), "--no-plots", "--out", str(tmp_path / "o")])
    assert "'other'" in line and "covers none" in line


def test_nan_and_inf_vectors(tmp_path, toy):
    store = build_store(tmp_path / "nan.zarr", toy.pert_ids, informative_vectors(toy, 20, 1), "nanny")
    group = zarr.open_group(str(tmp_path / "nan.zarr"), mode="r+")
    vectors = group["vectors"][:]
    vectors[7, 3] = np.nan
    vectors[9, 0] = np.inf
    group["vectors"][:] = vectors
    with pytest.raises(StoreError, match=f"vector of '{toy.pert_ids[7]}' contains NaN or inf"):
        evaluate(PreparedDataset.open(toy.path), [store])


def test_duplicate_ids(tmp_path, toy):
    store = build_store(tmp_path / "dup.zarr", toy.pert_ids, informative_vectors(toy, 20, 1), "dup")
    group = zarr.open_group(str(tmp_path / "dup.zarr"), mode="r+")
    ids = np.asarray(group["ids"][:], dtype=object)
    ids[5] = ids[4]
    group["ids"][:] = ids
    with pytest.raises(StoreError, match=f"has the id '{toy.pert_ids[4]}' more than once"):
        evaluate(PreparedDataset.open(toy.path), [store])


def test_drug_store_on_genetic_dataset(tmp_path, toy):
    keys = np.array([f"AAAAAAAAAAAAAA-BBBBBBBBBB-{i:01d}" for i in range(10)])
    store = build_store(tmp_path / "drugs.zarr", keys, np.random.default_rng(0).normal(size=(10, 16)), "morgan",
                        entity="drug", key_namespace="inchikey")
    line = _one_line_error(["evaluate", "--dataset", str(toy.path), "--stores", str(store.path), "--no-plots", "--out", str(tmp_path / "o")])
    assert "holds drug embeddings but dataset 'toy' perturbs genes; choose a gene store" in line


def test_unknown_dataset_cell_line_fold_and_store(tmp_path, toy, stores):
    line = _one_line_error(["evaluate", "--dataset", "no-such-screen", "--stores", str(stores["wide"].path)])
    assert "no prepared dataset 'no-such-screen'" in line
    line = _one_line_error(["evaluate", "--dataset", str(toy.path), "--stores", str(stores["wide"].path), "--cell-line", "HeLa"])
    assert "has no cell line 'HeLa'" in line and "K-562" in line
    line = _one_line_error(["evaluate", "--dataset", str(toy.path), "--stores", str(stores["wide"].path), "--fold", "7"])
    assert "has no fold 7" in line
    line = _one_line_error(["evaluate", "--dataset", str(toy.path), "--stores", "no-such-model"])
    assert "no store 'no-such-model'" in line
    line = _one_line_error(["evaluate", "--dataset", str(toy.path)])
    assert "no stores to evaluate" in line
    with pytest.raises(InputError, match="unknown estimator 'svm'"):
        evaluate(PreparedDataset.open(toy.path), [stores["wide"]], estimators=("svm",))


def _damage_first_chunk(array_dir):
    chunk = next(path for path in sorted((array_dir / "c").rglob("*")) if path.is_file())
    chunk.write_bytes(b"not a chunk" * 3)


def test_damaged_store_chunk_and_damaged_dataset(tmp_path, toy, stores):
    store = build_store(tmp_path / "damaged.zarr", toy.pert_ids, informative_vectors(toy, 20, 1), "damaged")
    _damage_first_chunk(tmp_path / "damaged.zarr" / "vectors")
    line = _one_line_error(["evaluate", "--dataset", str(toy.path), "--stores", str(store.path), "--no-plots", "--out", str(tmp_path / "o1")])
    assert "is damaged: array 'vectors' cannot be read" in line and "damaged.zarr" in line and "re-extract" in line

    group = zarr.open_group(str(toy.path), mode="r+")
    del group["cell_lines/Hep-G2/fold"]
    line = _one_line_error(["evaluate", "--dataset", str(toy.path), "--stores", str(stores["wide"].path), "--cell-line", "Hep-G2",
                            "--no-plots", "--out", str(tmp_path / "o2")])
    assert "cell line 'Hep-G2' has no 'fold' array" in line and "prepare the dataset again" in line
    _damage_first_chunk(toy.path / "cell_lines" / "K-562" / "lfc")
    line = _one_line_error(["evaluate", "--dataset", str(toy.path), "--stores", str(stores["wide"].path), "--cell-line", "K-562",
                            "--no-plots", "--out", str(tmp_path / "o3")])
    assert "'K-562/lfc' cannot be read" in line and "prepare the dataset again" in line


def test_a_store_given_twice_is_refused_and_a_store_named_like_a_baseline_keeps_its_own_rows(tmp_path, toy, stores):
    dataset = PreparedDataset.open(toy.path)
    again = type(stores["wide"]).open(str(stores["wide"].path) + "/")
    with pytest.raises(InputError, match="store 'wide' is given twice .*; give each store once"):
        evaluate(dataset, [stores["wide"], stores["narrow"], again], folds=[0])
    line = _one_line_error(["evaluate", "--dataset", str(toy.path), "--stores", str(stores["wide"].path), str(stores["wide"].path),
                            "--no-plots", "--out", str(tmp_path / "o")])
    assert "given twice" in line

    named_random = build_store(tmp_path / "random.zarr", toy.pert_ids, informative_vectors(toy, 30, 9), "random")
    frame = evaluate(dataset, [named_random], cell_lines=["K-562", "K-562"], folds=[1, 1]).results
    l2 = frame[(frame.metric == "L2") & (frame.subset == "all")]
    assert sorted(l2.fold.unique()) == [1] and sorted(l2.cell_line.unique()) == ["K-562"]
    counts = l2.groupby(["method", "embedding"]).size()
    assert (counts == 1).all()  # one row per method × embedding: no fold or cell line evaluated twice
    renamed = [e for e in l2.embedding if e.startswith("random@")]
    assert len(renamed) == 1 and ("knn", "random") in counts.index
    ours = l2[l2.embedding == renamed[0]].value.iloc[0]
    baseline = l2[(l2.method == "knn") & (l2.embedding == "random")].value.iloc[0]
    assert ours != baseline


def test_too_few_training_perturbations_in_a_late_fold_is_refused_before_any_fit(tmp_path, toy, stores, monkeypatch):
    from embhub.evaluate import runner as runner_module

    line_folds = toy.folds["K-562"]
    keep = np.flatnonzero(line_folds == 4)[:12]  # enough to train folds 0–3 (its rows sit in fold 4), none for fold 4
    late = build_store(tmp_path / "late.zarr", toy.pert_ids[keep], informative_vectors(toy, 12, 4)[keep], "late")
    fitted = []
    monkeypatch.setattr(runner_module, "_evaluate_fold", lambda *args, **kwargs: fitted.append(1) or [])
    with pytest.raises(StoreError, match="store 'late' covers only 0 training perturbations of K-562 fold 4; "
                                         "at least 10 are needed: leave the store out"):
        evaluate(PreparedDataset.open(toy.path), [stores["wide"], late], cell_lines=["K-562"])
    assert fitted == []


def test_results_name_a_store_by_its_absolute_path_whatever_the_user_typed(tmp_path, toy, stores, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = type(stores["wide"]).open("wide.zarr")
    frame = evaluate(PreparedDataset.open(toy.path), [relative], cell_lines=["K-562"], folds=[0], baselines=False).results
    assert set(frame[frame.embedding == "wide"].store_path) == {str(tmp_path / "wide.zarr")}


def test_a_store_path_that_is_a_file_or_a_folder_without_a_store_says_what_it_is(tmp_path, toy):
    file = tmp_path / "vectors.zarr"
    file.write_text("not a store")
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    other = tmp_path / "results"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    expected = {file: "is a file, not an embedding store", empty: "is not an embedding store (it has no zarr.json)",
                other: "is not an embedding store (it has no zarr.json)"}
    for path, fragment in expected.items():
        line = _one_line_error(["evaluate", "--dataset", str(toy.path), "--stores", str(path), "--no-plots",
                                "--out", str(tmp_path / "o")])
        assert str(path) in line and fragment in line, line


@pytest.mark.parametrize("value", [0.0, 3.5])
def test_a_store_giving_every_perturbation_the_same_vector_is_refused(tmp_path, toy, value):
    """All distances tie, so kNN would average the first k training rows by position and could even beat the
    context mean while carrying no information about the perturbations."""
    store = build_store(tmp_path / "flat.zarr", toy.pert_ids, np.full((len(toy.pert_ids), 16), value), "flat")
    with pytest.raises(StoreError, match=f"'flat'.* gives all {len(toy.pert_ids)} perturbations it covers the same vector"):
        evaluate(PreparedDataset.open(toy.path), [store])
    line = _one_line_error(["evaluate", "--dataset", str(toy.path), "--stores", str(store.path), "--no-plots",
                            "--out", str(tmp_path / "o")])
    assert "the same vector" in line and "re-extract" in line


def test_a_negative_jobs_count_is_refused_not_read_as_every_core(tmp_path, toy, stores):
    line = _one_line_error(["evaluate", "--dataset", str(toy.path), "--stores", str(stores["wide"].path), "--jobs", "-3",
                            "--no-plots", "--out", str(tmp_path / "o")])
    assert "--jobs -3" in line and "0 for one per available core" in line
