"""The ceiling bootstrap against a by-hand bootstrap on the dense matrix (same seed scheme)."""

import numpy as np

from embhub.datasets.ceiling import ceiling_of_prepared
from embhub.datasets.prepare import prepare_dataset
from embhub_datasets.essential import Essential
from tests.datasets.layouts import (
    reference_ceiling_pooled,
    reference_deg_ceiling_pooled,
    reference_pooled,
    replogle_file,
)


def test_pooled_ceiling_matches_dense_bootstrap(tmp_path):
    raw = replogle_file(tmp_path / "raw.h5ad", seed=3)
    prepare_dataset(Essential(), [raw], tmp_path / "ess.zarr")
    prepared = ceiling_of_prepared(str(tmp_path / "ess.zarr"), n_jobs=2)
    for line in prepared.cell_lines:
        data = prepared.cell_line(line)
        expected = reference_ceiling_pooled(raw, line)
        assert data.ceiling_quantiles() == [0.1, 0.2, 0.5, 0.8, 0.9, 0.99, 0.995]
        stored = np.asarray(data.group["ceiling/l2"][:])
        for row, pert in enumerate(data.pert_ids):
            np.testing.assert_allclose(stored[row], expected[pert], rtol=1e-6, atol=1e-6)
        q90 = np.array([expected[p][4] for p in data.pert_ids])
        assert abs(prepared.manifest["ceiling"]["summary"][line]["cell_line_l2_q0.9"] - q90.mean()) < 1e-6


def test_pooled_deg_ceiling_matches_resampling_by_hand(tmp_path):
    raw = replogle_file(tmp_path / "raw.h5ad", seed=4)
    prepare_dataset(Essential(), [raw], tmp_path / "ess.zarr")
    prepared = ceiling_of_prepared(str(tmp_path / "ess.zarr"))
    truths = reference_pooled(raw)
    for line in prepared.cell_lines:
        data = prepared.cell_line(line)
        truth = truths[line]["deg"]
        assert sorted(truth) == sorted(p for p, m in zip(data.pert_ids, data.deg_mask) if m)
        folds = dict(zip(data.pert_ids, data.folds))
        expected = reference_deg_ceiling_pooled(raw, line, truth, folds)
        quantiles = list(data.group["deg_ceiling"].attrs["quantiles"])
        for column, q in enumerate((0.1, 0.5)):
            stored = np.asarray(data.group["deg_ceiling/f1"][:, quantiles.index(q)])
            np.testing.assert_allclose(stored, expected[:, column], rtol=1e-6, atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(data.deg_ceiling(0.1), expected[:, 0], atol=1e-6, equal_nan=True)
        summary = prepared.manifest["ceiling"]["summary"][line]
        assert abs(summary["cell_line_deg_f1_q0.1"] - np.nanmedian(expected[:, 0])) < 1e-6
        assert np.nanmax(expected[:, 0]) < 1.0  # resampling does change some calls


def test_moved_raw_files_are_matched_whatever_their_order(tmp_path):
    """`ceiling --raw` names files that moved; a shell glob orders them its own way. The same files in another
    order give the same ceiling; a file that is not one of them is named in one line."""
    import pytest

    from embhub.errors import InputError
    from embhub_datasets.sciplex3 import Sciplex3
    from tests.datasets.layouts import sciplex_files

    paths, _, _, _ = sciplex_files(tmp_path)
    prepare_dataset(Sciplex3(), paths, tmp_path / "s.zarr")
    in_order = ceiling_of_prepared(str(tmp_path / "s.zarr"), deg=False)
    expected = np.asarray(in_order.cell_line("MCF7").group["ceiling/l2"][:])
    shuffled = ceiling_of_prepared(str(tmp_path / "s.zarr"), [str(p) for p in reversed(paths)], deg=False)
    np.testing.assert_array_equal(np.asarray(shuffled.cell_line("MCF7").group["ceiling/l2"][:]), expected)
    stranger = tmp_path / "other_pData.txt"
    stranger.write_text("cell\tcell_type\n")
    with pytest.raises(InputError) as error:
        ceiling_of_prepared(str(tmp_path / "s.zarr"), [str(p) for p in paths[:3]] + [str(stranger), str(paths[4])])
    assert "GSM4150378_sciPlex3_pData.txt" in str(error.value) and "\n" not in str(error.value)
