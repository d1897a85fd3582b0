"""Essential / Replogle layout: responses and DEG labels against a whole-matrix computation."""

import numpy as np
import pytest

from embhub.datasets.prepare import prepare_dataset
from embhub_datasets.essential import Essential
from tests.datasets.layouts import reference_pooled, replogle_file


@pytest.fixture(scope="module")
def replogle(tmp_path_factory):
    return replogle_file(tmp_path_factory.mktemp("raw") / "raw_data.h5ad")


@pytest.fixture
def prepared(replogle, tmp_path):
    return prepare_dataset(Essential(), [replogle], tmp_path / "essential.zarr")


def test_responses_match_whole_matrix_computation(replogle, prepared):
    expected = reference_pooled(replogle)
    assert prepared.cell_lines == sorted(expected)
    for line, reference in expected.items():
        data = prepared.cell_line(line)
        assert list(data.pert_ids) == sorted(reference["lfc"])
        for row, pert in enumerate(data.pert_ids):
            np.testing.assert_allclose(data.lfc[row], reference["lfc"][pert], atol=1e-6)
            assert data.n_cells[row] == reference["cells"][pert]


def test_deg_labels_match_scipy_welch_and_bh(replogle, prepared):
    expected = reference_pooled(replogle)
    for line, reference in expected.items():
        data = prepared.cell_line(line)
        labelled = {p for p, m in zip(data.pert_ids, data.deg_mask) if m}
        assert labelled == set(reference["deg"])
        for row, pert in enumerate(data.pert_ids):
            if pert in reference["deg"]:
                np.testing.assert_array_equal(data.deg[row], reference["deg"][pert])
        assert any(np.abs(data.deg[r]).sum() > 0 for r in range(len(data.pert_ids)) if data.deg_mask[r])


def test_labels_batches_and_manifest(replogle, prepared):
    line = prepared.cell_line("K-562")
    assert list(line.pert_labels) == ["G0", "G1", "G2", "G3"]
    assert list(line.n_batches) == [3, 3, 2, 1]
    assert prepared.manifest["inputs"][0]["sha256"]
    assert prepared.manifest["protocol"]["control"] == "global"
    assert prepared.manifest["embhub_version"]
    assert set(line.folds) <= set(range(5))


def test_original_per_cell_line_files_without_cell_line_column(replogle, tmp_path):
    import anndata as ad

    adata = ad.read_h5ad(replogle)
    paths = []
    for line, name in (
        ("K-562", "K562_essential_raw_singlecell_01.h5ad"),
        ("hTERT-RPE1", "rpe1_raw_singlecell_01.h5ad"),
    ):
        part = adata[adata.obs["cell_line"] == line].copy()
        part.obs = part.obs.drop(columns=["cell_line", "is_control"])
        part.write_h5ad(tmp_path / name)
        paths.append(tmp_path / name)
    merged = prepare_dataset(Essential(), [replogle], tmp_path / "merged.zarr")
    split = prepare_dataset(Essential(), paths, tmp_path / "split.zarr")
    assert split.cell_lines == merged.cell_lines
    for line in merged.cell_lines:
        np.testing.assert_array_equal(split.cell_line(line).lfc, merged.cell_line(line).lfc)
        np.testing.assert_array_equal(split.cell_line(line).deg, merged.cell_line(line).deg)
