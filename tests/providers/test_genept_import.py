"""Importing GenePT's published pickle (gene symbol → vector) safely, as a gene store."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from embhub.errors import InputError
from embhub.identity.genes import load_gene_identity
from embhub.store import EmbeddingStore
from embhub.cli.genept_import import import_genept_command
from embhub_genept.genept_file import import_genept, load_genept_pickle


class RunsShellCommand:
    """What a malicious pickle does: unpickling calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def genept_like_mapping(rng) -> dict:
    vectors = rng.normal(size=(4, 16))
    return {
        "TP53": vectors[0].astype(np.float32),          # numpy arrays, as in GenePT's ada-002 file
        "KRAS": vectors[1].tolist(),                      # plain lists of floats
        "GAPDH": vectors[2],
        "ENSG00000141510": vectors[3],                    # TP53 again: a duplicate
        "NOT_A_GENE_XYZ": vectors[3],                     # unknown
        "MYC": rng.normal(size=8),                        # wrong length
    }


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_import_keys_by_ensembl_keeps_vectors_and_lists_every_skipped_symbol(tmp_path, protocol):
    mapping = genept_like_mapping(np.random.default_rng(0))
    source = tmp_path / "GenePT_gene_embedding_ada_text.pickle"
    source.write_bytes(pickle.dumps(mapping, protocol=protocol))
    result = import_genept(source, tmp_path / "genept.zarr")
    store = EmbeddingStore.open(tmp_path / "genept.zarr")
    ident = load_gene_identity()
    assert list(store.ids) == [ident.resolve(s).ensembl_id for s in ("TP53", "KRAS", "GAPDH")]
    assert list(store.labels("symbol")) == ["TP53", "KRAS", "GAPDH"]
    expected = np.stack([np.asarray(mapping[s], dtype=np.float32) for s in ("TP53", "KRAS", "GAPDH")])
    np.testing.assert_array_equal(store.vectors(), expected)
    assert store.entity == "gene" and store.key_namespace == "ensembl_gene_id" and store.dim == 16
    skipped = {s["symbol"]: s["reason"] for s in store.manifest["provenance"]["skipped"]}
    assert set(skipped) == {"ENSG00000141510", "NOT_A_GENE_XYZ", "MYC"}
    assert "already taken by 'TP53'" in skipped["ENSG00000141510"]
    assert skipped["NOT_A_GENE_XYZ"].startswith("unknown gene id")
    assert "length 8" in skipped["MYC"]
    assert result.imported == 3 and len(result.skipped) == 3


def test_a_pickle_that_would_run_code_is_refused_before_running_it(tmp_path):
    marker = tmp_path / "pwned"
    source = tmp_path / "evil.pickle"
    source.write_bytes(pickle.dumps({"TP53": RunsShellCommand(marker)}))
    with pytest.raises(InputError, match=r"global '(posix|os)\.system' is not allowed"):
        load_genept_pickle(source)
    assert not marker.exists()
    pickle.loads(source.read_bytes())
    assert marker.exists(), "the probe pickle really runs code when unpickled without restriction"


def test_non_mapping_pickles_are_refused(tmp_path):
    source = tmp_path / "list.pickle"
    source.write_bytes(pickle.dumps([1.0, 2.0]))
    with pytest.raises(InputError, match="not a non-empty dict"):
        load_genept_pickle(source)


def test_cli_command_prints_counts_and_skipped_symbols(tmp_path):
    app = typer.Typer()
    app.command()(import_genept_command)
    source = tmp_path / "genept.pickle"
    source.write_bytes(pickle.dumps(genept_like_mapping(np.random.default_rng(1))))
    out = tmp_path / "store.zarr"
    result = CliRunner().invoke(app, [str(source), "--out", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "3 genes, dim 16, 3 skipped" in result.stdout
    assert "skipped 'NOT_A_GENE_XYZ'" in result.stderr
    assert EmbeddingStore.open(out).dim == 16


def test_a_gene_keeps_the_vector_filed_under_its_approved_symbol_whatever_the_order(tmp_path):
    """An alias ('p53') listed before the approved symbol must not take TP53's place in the store."""
    rng = np.random.default_rng(2)
    alias, approved, other = rng.normal(size=(3, 8))
    mapping = {"p53": alias, "TP53": approved, "KRAS": other, "MDM2": rng.normal(size=5),
               "BRCA1": np.r_[np.nan, rng.normal(size=7)]}
    source = tmp_path / "genept.pickle"
    source.write_bytes(pickle.dumps(mapping))
    import_genept(source, tmp_path / "genept.zarr")
    store = EmbeddingStore.open(tmp_path / "genept.zarr")
    ident = load_gene_identity()
    assert ident.resolve("p53").ensembl_id == ident.resolve("TP53").ensembl_id
    assert list(store.labels("symbol")) == ["TP53", "KRAS"]
    np.testing.assert_array_equal(store.vectors(), np.stack([approved, other]).astype(np.float32))
    skipped = {s["symbol"]: s["reason"] for s in store.manifest["provenance"]["skipped"]}
    assert "already taken by 'TP53'" in skipped["p53"]
    assert "length 5" in skipped["MDM2"] and "8" in skipped["MDM2"] and "non-finite" not in skipped["MDM2"]
    assert "non-finite" in skipped["BRCA1"] and "length" not in skipped["BRCA1"]
