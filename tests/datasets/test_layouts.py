"""sciPlex3 GEO triplets and Norman (scPerturb + GEARS): responses and DEG labels checked by hand."""

import numpy as np
from scipy import stats

from embhub.datasets.ceiling import ceiling_of_prepared
from embhub.datasets.prepare import prepare_dataset
from embhub_datasets.norman import Norman
from embhub_datasets.sciplex3 import Sciplex3
from tests.datasets.layouts import (
    bh_by_hand,
    norman_files,
    normalised,
    reference_ceiling_global,
    reference_ceiling_plate,
    reference_plate_matched,
    sciplex_files,
)


def test_sciplex_triplets(tmp_path):
    paths, counts, cells, panel = sciplex_files(tmp_path)
    prepared = prepare_dataset(Sciplex3(), paths, tmp_path / "sciplex.zarr")
    expected = reference_plate_matched(normalised(counts, panel, "all"), normalised(counts, panel, "panel"), cells)
    assert list(prepared.genes) == [f"ENSG{i:011d}" for i in panel]
    for line in ("A549", "MCF7"):
        data = prepared.cell_line(line)
        assert list(data.pert_ids) == ["Dex", "SAHA (Vorinostat)"]
        for row, pert in enumerate(data.pert_ids):
            np.testing.assert_allclose(data.lfc[row], expected[line]["lfc"][pert], atol=1e-6)
            np.testing.assert_array_equal(data.deg[row], expected[line]["deg"][pert])
    assert prepared.manifest["exclusions"]["cells at doses other than 10000 nM"] == 32
    prepared = ceiling_of_prepared(str(prepared.path))
    x = normalised(counts, panel, "panel")
    reference = reference_ceiling_plate(x, cells, "MCF7")
    stored = np.asarray(prepared.cell_line("MCF7").group["ceiling/l2"][:])
    np.testing.assert_allclose(stored[0], reference["Dex"], rtol=1e-6, atol=1e-6)


def test_norman_scperturb_with_gears_panel(tmp_path):
    paths, counts, cells, panel = norman_files(tmp_path)
    prepared = prepare_dataset(Norman(), paths, tmp_path / "norman.zarr")
    x = normalised(counts, panel, "panel")
    expected = reference_plate_matched(x, x, cells, min_cells=10**9)
    data = prepared.cell_line("K-562")
    assert len(prepared.genes) == len(panel)
    assert list(data.pert_ids) == sorted(expected["K-562"]["lfc"])
    assert "ENSG00000099625" in data.pert_ids  # C19orf26, mapped by hand as in the study
    for row, pert in enumerate(data.pert_ids):
        np.testing.assert_allclose(data.lfc[row], expected["K-562"]["lfc"][pert], atol=1e-6)
    controls = cells.index[cells["is_control"]].to_numpy()
    n0 = cells.index[cells["pert"] == "ENSG00000000500"].to_numpy()
    t, p = stats.ttest_ind(x[n0], x[controls], equal_var=False)
    expected_deg = np.sign(np.nan_to_num(t)) * (bh_by_hand(np.where(np.isnan(p), 1, p)) < 0.05)
    row = list(data.pert_ids).index("ENSG00000000500")
    assert data.deg_mask[row] and not data.deg_mask[list(data.pert_ids).index("ENSG00000000501")]
    np.testing.assert_array_equal(data.deg[row], expected_deg)
    assert prepared.manifest["exclusions"]["cells with more than one perturbation"] == 15
    prepared = ceiling_of_prepared(str(prepared.path))
    expected_ceiling = reference_ceiling_global(x, cells, "K-562")
    stored = np.asarray(prepared.cell_line("K-562").group["ceiling/l2"][:])
    for row, pert in enumerate(data.pert_ids):
        np.testing.assert_allclose(stored[row], expected_ceiling[pert], rtol=1e-6, atol=1e-6)
    assert prepared.manifest["ceiling"]["control"] == "global"


def test_norman_gene_without_ensembl_id_is_left_out_by_name(tmp_path):
    """A symbol whose scPerturb ``ensemble_id`` is missing keys neither a perturbation nor a panel gene ("nan")."""
    paths, counts, cells, panel = norman_files(tmp_path, no_ensembl=("N1", "N7"))
    prepared = prepare_dataset(Norman(), paths[:1], tmp_path / "norman.zarr")
    data = prepared.cell_line("K-562")
    assert "nan" not in list(prepared.genes) and "nan" not in list(data.pert_ids)
    assert list(prepared.genes) == [f"ENSG{500 + i:011d}" for i in range(30) if i not in (1, 7)]
    assert list(data.pert_ids) == ["ENSG00000000500", "ENSG00000099625"]
    n1_cells = int((cells["pert"] == "ENSG00000000501").sum())
    assert prepared.manifest["exclusions"]["cells whose target symbol has no Ensembl id"] == n1_cells
    assert any("2 scPerturb genes without an Ensembl id" in note for note in prepared.manifest["notes"])
