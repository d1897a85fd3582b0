"""Where ``embhub extract`` writes: --out, --overwrite and --batch-size never cost the user data they did not ask to lose."""

import numpy as np
import pytest

from embhub.extract import extract as extract_store
from embhub.plugins import load_plugins
from embhub.provider import Embedded, Failure, Item, Provider
from embhub.registry import ModelSpec
from embhub.store import EmbeddingStore
from embhub_random import random_vector
from tests.support.cli import assert_one_line_error, run_cli

GENES = "gene\nTP53\nKRAS\nNOTAGENE\nMYC\n"
ENSEMBL = {"TP53": "ENSG00000141510", "KRAS": "ENSG00000133703", "MYC": "ENSG00000136997"}


@pytest.fixture
def genes(tmp_path):
    path = tmp_path / "genes.csv"
    path.write_text(GENES)
    return path


def extract(genes, out, *options):
    return run_cli("extract", "-m", "random-gene-100", "-i", genes, "-o", out, *options)


def assert_random_gene_store(out):
    store = EmbeddingStore.open(out)
    assert list(store.input_ids) == ["TP53", "KRAS", "MYC"]
    assert list(store.ids) == [ENSEMBL[g] for g in store.input_ids]
    expected = np.stack([random_vector(ENSEMBL[g], 0, 100, "uniform") for g in store.input_ids])
    np.testing.assert_array_equal(store.vectors(), expected)
    assert [f["input_id"] for f in store.failures()] == ["NOTAGENE"]


def test_overwrite_refuses_to_delete_a_folder_that_is_not_a_store(genes, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    for options in ((), ("--overwrite",)):
        assert_one_line_error(extract(genes, folder, *options), f"{folder} exists and is not an embhub store")
    assert (folder / "thesis.txt").read_text() == "years of work"


def test_overwrite_refuses_to_delete_a_file(genes, tmp_path):
    file = tmp_path / "notes.zarr"
    file.write_text("not a store")
    assert_one_line_error(extract(genes, file, "--overwrite"), "is not an embhub store")
    assert file.read_text() == "not a store"


def test_overwrite_replaces_a_store(genes, tmp_path):
    out = tmp_path / "genes.zarr"
    assert run_cli("extract", "-m", "random-gene-100", "-i", genes, "-o", out, "--set", "seed=1").exit_code == 0
    assert extract(genes, out, "--overwrite").exit_code == 0
    assert_random_gene_store(out)


@pytest.mark.parametrize("size", ["0", "-3"])
def test_a_batch_size_below_one_is_refused_before_anything_is_deleted(genes, tmp_path, size):
    out = tmp_path / "genes.zarr"
    assert extract(genes, out).exit_code == 0
    before = EmbeddingStore.open(out).manifest["content_sha256"]
    refused = extract(genes, out, "--overwrite", "--batch-size", size)
    assert EmbeddingStore.open(out).manifest["content_sha256"] == before
    assert_one_line_error(refused, f"batch size must be at least 1, got {size}")
    assert_one_line_error(extract(genes, tmp_path / "new.zarr", "--batch-size", size), "batch size must be at least 1")
    assert not (tmp_path / "new.zarr").exists()


@pytest.mark.parametrize(
    ("model", "options", "parameter"),
    [
        ("genept-minilm-ncbi", (), "ncbi_summaries"),
        ("esm2-8m", ("--set", "fasta=UP000005640_9606.fasta"), "fasta"),
    ],
)
def test_a_missing_file_named_by_a_parameter_is_one_line_naming_the_parameter(genes, tmp_path, monkeypatch, model, options, parameter):
    monkeypatch.chdir(tmp_path)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    if model.startswith("esm2"):
        options = (*options, "--set", f"checkpoint={checkpoint}")
    outcome = run_cli("extract", "-m", model, "-i", genes, "-o", tmp_path / "x.zarr", *options)
    assert_one_line_error(outcome, f"model '{model}' reads", "which does not exist", f"--set {parameter}=PATH")


def test_an_overwrite_that_fails_keeps_the_old_store(genes, tmp_path):
    out = tmp_path / "genes.zarr"
    assert extract(genes, out).exit_code == 0
    for model, parameter in (("string-spectral-demo", "network"), ("genept-minilm-ncbi", "ncbi_summaries")):
        failed = run_cli("extract", "-m", model, "-i", genes, "-o", out, "--overwrite",
                         "--set", f"{parameter}={tmp_path / 'missing.tsv'}")
        assert failed.exit_code == 1
        assert_random_gene_store(out)


def test_overwrite_replaces_a_damaged_store(genes, tmp_path):
    out = tmp_path / "genes.zarr"
    assert extract(genes, out).exit_code == 0
    (out / "zarr.json").write_text("{not json")
    (out / ".DS_Store").write_text("")
    assert extract(genes, out, "--overwrite").exit_code == 0
    assert_random_gene_store(out)


class NoneEmbedded(Provider):
    """Learns its dimension (7) only when it loads its model, in the first batch, then fails every item."""

    name = "none-embedded"
    entity = "number"
    id_namespace = "integer"
    key_namespace = "integer"
    loaded = False

    @property
    def dim(self):
        return 7 if self.loaded else None

    def embed(self, items):
        self.loaded = True
        return Embedded([], [], np.zeros((0, 7), np.float32), [Failure(i.input_id, f"cannot embed {i.value}") for i in items])


def test_a_store_in_which_every_item_failed_is_valid_and_exports(tmp_path):
    items = [Item(f"item{i}", str(i), i) for i in range(1, 4)]
    out = tmp_path / "none.zarr"
    extract_store(ModelSpec("none", "none-embedded"), NoneEmbedded(), items, out, plugins=load_plugins())
    store = EmbeddingStore.open(out)
    assert store.dim == 7 and store.vectors().shape == (0, 7)
    assert [f["input_id"] for f in store.failures()] == ["item1", "item2", "item3"]
    assert store.verify() == []
    assert run_cli("stores", "export", out, tmp_path / "none.npz").exit_code == 0
    assert np.load(tmp_path / "none.npz")["vectors"].shape == (0, 7)


def test_a_damaged_store_at_out_is_one_line_pointing_to_overwrite(genes, tmp_path):
    out = tmp_path / "genes.zarr"
    assert extract(genes, out).exit_code == 0
    (out / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    assert_one_line_error(extract(genes, out), "not an embhub store", "pass --overwrite to replace it")
    assert extract(genes, out, "--overwrite").exit_code == 0
    assert_random_gene_store(out)
