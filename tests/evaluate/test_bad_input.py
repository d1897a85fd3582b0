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
