"""The store: readable with plain zarr, verifiable, refusing corruption, and interchangeable."""

import json

import anndata
import numpy as np
import pandas as pd
import pytest
import zarr

from embhub.errors import InputError, StoreError
from embhub.interchange import write_store
from embhub.store import EmbeddingStore
from tests.support.cli import assert_one_line_error, run_cli

DRUGS = "id,smiles\naspirin,CC(=O)Oc1ccccc1C(=O)O\ncaffeine,Cn1cnc2c1c(=O)n(C)c(=O)n2C\nethanol,CCO\nbenzene,c1ccccc1\n"


@pytest.fixture
def store_path(tmp_path):
    table = tmp_path / "drugs.csv"
    table.write_text(DRUGS)
    out = tmp_path / "fp.zarr"
    assert run_cli("extract", "-m", "morgan-2-2048", "-i", table, "-o", out, "--batch-size", 3).exit_code == 0
    return out


def test_store_reads_with_plain_zarr_as_documented(store_path):
    group = zarr.open_group(str(store_path), mode="r")
    manifest = group.attrs["embhub"]
    assert manifest["format"] == "embhub-store" and manifest["complete"] is True
    assert list(group["input_ids"][:]) == ["aspirin", "caffeine", "ethanol", "benzene"]
    assert group["vectors"].shape == (4, 2048) and group["vectors"].dtype == np.float32
    assert list(group["labels/canonical_smiles"][:])[2] == "CCO"
    for key in ("provider", "parameters", "entity", "id_namespace", "key_namespace", "dim", "dtype", "created",
                "embhub_version", "inputs", "counts", "failures", "content_sha256"):
        assert key in manifest, key
    assert manifest["inputs"]["count"] == 4 and len(manifest["inputs"]["sha256"]) == 64
    assert "_staging" not in group


def test_verify_passes_then_detects_tampering(store_path):
    assert run_cli("stores", "verify", store_path).exit_code == 0
    group = zarr.open_group(str(store_path), mode="r+")
    group["vectors"][1, 5] = 7.0
    outcome = run_cli("stores", "verify", store_path)
    assert outcome.exit_code == 1 and "content checksum does not match" in outcome.stderr


def test_missing_chunk_and_garbage_metadata_are_clear_errors(store_path, tmp_path):
    chunk_dir = store_path / "vectors" / "c"
    for chunk in chunk_dir.rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"garbage")
            break
    outcome = run_cli("stores", "verify", store_path)
    assert outcome.exit_code == 1 and "vectors cannot be read" in outcome.stderr
    (store_path / "zarr.json").write_text("{not json")
    assert_one_line_error(run_cli("stores", "show", store_path), "not a readable Zarr v3 store")
    assert_one_line_error(run_cli("stores", "show", tmp_path / "nothing.zarr"), "no store at")


def test_incomplete_store_is_refused_unless_asked(store_path):
    group = zarr.open_group(str(store_path), mode="r+")
    manifest = dict(group.attrs["embhub"])
    manifest["complete"] = False
    group.attrs["embhub"] = manifest
    with pytest.raises(StoreError, match="incomplete"):
        EmbeddingStore.open(store_path)
    assert_one_line_error(run_cli("stores", "export", store_path, store_path.parent / "x.npz"), "incomplete")


@pytest.mark.parametrize("suffix", [".h5ad", ".npz", ".csv", ".parquet"])
def test_export_import_round_trip(store_path, tmp_path, suffix):
    original = EmbeddingStore.open(store_path)
    exported = tmp_path / f"fp{suffix}"
    assert run_cli("stores", "export", store_path, exported).exit_code == 0
    back = tmp_path / f"back{suffix}.zarr"
    outcome = run_cli("stores", "import", exported, "--out", back, "--entity", "drug", "--key-namespace", "inchikey")
    assert outcome.exit_code == 0, outcome
    restored = EmbeddingStore.open(back)
    assert list(restored.ids) == list(original.ids)
    np.testing.assert_array_equal(restored.vectors(), original.vectors())
    assert restored.verify() == []


def test_import_reads_the_study_h5ad_layout_with_sparse_rows(tmp_path):
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(6, 4)).astype(np.float32)
    ids = [f"ENSG0000000000{i}" for i in range(6)]
    anndata.AnnData(X=sp.csr_matrix(matrix), obs=pd.DataFrame(index=ids)).write_h5ad(tmp_path / "ESM2_(D=4).h5ad")
    out = tmp_path / "esm.zarr"
    outcome = run_cli("stores", "import", tmp_path / "ESM2_(D=4).h5ad", "--out", out, "--entity", "gene",
                      "--key-namespace", "ensembl_gene_id")
    assert outcome.exit_code == 0
    store = EmbeddingStore.open(out)
    assert store.name == "ESM2_(D=4)" and list(store.ids) == ids
    np.testing.assert_array_equal(store.vectors(), matrix)
    found, vectors = store.lookup([ids[4], "ENSG_missing", ids[1]])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(vectors, matrix[[4, 1]])


def test_import_refuses_duplicates_and_nan(tmp_path):
    np.savez(tmp_path / "dup.npz", ids=np.array(["a", "b", "a"]), vectors=np.zeros((3, 2)))
    assert_one_line_error(
        run_cli("stores", "import", tmp_path / "dup.npz", "--out", tmp_path / "d.zarr", "--entity", "gene", "--key-namespace", "x"),
        "id 'a' appears on rows 1 and 3",
    )
    np.savez(tmp_path / "nan.npz", ids=np.array(["a", "b"]), vectors=np.array([[0, 1], [np.nan, 2]]))
    assert_one_line_error(
        run_cli("stores", "import", tmp_path / "nan.npz", "--out", tmp_path / "n.zarr", "--entity", "gene", "--key-namespace", "x"),
        "'b' (row 2) contains NaN",
    )


def test_write_store_streams_blocks(tmp_path):
    ids = np.array([f"g{i}" for i in range(10)])
    blocks = (np.full((5, 3), i, dtype=np.float32) for i in range(2))
    store = write_store(tmp_path / "b.zarr", ids, blocks, 3, name="b", entity="gene", key_namespace="x", source="test")
    assert store.vectors()[:, 0].tolist() == [0] * 5 + [1] * 5
    with pytest.raises(InputError, match="4 vectors for 10 ids"):
        write_store(tmp_path / "c.zarr", ids, iter([np.zeros((4, 3))]), 3, name="c", entity="gene", key_namespace="x", source="t")


def test_stores_list_and_show(store_path, tmp_path):
    listing = run_cli("stores", "list", "--dir", tmp_path)
    assert "fp.zarr" in listing.stdout and "morgan-2-2048" in listing.stdout and "complete" in listing.stdout
    shown = run_cli("stores", "show", store_path, "--json")
    assert json.loads(shown.stdout)["counts"] == {"done": 4, "failed": 0}


def test_import_overwrite_replaces_a_damaged_store_but_never_deletes_another_folder(store_path, tmp_path):
    exported = tmp_path / "fp.npz"
    assert run_cli("stores", "export", store_path, exported).exit_code == 0
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    options = ("--entity", "drug", "--key-namespace", "inchikey", "--overwrite")
    assert_one_line_error(run_cli("stores", "import", exported, "--out", folder, *options), "is not an embhub store")
    assert (folder / "thesis.txt").read_text() == "years of work"
    (store_path / "zarr.json").write_text("{not json")
    assert run_cli("stores", "import", exported, "--out", store_path, *options).exit_code == 0
    restored = EmbeddingStore.open(store_path)
    assert restored.verify() == []
    np.testing.assert_array_equal(restored.vectors(), np.load(exported, allow_pickle=False)["vectors"])


def test_an_import_that_fails_leaves_the_store_it_was_to_overwrite(store_path, tmp_path):
    before = EmbeddingStore.open(store_path).manifest["content_sha256"]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,d0,d1\nBSYNRYMUTXBXSQ-UHFFFAOYSA-N,1,2\nLFQSCWFLJHTTHZ-UHFFFAOYSA-N,3\n")
    outcome = run_cli("stores", "import", bad, "--out", store_path, "--entity", "drug", "--key-namespace", "inchikey", "--overwrite")
    assert_one_line_error(outcome, "contains NaN or inf")
    assert EmbeddingStore.open(store_path).manifest["content_sha256"] == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "drugs.csv", "fp.zarr"]


def test_import_checks_ids_against_the_key_namespace_it_is_told(tmp_path):
    """Keys no dataset can match (symbols called Ensembl ids, names called InChIKeys) are refused, not stored;
    Ensembl's version suffix is dropped, as gene stores are keyed by the unversioned id."""
    versioned = tmp_path / "versioned.csv"
    versioned.write_text("id,d0,d1\nENSG00000141510.16,1,2\nensg00000133703,3,4\n")
    out = tmp_path / "v.zarr"
    outcome = run_cli("stores", "import", versioned, "--out", out, "--entity", "gene", "--key-namespace", "ensembl_gene_id")
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    assert list(store.ids) == ["ENSG00000141510", "ENSG00000133703"]
    found, vectors = store.lookup(["ENSG00000133703"])
    assert found.tolist() == [True] and vectors.tolist() == [[3, 4]]

    symbols = tmp_path / "symbols.csv"
    symbols.write_text("id,d0,d1\nENSG00000141510,1,2\nKRAS,3,4\n")
    outcome = run_cli("stores", "import", symbols, "--out", tmp_path / "s.zarr", "--entity", "gene",
                      "--key-namespace", "ensembl_gene_id")
    assert_one_line_error(outcome, "symbols.csv", "'KRAS' (row 2)", "--key-namespace gene")
    assert not (tmp_path / "s.zarr").exists()
    names = tmp_path / "names.npz"
    np.savez(names, ids=np.array(["BSYNRYMUTXBXSQ-UHFFFAOYSA-N", "aspirin"]), vectors=np.zeros((2, 2)))
    outcome = run_cli("stores", "import", names, "--out", tmp_path / "n.zarr", "--entity", "drug", "--key-namespace", "inchikey")
    assert_one_line_error(outcome, "names.npz", "'aspirin' (row 2)", "InChIKey")
    drug_targets_style = tmp_path / "targets.npz"
    np.savez(drug_targets_style, ids=np.array(["BSYNRYMUTXBXSQ-UHFFFAOYSA-N", "drug_name:trametinib (gsk1120212)"]),
             vectors=np.ones((2, 2)))
    outcome = run_cli("stores", "import", drug_targets_style, "--out", tmp_path / "t.zarr", "--entity", "drug",
                      "--key-namespace", "inchikey")
    assert outcome.exit_code == 0, outcome
