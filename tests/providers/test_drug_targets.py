"""Target-based drug vectors equal the aggregate of the named gene store's target vectors, computed here.

The gene store is a small real-format store of random vectors keyed by real Ensembl ids, written
where ``embhub extract`` would put the store of a gene model named ``toy-genes``.
"""

import csv

import numpy as np
import pytest
from rdkit import Chem

from embhub.errors import InputError
from embhub.identity.genes import load_gene_identity
from embhub.interchange import write_store
from embhub.paths import default_store_dir
from embhub.provider import Item
from embhub.store import EmbeddingStore
from embhub_drug_targets import DrugTargetEmbedding
from embhub_drug_targets.target_table import BUNDLED_TABLES, read_target_table
from tests.support.cli import assert_one_line_error, run_cli

GENES = ["HDAC1", "HDAC2", "HDAC3", "HDAC6", "MAP2K1", "MAP2K2", "NR3C1", "BRD4", "MTOR", "TP53"]
DIM = 16


@pytest.fixture
def toy_genes(isolated_home):
    ident = load_gene_identity()
    ensembl = {symbol: ident.resolve(symbol).ensembl_id for symbol in GENES}
    vectors = np.random.default_rng(7).normal(size=(len(GENES), DIM)).astype(np.float32)
    path = default_store_dir() / "toy-genes" / "default-0.zarr"
    path.parent.mkdir(parents=True)
    write_store(
        path,
        np.array([ensembl[s] for s in GENES]),
        iter([vectors]),
        DIM,
        name="toy-genes",
        entity="gene",
        key_namespace="ensembl_gene_id",
        source="test",
        labels={"symbol": np.array(GENES)},
    )
    return {symbol: vectors[i] for i, symbol in enumerate(GENES)}, ensembl


def bundled_targets():
    targets = {}
    with open(BUNDLED_TABLES["sciplex3"], newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            targets.setdefault(row["drug"], []).append(row["target"])
    return targets


def provider(**parameters):
    return DrugTargetEmbedding(DrugTargetEmbedding.Parameters(gene_store="toy-genes", **parameters))


def test_bundled_table_extracts_means_of_present_targets_and_reports_the_rest(tmp_path, toy_genes):
    vectors, _ = toy_genes
    registry = tmp_path / "registry.yaml"
    registry.write_text("models:\n  tm:\n    provider: drug-targets\n    parameters: {gene_store: toy-genes}\n")
    out = tmp_path / "tm.zarr"
    outcome = run_cli("extract", "-m", "tm", "-o", out, "--registry", registry)
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    table = bundled_targets()
    embedded = list(store.input_ids)
    for row, drug in enumerate(embedded):
        present = [t for t in table[drug] if t in vectors]
        np.testing.assert_allclose(store.vectors()[row], np.mean([vectors[t] for t in present], axis=0), rtol=1e-6)
        assert store.labels("targets_used")[row] == ";".join(present)
    assert not (np.abs(store.vectors()).sum(axis=1) == 0).any()
    failed = {f["input_id"]: f["reason"] for f in store.failures()}
    assert (len(embedded), len(failed)) == (11, 4)
    assert set(embedded) | set(failed) == set(table) and not set(embedded) & set(failed)
    for drug, reason in failed.items():
        assert not any(t in vectors for t in table[drug])
        assert f"drug '{drug}': none of its targets in gene store toy-genes (missing: {', '.join(table[drug])})" == reason
    jq1 = embedded.index("(+)-JQ1")
    assert store.labels("targets_missing")[jq1] == "BRD2;BRD3"
    dex = embedded.index("Dexamethasone")
    assert store.ids[dex] == Chem.MolToInchiKey(Chem.MolFromSmiles(read_target_table(BUNDLED_TABLES["sciplex3"]).drugs["Dexamethasone"].smiles))
    assert store.ids[embedded.index("Trametinib (GSK1120212)")] == "drug_name:trametinib (gsk1120212)"
    provenance = store.manifest["provenance"]
    assert provenance["gene_store"]["model"] == "toy-genes" and provenance["aggregation"] == "mean"
    with_missing = [drug for drug in embedded if any(t not in vectors for t in table[drug])]
    assert "(+)-JQ1" in with_missing and provenance["drugs_with_missing_targets"] == len(with_missing)
    assert store.manifest["checkpoint"]["files"][0]["path"].endswith("sciplex3_targets.tsv")


def test_a_rerun_after_the_gene_store_changed_is_refused_not_called_complete(tmp_path, toy_genes):
    """The drug vectors are made of the gene store's: once that store is extracted again with other vectors, the
    finished drug store no longer matches it, so a re-run says so instead of 'already complete'."""
    import shutil

    _, ensembl = toy_genes
    registry = tmp_path / "registry.yaml"
    registry.write_text("models:\n  tm:\n    provider: drug-targets\n    parameters: {gene_store: toy-genes}\n")
    out = tmp_path / "tm.zarr"
    assert run_cli("extract", "-m", "tm", "-o", out, "--registry", registry).exit_code == 0
    assert run_cli("extract", "-m", "tm", "-o", out, "--registry", registry).exit_code == 0  # unchanged: complete
    gene_store = default_store_dir() / "toy-genes" / "default-0.zarr"
    shutil.rmtree(gene_store)
    doubled = np.random.default_rng(7).normal(size=(len(GENES), DIM)).astype(np.float32) * 2
    write_store(gene_store, np.array([ensembl[s] for s in GENES]), iter([doubled]), DIM, name="toy-genes", entity="gene",
                key_namespace="ensembl_gene_id", source="test", labels={"symbol": np.array(GENES)})
    rerun = run_cli("extract", "-m", "tm", "-o", out, "--registry", registry)
    assert_one_line_error(rerun, "was extracted with other contents of", "default-0.zarr/zarr.json", "--overwrite")
    before = EmbeddingStore.open(out).vectors()
    assert run_cli("extract", "-m", "tm", "-o", out, "--registry", registry, "--overwrite").exit_code == 0
    np.testing.assert_allclose(EmbeddingStore.open(out).vectors(), before * 2, rtol=1e-6)


def write_table(tmp_path, rows, name="targets.tsv"):
    path = tmp_path / name
    path.write_text("drug\tsmiles\ttarget\tsource\n" + "".join("\t".join(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("aggregation", ["mean", "sum", "max", "unit-mean"])
def test_user_table_with_mixed_ids_and_each_aggregation(tmp_path, toy_genes, aggregation):
    vectors, ensembl = toy_genes
    table = write_table(
        tmp_path,
        [
            ("Drug A", "CC(=O)Oc1ccccc1C(=O)O", ensembl["HDAC1"], "test"),
            ("Drug A", "", "hdac2", "test"),
            ("Drug A", "", "MAP2K1;TP53", "test"),
            ("Drug B", "", "MTOR", "test"),
            ("Drug C", "", "NOT_A_GENE_XYZ", "test"),
        ],
    )
    result = provider(targets=str(table), aggregation=aggregation).embed(
        [Item("a", "drug a"), Item("b", "Drug B (XY-123) HCl"), Item("c", "Drug C"), Item("s", "OC(=O)c1ccccc1OC(C)=O"), Item("u", "Unknown")]
    )
    assert result.input_ids == ["a", "b", "s"]
    stacked = np.stack([vectors[g] for g in ("HDAC1", "HDAC2", "MAP2K1", "TP53")])
    expected = {
        "mean": stacked.mean(0),
        "sum": stacked.sum(0),
        "max": stacked.max(0),
        "unit-mean": (stacked / np.linalg.norm(stacked, axis=1, keepdims=True)).mean(0),
    }[aggregation]
    np.testing.assert_allclose(result.vectors[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.vectors[2], expected, rtol=1e-5, atol=1e-6)
    aspirin = Chem.MolToInchiKey(Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O"))
    assert result.keys == [aspirin, "drug_name:drug b", aspirin]
    reasons = {f.input_id: f.reason for f in result.failures}
    assert reasons == {
        "c": "drug 'Drug C': none of its targets in gene store toy-genes (missing: NOT_A_GENE_XYZ)",
        "u": "drug 'Unknown' is not in the target table targets.tsv",
    }


def test_require_all_targets_fails_partly_covered_drugs(tmp_path, toy_genes):
    table = write_table(tmp_path, [("D", "", "BRD4", "t"), ("D", "", "BRD2", "t"), ("E", "", "MTOR", "t")])
    result = provider(targets=str(table), require_all_targets=True).embed([Item("d", "D"), Item("e", "E")])
    assert result.input_ids == ["e"]
    assert result.failures[0].reason == "drug 'D': not all of its targets in gene store toy-genes (missing: BRD2)"


def test_names_resolve_to_structures_through_a_name_table(tmp_path, toy_genes):
    table = write_table(tmp_path, [("Vorinostat (SAHA)", "", "HDAC1", "t")])
    names = tmp_path / "names.csv"
    names.write_text("name,smiles\nVORINOSTAT,O=C(CCCCCCC(=O)Nc1ccccc1)NO\n")
    result = provider(targets=str(table), resolve_names=True, name_table=str(names)).embed([Item("v", "vorinostat")])
    assert result.keys == [Chem.MolToInchiKey(Chem.MolFromSmiles("O=C(CCCCCCC(=O)Nc1ccccc1)NO"))]
    assert result.labels["canonical_smiles"] == [Chem.MolToSmiles(Chem.MolFromSmiles("O=C(CCCCCCC(=O)Nc1ccccc1)NO"))]


def test_store_and_table_mistakes_are_one_line_errors(tmp_path, isolated_home):
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "models:\n"
        "  nostore:\n    provider: drug-targets\n    parameters: {gene_store: never-extracted}\n"
        "  notable:\n    provider: drug-targets\n    parameters: {gene_store: x, targets: /no/such/table.tsv}\n"
    )
    assert_one_line_error(
        run_cli("extract", "-m", "nostore", "--registry", registry), "never-extracted", "embhub extract --model never-extracted",
        "--input GENES",
    )
    assert_one_line_error(run_cli("extract", "-m", "notable", "--registry", registry), "/no/such/table.tsv", "sciplex3")
    assert not list(isolated_home.rglob("*.zarr"))
    bad = write_table(tmp_path, [("D", "C1CC(", "MTOR", "t")], name="bad.tsv")
    with pytest.raises(Exception, match="drug 'D': invalid SMILES"):
        read_target_table(bad)


def test_bundled_table_is_sourced_and_its_targets_are_real_genes():
    ident = load_gene_identity()
    with open(BUNDLED_TABLES["sciplex3"], newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert rows and all(row["source"].strip() for row in rows)
    for row in rows:
        assert ident.resolve(row["target"]).status == "resolved", row["target"]
        if row["smiles"]:
            assert Chem.MolFromSmiles(row["smiles"]) is not None


def test_a_table_without_the_needed_columns_names_the_columns_it_has(tmp_path):
    table = tmp_path / "genes.csv"
    table.write_text("gene,score\nTP53,1\n")
    with pytest.raises(Exception, match=r"genes\.csv has no 'drug' column \(it has: gene, score; needs drug and target"):
        read_target_table(table)


def test_a_spreadsheet_byte_order_mark_does_not_hide_the_drug_column(tmp_path):
    table = write_table(tmp_path, [("Dexamethasone", "", "NR3C1", "t")])
    table.write_bytes(b"\xef\xbb\xbf" + table.read_bytes())
    assert read_target_table(table).drugs["Dexamethasone"].targets == ["NR3C1"]


def test_table_errors_name_the_file_line_they_are_on(tmp_path):
    """Comment lines count: the line an error names is the line an editor shows."""
    table = tmp_path / "targets.tsv"
    table.write_text("# curated 2026\n# sources: labels\ndrug\ttarget\nImatinib\tABL1\n# below: a row without a target\nDasatinib\t\n")
    with pytest.raises(InputError, match=r"targets\.tsv, line 6: every row needs a drug and a target"):
        read_target_table(table)
    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes(b"drug\ttarget\ncaf\xe9ine\tADORA2A\n")
    with pytest.raises(InputError, match=r"latin1\.tsv is not UTF-8"):
        read_target_table(latin1)
