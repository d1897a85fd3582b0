"""Two embhub processes writing one output: the second stops at once with one line, and the first's result is
the one an undisturbed run writes."""

import threading

import numpy as np
import pytest

from embhub.extract import extract as extract_store
from embhub.plugins import load_plugins
from embhub.provider import Embedded, Item, Provider
from embhub.registry import ModelSpec
from embhub.store import EmbeddingStore
from embhub_random import random_vector
from tests.support.cli import assert_one_line_error, run_cli

GENES = {"TP53": "ENSG00000141510", "KRAS": "ENSG00000133703", "MYC": "ENSG00000136997"}


class PausedAfterFirstBatch(Provider):
    """random-gene-100's vectors (seed 0, uniform), one item a batch, waiting after the first batch until told
    to go on: an extraction caught in the middle."""

    name = "paused"
    entity = "gene"
    id_namespace = "ensembl_gene_id"
    key_namespace = "ensembl_gene_id"
    default_batch_size = 1

    def __init__(self):
        super().__init__()
        self.first_batch_written, self.go_on, self.batches = threading.Event(), threading.Event(), 0

    @property
    def dim(self):
        return 100

    def embed(self, items):
        if self.batches == 1:
            self.first_batch_written.set()
            assert self.go_on.wait(60)
        self.batches += 1
        keys = [item.value for item in items]
        vectors = np.stack([random_vector(key, 0, 100, "uniform") for key in keys]).astype(np.float32)
        return Embedded([item.input_id for item in items], keys, vectors, [])


@pytest.fixture
def paused_extraction(tmp_path):
    out = tmp_path / "genes.zarr"
    provider = PausedAfterFirstBatch()
    items = [Item(symbol, gene) for symbol, gene in GENES.items()]
    first = threading.Thread(
        target=extract_store, args=(ModelSpec("paused", "paused"), provider, items, out), kwargs={"plugins": load_plugins()}
    )
    first.start()
    assert provider.first_batch_written.wait(60)
    yield out
    provider.go_on.set()
    first.join(60)
    store = EmbeddingStore.open(out)
    assert store.manifest["complete"] and list(store.input_ids) == list(GENES)
    np.testing.assert_array_equal(store.vectors(), np.stack([random_vector(g, 0, 100, "uniform") for g in GENES.values()]))


def test_a_second_extraction_into_the_same_out_stops_while_the_first_runs(paused_extraction, tmp_path):
    genes = tmp_path / "genes.csv"
    genes.write_text("gene\n" + "\n".join(GENES) + "\n")
    for options in ((), ("--overwrite",)):
        outcome = run_cli("extract", "-m", "random-gene-100", "-i", genes, "-o", paused_extraction, *options)
        assert_one_line_error(outcome, f"{paused_extraction} is being written by another embhub process", "--out")


def test_an_import_into_a_store_being_extracted_stops(paused_extraction, tmp_path):
    table = tmp_path / "vectors.csv"
    table.write_text("id,a,b\nENSG00000141510,1,2\n")
    outcome = run_cli("stores", "import", table, "--out", paused_extraction, "--entity", "gene",
                      "--key-namespace", "ensembl_gene_id", "--overwrite")
    assert_one_line_error(outcome, "is being written by another embhub process")
