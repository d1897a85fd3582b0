"""Tahoe per-plate layout: plate-matched responses, plate-vote DEG and the 10 × 20 ceiling, checked by hand."""

import numpy as np
import pytest

from embhub.datasets.ceiling import ceiling_of_prepared
from embhub.datasets.prepare import prepare_dataset
from embhub_datasets.tahoe import Tahoe
from tests.datasets.layouts import normalised, reference_ceiling_plate, reference_plate_matched, tahoe_plate_files


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
