"""Tahoe per-plate layout: plate-matched responses, plate-vote DEG and the 10 × 20 ceiling, checked by hand."""

import numpy as np
import pytest

from embhub.datasets.ceiling import ceiling_of_prepared
from embhub.datasets.prepare import prepare_dataset
from embhub_datasets.tahoe import Tahoe
from tests.datasets.layouts import (
    TAHOE_DRUGS,
    normalised,
    reference_ceiling_plate,
    reference_deg_ceiling_plate,
    reference_plate_matched,
    tahoe_metadata_files,
    tahoe_plate_files,
)

TAHOE_DRUGS_BY_CID = {str(int(cid)): drug for drug, (cid, *_) in TAHOE_DRUGS.items()}


@pytest.fixture(scope="module")
def tahoe(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tahoe")
    paths, gene_list, counts, cells = tahoe_plate_files(directory)
    prepared = prepare_dataset(Tahoe(), [*paths, gene_list], directory / "tahoe.zarr")
    panel = np.arange(counts.shape[1] - 5)
    return prepared, counts, cells, panel


def test_responses_and_deg_match_by_hand(tahoe):
    prepared, counts, cells, panel = tahoe
    expected = reference_plate_matched(normalised(counts, panel, "all"), normalised(counts, panel, "panel"), cells)
    assert prepared.cell_lines == ["CVCL_0023", "CVCL_0480"]
    assert len(prepared.genes) == len(panel)
    for line in prepared.cell_lines:
        data = prepared.cell_line(line)
        assert sorted(data.pert_ids) == sorted(expected[line]["lfc"])
        for row, pert in enumerate(data.pert_ids):
            np.testing.assert_allclose(data.lfc[row], expected[line]["lfc"][pert], atol=1e-6)
            assert data.n_batches[row] == len(expected[line]["batches"][pert])
            assert data.deg_mask[row] == (pert in expected[line]["deg"])
            if pert in expected[line]["deg"]:
                np.testing.assert_array_equal(data.deg[row], expected[line]["deg"][pert])


def test_exclusions_are_reported(tahoe):
    prepared, _, cells, _ = tahoe
    exclusions = prepared.manifest["exclusions"]
    assert exclusions["CVCL_0480: perturbations with cells in no batch that has controls"] == 1
    assert exclusions["cells failing pass_filter"] == int((~cells["passed"]).sum())
    assert exclusions["cells of the five low-quality cell lines"] == int(
        ((cells["cell_line"] == "CVCL_1571") & cells["passed"]).sum()
    )
    assert "cells at doses other than 5.0 µM" in exclusions
    assert "CVCL_0480: cells in batches without controls" in exclusions


def test_plate_matched_ceiling_matches_by_hand(tahoe):
    prepared, counts, cells, panel = tahoe
    prepared = ceiling_of_prepared(str(prepared.path))
    x = normalised(counts, panel, "panel")
    for line in prepared.cell_lines:
        data = prepared.cell_line(line)
        expected = reference_ceiling_plate(x, cells, line)
        stored = np.asarray(data.group["ceiling/l2"][:])
        for row, pert in enumerate(data.pert_ids):
            np.testing.assert_allclose(stored[row], expected[pert], rtol=1e-6, atol=1e-6)
    assert prepared.manifest["ceiling"]["n_inner"] == 20


def test_drugs_carry_smiles_and_inchikey_aliases(tahoe):
    from rdkit import Chem

    prepared = tahoe[0]
    data = prepared.cell_line("CVCL_0023")
    assert data.alias_namespaces() == ["inchikey", "smiles"]
    assert list(data.pert_ids) == ["101", "202"]
    assert list(data.pert_aliases("smiles")) == ["CCO", "c1ccccc1O"]
    expected = [Chem.MolToInchiKey(Chem.MolFromSmiles(s)) for s in ("CCO", "c1ccccc1O")]
    assert list(data.pert_aliases("inchikey")) == expected


def test_plate_vote_deg_ceiling_matches_resampling_by_hand(tahoe):
    prepared, counts, cells, panel = tahoe
    prepared = ceiling_of_prepared(str(prepared.path))
    truths = reference_plate_matched(normalised(counts, panel, "all"), normalised(counts, panel, "panel"), cells)
    x = normalised(counts, panel, "panel")
    assert prepared.manifest["ceiling"]["deg"]["replicates"] == "3 plate draws × 3 cell draws"
    for line in prepared.cell_lines:
        data = prepared.cell_line(line)
        truth = truths[line]["deg"]
        expected = reference_deg_ceiling_plate(x, cells, line, truth, dict(zip(data.pert_ids, data.folds)))
        quantiles = list(data.group["deg_ceiling"].attrs["quantiles"])
        for column, q in enumerate((0.1, 0.5)):
            stored = np.asarray(data.group["deg_ceiling/f1"][:, quantiles.index(q)])
            np.testing.assert_allclose(stored, expected[:, column], rtol=1e-6, atol=1e-6, equal_nan=True)
        assert np.isfinite(expected[:, 0]).any()


def test_metadata_parquets_key_drugs_and_genes(tahoe, tmp_path):
    """Per-plate files without CID/SMILES columns, plus the release's metadata parquets."""
    import anndata as ad
    from rdkit import Chem

    prepared, _, _, _ = tahoe
    directory = tmp_path / "raw"
    directory.mkdir()
    paths, gene_list, _, _ = tahoe_plate_files(directory)
    for path in paths:
        adata = ad.read_h5ad(path)
        adata.obs = adata.obs.drop(columns=["pubchem_cid", "canonical_smiles"])
        adata.write_h5ad(path)
    symbols = ad.read_h5ad(paths[0]).var_names
    gene_meta, drug_meta = tahoe_metadata_files(directory, symbols)
    joined = prepare_dataset(Tahoe(), [*paths, gene_list, gene_meta, drug_meta], tmp_path / "joined.zarr")
    assert list(joined.genes) == [f"ENSG{900000 + i:011d}" for i in range(len(joined.genes))]
    assert list(joined.gene_symbols) == list(prepared.genes)
    for line in prepared.cell_lines:
        alone, data = prepared.cell_line(line), joined.cell_line(line)
        assert list(data.pert_ids) == list(alone.pert_ids)
        np.testing.assert_array_equal(data.lfc, alone.lfc)
        np.testing.assert_array_equal(data.deg, alone.deg)
        drugs = [TAHOE_DRUGS_BY_CID[p] for p in data.pert_ids]
        assert list(data.pert_labels) == drugs
        assert list(data.pert_aliases("smiles")) == [TAHOE_DRUGS[d][1] for d in drugs]
        expected_keys = [Chem.MolToInchiKey(Chem.MolFromSmiles(TAHOE_DRUGS[d][1])) for d in drugs]
        assert list(data.pert_aliases("inchikey")) == expected_keys
        assert list(data.pert_annotation("moa-fine")) == [TAHOE_DRUGS[d][4] for d in drugs]
        assert list(data.pert_annotation("targets")) == [TAHOE_DRUGS[d][2] or "" for d in drugs]
        assert "human-approved" in data.annotation_fields()
    assert joined.manifest["exclusions"] == prepared.manifest["exclusions"]


def test_unrecognised_parquet_is_one_line(tahoe, tmp_path):
    import pandas as pd

    from embhub.errors import InputError

    bogus = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(bogus)
    with pytest.raises(InputError, match="neither Tahoe gene metadata"):
        prepare_dataset(Tahoe(), [bogus, *tahoe_plate_files(tmp_path)[0]], tmp_path / "x.zarr")


def write_splits(path, test_fold_by_drug, n_folds=5):
    """The study's ``tahoe_splits_drug.csv`` layout: drug, fold_0 … fold_4 with 'test' in the drug's fold."""
    import pandas as pd

    rows = [{"drug": drug, **{f"fold_{k}": "test" if k == fold else "train" for k in range(n_folds)}}
            for drug, fold in test_fold_by_drug.items()]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_the_studys_drug_splits_set_the_folds(tahoe, tmp_path):
    prepared, _, _, _ = tahoe
    paths, gene_list, _, _ = tahoe_plate_files(tmp_path)
    chosen = {"DrugA": 3, "DrugB": 0, "DrugC": 4, "DMSO_TF": 1, "NotInTheScreen": 2}
    splits = write_splits(tmp_path / "tahoe_splits_drug.csv", chosen)
    with_splits = prepare_dataset(Tahoe(), [*paths, gene_list, splits], tmp_path / "split.zarr")
    for line in prepared.cell_lines:
        alone, data = prepared.cell_line(line), with_splits.cell_line(line)
        assert list(data.pert_ids) == list(alone.pert_ids)
        np.testing.assert_array_equal(data.lfc, alone.lfc)
        assert list(data.folds) == [chosen[label] for label in data.pert_labels]
    assert with_splits.manifest["protocol"]["fold_rule"] == "given by tahoe_splits_drug.csv"
    assert any("study's drug splits" in note for note in with_splits.manifest["notes"])


@pytest.mark.parametrize(
    "content,fragment",
    [
        ({"DrugA": 3, "DrugC": 0}, "1 perturbation(s) of the screen have no fold there (first: 'DrugB')"),
        ("drug,split\nDrugA,test\n", "needs columns drug, fold_0"),
        ("drug,fold_0,fold_1\nDrugA,test,test\n", "drug 'DrugA' is 'test' in 2 fold columns"),
    ],
)
def test_bad_splits_files_are_one_line(tmp_path, content, fragment):
    from embhub.errors import InputError

    paths, gene_list, _, _ = tahoe_plate_files(tmp_path)
    splits = tmp_path / "splits.csv"
    if isinstance(content, dict):
        write_splits(splits, content)
    else:
        splits.write_text(content)
    with pytest.raises(InputError) as raised:
        prepare_dataset(Tahoe(), [*paths, gene_list, splits], tmp_path / "x.zarr")
    assert fragment in str(raised.value) and "\n" not in str(raised.value)


def test_cell_lines_named_by_cell_name_say_the_low_quality_lines_stay(tahoe, tmp_path):
    """The study's low-quality lines are Cellosaurus ids; files naming lines by ``cell_name`` cannot drop them,
    and the prepared dataset says so rather than keeping them silently."""
    import anndata as ad

    prepared, _, _, _ = tahoe
    assert not any("cell_name" in note for note in prepared.manifest["notes"])
    paths, gene_list, _, _ = tahoe_plate_files(tmp_path)
    for path in paths:
        data = ad.read_h5ad(path)
        data.obs = data.obs.rename(columns={"cell_line": "cell_name"})
        data.obs["cell_name"] = data.obs["cell_name"].astype(str).str.replace("CVCL_", "line ")
        data.write_h5ad(path)
    named = prepare_dataset(Tahoe(), [*paths, gene_list], tmp_path / "named.zarr")
    assert named.cell_lines == ["line 0023", "line 0480", "line 1571"]
    note = [note for note in named.manifest["notes"] if "cell_name" in note]
    assert len(note) == 1 and "CVCL_1571" in note[0] and "lines named otherwise were kept" in note[0]
