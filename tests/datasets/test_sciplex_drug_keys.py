"""sciPlex3 drugs keyed by InChIKey through a user's drug table, and matched by drug stores on any key."""

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from embhub.datasets.prepare import prepare_dataset
from embhub.errors import InputError
from embhub.evaluate.runner import evaluate
from embhub.interchange import write_store
from embhub_datasets.sciplex3 import Sciplex3
from tests.datasets.layouts import sciplex_files

DEXAMETHASONE = "C[C@@H]1C[C@H]2[C@@H]3CCC4=CC(=O)C=C[C@]4(C)[C@@]3(F)[C@@H](O)C[C@]2(C)[C@@]1(O)C(=O)CO"
VORINOSTAT = "O=C(CCCCCCC(=O)Nc1ccccc1)NO"


def inchikey(smiles: str) -> str:
    return Chem.MolToInchiKey(Chem.MolFromSmiles(smiles))


def drug_table(path, rows) -> str:
    pd.DataFrame(rows, columns=["name", "smiles"]).to_csv(path, index=False)
    return path


def store(path, ids, vectors, namespace="inchikey"):
    vectors = np.asarray(vectors, dtype=np.float32)
    return write_store(
        path, np.asarray(ids), iter([vectors]), vectors.shape[1],
        name=path.stem, entity="drug", key_namespace=namespace, source="test",
    )


def test_drug_table_keys_drugs_by_inchikey_with_the_same_responses(tmp_path):
    paths, _, _, _ = sciplex_files(tmp_path)
    by_name = prepare_dataset(Sciplex3(), paths, tmp_path / "by_name.zarr")
    # "Vorinostat" meets the screen's "SAHA (Vorinostat)" by its parenthesised name
    table = drug_table(tmp_path / "drugs.csv", [("Dex", DEXAMETHASONE), ("Vorinostat", VORINOSTAT)])
    by_key = prepare_dataset(Sciplex3(), [*paths, table], tmp_path / "by_key.zarr")

    assert by_name.key_namespace == "drug_name" and by_key.key_namespace == "inchikey"
    expected_key = {"Dex": inchikey(DEXAMETHASONE), "SAHA (Vorinostat)": inchikey(VORINOSTAT)}
    for line in ("A549", "MCF7"):
        named, keyed = by_name.cell_line(line), by_key.cell_line(line)
        assert list(named.pert_ids) == ["Dex", "SAHA (Vorinostat)"]
        labels = list(keyed.pert_labels)
        assert sorted(labels) == ["Dex", "SAHA (Vorinostat)"]
        assert list(keyed.pert_ids) == [expected_key[label] for label in labels]
        assert list(keyed.pert_aliases("inchikey")) == list(keyed.pert_ids)
        assert list(keyed.pert_aliases("drug_name")) == ["drug_name:" + label.casefold() for label in labels]
        smiles = {"Dex": DEXAMETHASONE, "SAHA (Vorinostat)": VORINOSTAT}
        assert [inchikey(s) for s in keyed.pert_aliases("smiles")] == [inchikey(smiles[label]) for label in labels]
        order = [list(named.pert_ids).index(label) for label in labels]
        np.testing.assert_array_equal(keyed.lfc, named.lfc[order])
        np.testing.assert_array_equal(keyed.deg, named.deg[order])
        np.testing.assert_array_equal(keyed.n_cells, named.n_cells[order])
        np.testing.assert_array_equal(keyed.folds, named.folds[order])  # folds follow the names, not the keys
        assert list(named.pert_aliases("drug_name")) == ["drug_name:dex", "drug_name:saha (vorinostat)"]
    notes = " ".join(by_key.manifest["notes"])
    assert "keyed by inchikey from drug table drugs.csv (2 of 2)" in notes
    assert "'SAHA (Vorinostat)' → 'Vorinostat'" in notes


def test_missing_drug_and_bad_smiles_are_one_line_errors(tmp_path):
    paths, _, _, _ = sciplex_files(tmp_path)
    missing = drug_table(tmp_path / "missing.csv", [("Dex", DEXAMETHASONE)])
    not_in_table = r"1 drug\(s\) of the sciPlex3 screen are not in the drug table .*'SAHA \(Vorinostat\)'"
    with pytest.raises(InputError, match=not_in_table) as error:
        prepare_dataset(Sciplex3(), [*paths, missing], tmp_path / "a.zarr")
    assert "\n" not in str(error.value)
    bad = drug_table(tmp_path / "bad.csv", [("Dex", DEXAMETHASONE), ("SAHA (Vorinostat)", "C1CC(")])
    with pytest.raises(InputError, match="drug 'SAHA \\(Vorinostat\\)': invalid SMILES 'C1CC\\('") as error:
        prepare_dataset(Sciplex3(), [*paths, bad], tmp_path / "b.zarr")
    assert "\n" not in str(error.value)
    twice = [("Dex", DEXAMETHASONE), ("SAHA (Vorinostat)", VORINOSTAT), ("Other", "CC"), ("other", "CCC")]
    prepare_dataset(Sciplex3(), [*paths, drug_table(tmp_path / "unused.csv", twice)], tmp_path / "u.zarr")
    twice = [("Dex", DEXAMETHASONE), ("dex", VORINOSTAT), ("SAHA (Vorinostat)", VORINOSTAT)]
    with pytest.raises(InputError, match="row 3: drug 'Dex' is listed twice with different structures"):
        prepare_dataset(Sciplex3(), [*paths, drug_table(tmp_path / "twice.csv", twice)], tmp_path / "t.zarr")
    shared = drug_table(tmp_path / "shared.csv", [("Dex", VORINOSTAT), ("SAHA (Vorinostat)", VORINOSTAT)])
    with pytest.raises(InputError, match="'Dex' and 'SAHA \\(Vorinostat\\)' get the same key"):
        prepare_dataset(Sciplex3(), [*paths, shared], tmp_path / "c.zarr")


def test_a_row_without_structure_keeps_the_name_key_and_says_so(tmp_path):
    paths, _, _, _ = sciplex_files(tmp_path)
    table = drug_table(tmp_path / "drugs.tsv", [("Dex", DEXAMETHASONE), ("SAHA (Vorinostat)", "")])
    pd.read_csv(table).to_csv(table, sep="\t", index=False)
    prepared = prepare_dataset(Sciplex3(), [*paths, table], tmp_path / "p.zarr")
    data = prepared.cell_line("A549")
    assert dict(zip(data.pert_labels, data.pert_ids)) == {
        "Dex": inchikey(DEXAMETHASONE),
        "SAHA (Vorinostat)": "drug_name:saha (vorinostat)",
    }
    assert dict(zip(data.pert_labels, data.pert_aliases("inchikey"))) == {
        "Dex": inchikey(DEXAMETHASONE),
        "SAHA (Vorinostat)": "",
    }
    assert any("keep a name key" in note and "SAHA (Vorinostat)" in note for note in prepared.manifest["notes"])


def test_cid_only_table_keys_by_pubchem_cid(tmp_path):
    paths, _, _, _ = sciplex_files(tmp_path)
    table = tmp_path / "cids.csv"
    pd.DataFrame({"product_name": ["Dex", "SAHA (Vorinostat)"], "pubchem_cid": [5743.0, 5311]}).to_csv(table, index=False)
    prepared = prepare_dataset(Sciplex3(), [*paths, table], tmp_path / "p.zarr")
    assert prepared.key_namespace == "pubchem_cid"
    data = prepared.cell_line("MCF7")
    assert dict(zip(data.pert_labels, data.pert_ids)) == {"Dex": "5743", "SAHA (Vorinostat)": "5311"}
    assert prepared.cell_line("MCF7").pert_aliases("inchikey") is None


DRUGS = [f"Drug {i}" for i in range(20)]
ALKANES = ["C" * (i + 1) for i in range(20)]
"""Enough drugs for evaluate (10 training perturbations per fold), each a distinct valid molecule."""


def test_inchikey_and_name_key_stores_are_matched_by_evaluate(tmp_path):
    paths, _, _, _ = sciplex_files(tmp_path, drugs=DRUGS)
    table = drug_table(tmp_path / "drugs.csv", list(zip(DRUGS, ALKANES)))
    by_key = prepare_dataset(Sciplex3(), [*paths, table], tmp_path / "by_key.zarr")
    by_name = prepare_dataset(Sciplex3(), paths, tmp_path / "by_name.zarr")
    vectors = np.random.default_rng(0).normal(size=(len(DRUGS), 16))

    # A Morgan-like store: keyed by the InChIKeys rdkit gives the table's SMILES; one drug it lacks.
    morgan = store(tmp_path / "morgan.zarr", [inchikey(s) for s in ALKANES[1:]], vectors[1:])
    coverage = evaluate(by_key, [morgan], folds=[0], baselines=False).coverage
    assert set(coverage["n_covered"]) == {len(DRUGS) - 1} and set(coverage["n_perturbations"]) == {len(DRUGS)}

    # A drug-targets-style store: structure-less drugs keyed 'drug_name:<case-folded name>'.
    targets = store(tmp_path / "targets.zarr", [f"drug_name:drug {i}" for i in range(3, 20)], vectors[3:])
    coverage = evaluate(by_name, [targets], folds=[0], baselines=False).coverage
    assert set(coverage["n_covered"]) == {17} and set(coverage["harmonised_ids"]) == {17}
    # ...and on the InChIKey-keyed dataset, through its drug_name aliases
    coverage = evaluate(by_key, [targets], folds=[0], baselines=False).coverage
    assert set(coverage["n_covered"]) == {17}


def test_show_prints_the_manifest_notes(tmp_path):
    from tests.support.cli import run_cli

    paths, _, _, _ = sciplex_files(tmp_path)
    table = drug_table(tmp_path / "drugs.csv", [("Dex", DEXAMETHASONE), ("Vorinostat", VORINOSTAT)])
    prepare_dataset(Sciplex3(), [*paths, table], tmp_path / "by_key.zarr")
    outcome = run_cli("datasets", "show", tmp_path / "by_key.zarr")
    assert outcome.exit_code == 0, outcome
    assert "note:" in outcome.stderr and "keyed by inchikey from drug table drugs.csv (2 of 2)" in outcome.stderr
