"""Morgan fingerprints equal rdkit's own, computed independently here; bad SMILES are recorded."""

import numpy as np
import pytest
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from embhub.store import EmbeddingStore
from tests.support.cli import assert_one_line_error, run_cli

DRUGS = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "ibuprofen": "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "thalidomide_s": "O=C1CC[C@H](N2C(=O)c3ccccc3C2=O)C(=O)N1",
    "thalidomide_r": "O=C1CC[C@@H](N2C(=O)c3ccccc3C2=O)C(=O)N1",
}


def expected_fingerprint(smiles, radius, n_bits, counts, chirality):
    mol = Chem.MolFromSmiles(smiles)
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits, includeChirality=chirality)
    if counts:
        vector = np.zeros(n_bits)
        for index, count in generator.GetCountFingerprint(mol).GetNonzeroElements().items():
            vector[index] = count
        return vector
    array = np.zeros(n_bits)
    DataStructs.ConvertToNumpyArray(generator.GetFingerprint(mol), array)
    return array


def write_registry(tmp_path, radius, n_bits, counts, chirality):
    path = tmp_path / "registry.yaml"
    path.write_text(
        "models:\n  fp:\n    provider: morgan\n"
        f"    parameters: {{radius: {radius}, n_bits: {n_bits}, counts: {str(counts).lower()}, chirality: {str(chirality).lower()}}}\n"
    )
    return path


@pytest.mark.parametrize(
    "radius,n_bits,counts,chirality",
    [(2, 2048, False, False), (1, 1024, True, False), (3, 512, False, True)],
)
def test_vectors_equal_rdkit_fingerprints(tmp_path, radius, n_bits, counts, chirality):
    table = tmp_path / "drugs.csv"
    table.write_text("name,smiles\n" + "".join(f"{k},{v}\n" for k, v in DRUGS.items()))
    registry = write_registry(tmp_path, radius, n_bits, counts, chirality)
    out = tmp_path / "fp.zarr"
    outcome = run_cli("extract", "--model", "fp", "--input", table, "--out", out, "--registry", registry, "--batch-size", 2)
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    assert list(store.input_ids) == list(DRUGS)
    for row, name in enumerate(store.input_ids):
        expected = expected_fingerprint(DRUGS[name], radius, n_bits, counts, chirality)
        np.testing.assert_array_equal(store.vectors()[row], expected)
        assert store.ids[row] == Chem.MolToInchiKey(Chem.MolFromSmiles(DRUGS[name]))
    assert store.dim == n_bits
    chiral_rows = store.vectors()[[3, 4]]
    assert (not np.array_equal(*chiral_rows)) == chirality


def test_invalid_smiles_is_a_recorded_failure_naming_the_row(tmp_path):
    table = tmp_path / "drugs.csv"
    table.write_text("id,smiles\naspirin,CC(=O)Oc1ccccc1C(=O)O\nbroken,C1CC(\nblank,\ncaffeine,Cn1cnc2c1c(=O)n(C)c(=O)n2C\n")
    out = tmp_path / "fp.zarr"
    outcome = run_cli("extract", "-m", "morgan-2-2048", "-i", table, "-o", out)
    assert outcome.exit_code == 0
    assert "failed row 3 ('broken'): invalid SMILES 'C1CC('" in outcome.stderr
    store = EmbeddingStore.open(out)
    assert list(store.input_ids) == ["aspirin", "caffeine"]
    failures = {f["input_id"]: f for f in store.failures()}
    assert failures["broken"]["row"] == 3 and "invalid SMILES" in failures["broken"]["reason"]
    assert failures["blank"]["reason"] == "empty SMILES"
    assert store.manifest["counts"] == {"done": 2, "failed": 2}


def test_two_spellings_of_one_molecule_share_one_key_and_the_second_is_reported(tmp_path):
    table = tmp_path / "drugs.csv"
    table.write_text("id,smiles\na,CC(=O)Oc1ccccc1C(=O)O\nb,OC(=O)c1ccccc1OC(C)=O\n")
    out = tmp_path / "fp.zarr"
    assert run_cli("extract", "-m", "morgan-2-2048", "-i", table, "-o", out).exit_code == 0
    store = EmbeddingStore.open(out)
    assert list(store.input_ids) == ["a"]
    assert "same inchikey BSYNRYMUTXBXSQ-UHFFFAOYSA-N as input 'a'" in store.failures()[0]["reason"]


def test_plain_smiles_list_uses_smi_layout(tmp_path):
    listing = tmp_path / "drugs.smi"
    listing.write_text("# a comment\nCC(=O)Oc1ccccc1C(=O)O aspirin\nCn1cnc2c1c(=O)n(C)c(=O)n2C\n")
    out = tmp_path / "fp.zarr"
    assert run_cli("extract", "-m", "morgan-2-2048", "-i", listing, "-o", out).exit_code == 0
    store = EmbeddingStore.open(out)
    assert list(store.input_ids) == ["aspirin", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"]
    assert list(store.labels("canonical_smiles"))[0] == "CC(=O)Oc1ccccc1C(=O)O"


def test_empty_input_and_duplicate_ids_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("id,smiles\n")
    assert_one_line_error(run_cli("extract", "-m", "morgan-2-2048", "-i", empty), "holds no items")
    dup = tmp_path / "dup.csv"
    dup.write_text("id,smiles\nx,CCO\ny,CCC\nx,CCN\n")
    assert_one_line_error(run_cli("extract", "-m", "morgan-2-2048", "-i", dup), "id 'x' appears on rows 2 and 4")
    missing_column = tmp_path / "nocol.csv"
    missing_column.write_text("id,structure\nx,CCO\n")
    assert_one_line_error(run_cli("extract", "-m", "morgan-2-2048", "-i", missing_column), "no value column", "--value-column")
    ok = run_cli("extract", "-m", "morgan-2-2048", "-i", missing_column, "--value-column", "structure", "-o", tmp_path / "s.zarr")
    assert ok.exit_code == 0


def test_set_overrides_an_entry_parameter_for_one_run(tmp_path, isolated_home):
    table = tmp_path / "drugs.csv"
    table.write_text("name,smiles\n" + "".join(f"{k},{v}\n" for k, v in DRUGS.items()))
    outcome = run_cli("extract", "-m", "morgan-2-2048", "-i", table, "--set", "radius=3", "--set", "n_bits=256", "--set", "counts=true")
    assert outcome.exit_code == 0, outcome
    written = [p for p in (isolated_home / "stores" / "morgan-2-2048").glob("*.zarr")]
    assert len(written) == 1 and "-set-" in written[0].name
    store = EmbeddingStore.open(written[0])
    for row, name in enumerate(store.input_ids):
        np.testing.assert_array_equal(store.vectors()[row], expected_fingerprint(DRUGS[name], 3, 256, True, False))
    model = store.manifest["model"]
    assert model["overrides"] == {"radius": 3, "n_bits": 256, "counts": True} and "--set" in model["source"]
    plain = run_cli("extract", "-m", "morgan-2-2048", "-i", table)
    assert plain.exit_code == 0, plain
    assert len(list((isolated_home / "stores" / "morgan-2-2048").glob("*.zarr"))) == 2


@pytest.mark.parametrize(
    "assignment,fragments",
    [("radius", ["--set 'radius' is not KEY=VALUE"]), ("bogus=1", ["no parameter 'bogus'"]), ("radius=two", ["'radius' = 'two' should be int"])],
)
def test_bad_set_is_a_one_line_error(tmp_path, assignment, fragments):
    table = tmp_path / "drugs.csv"
    table.write_text("name,smiles\naspirin,CC(=O)Oc1ccccc1C(=O)O\n")
    assert_one_line_error(run_cli("extract", "-m", "morgan-2-2048", "-i", table, "-o", tmp_path / "s.zarr", "--set", assignment), *fragments)
