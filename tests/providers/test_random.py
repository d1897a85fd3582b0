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


def test_random_controls_read_the_same_tables_as_the_models_they_control(tmp_path):
    """A negative control must run on the very table its gene or drug model reads."""
    from embhub.identity.genes import GENE_INPUT_COLUMNS
    from embhub_morgan import MorganFingerprints

    for column in GENE_INPUT_COLUMNS:
        table = tmp_path / f"genes_{column}.csv"
        table.write_text(f"guide,{column}\ng1,TP53\ng2,ENSG00000136997\n")
        out = run_cli("extract", "-m", "random-gene-100", "-i", table, "-o", tmp_path / f"g_{column}.zarr")
        assert out.exit_code == 0, (column, out)
        store = EmbeddingStore.open(tmp_path / f"g_{column}.zarr")
        assert list(store.ids) == ["ENSG00000141510", "ENSG00000136997"], column
        np.testing.assert_array_equal(store.vectors()[1], expected("ENSG00000136997"))
    for column in MorganFingerprints.input_columns:
        table = tmp_path / f"drugs_{column}.csv"
        table.write_text(f"name,{column}\nethanol,OCC\n")
        out = run_cli("extract", "-m", "random-drug-100", "-i", table, "-o", tmp_path / f"d_{column}.zarr")
        assert out.exit_code == 0, (column, out)
        store = EmbeddingStore.open(tmp_path / f"d_{column}.zarr")
        assert list(store.ids) == ["LFQSCWFLJHTTHZ-UHFFFAOYSA-N"] and list(store.input_ids) == ["ethanol"]
        np.testing.assert_array_equal(store.vectors()[0], expected("LFQSCWFLJHTTHZ-UHFFFAOYSA-N"))
