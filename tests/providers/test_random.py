"""Random control vectors depend only on (seed, key): not on batching, order or input spelling."""

import hashlib

import numpy as np

from embhub.store import EmbeddingStore
from tests.support.cli import run_cli


def expected(key, seed=0, dim=100):
    digest = hashlib.sha256(f"{seed}\t{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little")).random(dim).astype(np.float32)


def test_gene_vectors_are_keyed_by_ensembl_and_independent_of_batching(tmp_path):
    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\nENSG00000141510\nBRCA1\nNOT_A_GENE_XYZ\nMYC\n")
    one, two = tmp_path / "a.zarr", tmp_path / "b.zarr"
    assert run_cli("extract", "-m", "random-gene-100", "-i", genes, "-o", one, "--batch-size", 1).exit_code == 0
    assert run_cli("extract", "-m", "random-gene-100", "-i", genes, "-o", two, "--batch-size", 100).exit_code == 0
    a, b = EmbeddingStore.open(one), EmbeddingStore.open(two)
    np.testing.assert_array_equal(a.vectors(), b.vectors())
    assert list(a.ids) == ["ENSG00000141510", "ENSG00000012048", "ENSG00000136997"]
    assert list(a.labels("symbol")) == ["TP53", "BRCA1", "MYC"]
    np.testing.assert_array_equal(a.vectors()[0], expected("ENSG00000141510"))
    reasons = {f["input_id"]: f["reason"] for f in a.failures()}
    assert "same ensembl_gene_id ENSG00000141510 as input 'TP53'" in reasons["ENSG00000141510"]
    assert reasons["NOT_A_GENE_XYZ"].startswith("unknown gene id 'NOT_A_GENE_XYZ'")
