"""Bad raw input fails with one clear line naming the problem; nothing is silently dropped."""

import anndata as ad
import numpy as np
import pytest

from embhub.datasets.prepare import prepare_dataset
from embhub.errors import InputError
from embhub_datasets.essential import Essential
from tests.datasets.layouts import replogle_file


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return replogle_file(tmp_path_factory.mktemp("raw") / "raw.h5ad")


def rewrite(good, path, change):
    adata = ad.read_h5ad(good)
    change(adata)
    adata.write_h5ad(path)
    return path


def test_missing_required_column(good, tmp_path):
    path = rewrite(good, tmp_path / "x.h5ad", lambda a: a.obs.drop(columns="gem_group", inplace=True))
    with pytest.raises(InputError, match="no column 'gem_group'") as error:
        prepare_dataset(Essential(), [path], tmp_path / "x.zarr")
    assert "\n" not in str(error.value)


def test_no_control_cells(good, tmp_path):
    def no_controls(adata):
        adata.obs["is_control"] = False
        adata.obs["gene"] = adata.obs["gene"].astype(str).replace("non-targeting", "G9")

    path = rewrite(good, tmp_path / "x.h5ad", no_controls)
    with pytest.raises(InputError, match="cell line 'K-562' has no control cells"):
        prepare_dataset(Essential(), [path], tmp_path / "x.zarr")


def test_log_transformed_counts_are_refused(good, tmp_path):
    def log_transform(adata):
        adata.X.data = np.log1p(adata.X.data)

    path = rewrite(good, tmp_path / "x.h5ad", log_transform)
    with pytest.raises(InputError, match="not a count.*raw counts"):
        prepare_dataset(Essential(), [path], tmp_path / "x.zarr")


def test_wrong_file_for_dataset(good, tmp_path):
    from embhub_datasets.tahoe import Tahoe

    with pytest.raises(InputError, match="no column 'drug'"):
        prepare_dataset(Tahoe(), [good], tmp_path / "x.zarr")


def test_a_gzip_compressed_h5ad_says_to_decompress_it(good, tmp_path):
    import gzip
    import shutil

    compressed = tmp_path / "K562.h5ad.gz"
    with open(good, "rb") as source, gzip.open(compressed, "wb") as target:
        shutil.copyfileobj(source, target)
    with pytest.raises(InputError, match=r"gzip-compressed.*gunzip -k .*K562\.h5ad\.gz") as error:
        prepare_dataset(Essential(), [compressed], tmp_path / "x.zarr")
    assert "\n" not in str(error.value)


def test_missing_raw_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        prepare_dataset(Essential(), [tmp_path / "nope.h5ad"], tmp_path / "x.zarr")


def test_two_drugs_sharing_one_key_are_refused_not_pooled(tmp_path):
    """Tahoe keys drugs by PubChem CID: two drug names with one CID would pool two drugs into one response."""
    from embhub_datasets.tahoe import Tahoe
    from tests.datasets.layouts import tahoe_plate_files

    paths, gene_list, _, _ = tahoe_plate_files(tmp_path)
    for path in paths:
        rewrite(path, path, lambda a: a.obs.__setitem__("pubchem_cid", a.obs["pubchem_cid"].replace(202, 101)))
    with pytest.raises(InputError) as error:
        prepare_dataset(Tahoe(), [*paths, gene_list], tmp_path / "x.zarr")
    message = str(error.value)
    assert "'DrugA'" in message and "'DrugB'" in message and "'101'" in message and "CVCL_0023" in message
    assert "\n" not in message


def test_a_prepared_dataset_missing_a_response_chunk_is_refused_not_read_as_zeros(good, tmp_path):
    """A partial copy loses chunk files; zarr would fill the lost responses with zeros, silently."""
    import shutil

    from embhub.datasets.prepared import PreparedDataset
    from embhub.errors import StoreError

    prepared = prepare_dataset(Essential(), [good], tmp_path / "x.zarr")
    assert np.abs(prepared.cell_line("K-562").lfc).sum() > 0
    shutil.rmtree(tmp_path / "x.zarr" / "cell_lines" / "K-562" / "lfc" / "c")
    with pytest.raises(StoreError) as error:
        PreparedDataset.open(tmp_path / "x.zarr").cell_line("K-562").lfc
    assert "damaged" in str(error.value) and "K-562/lfc" in str(error.value) and "\n" not in str(error.value)
    np.testing.assert_array_equal(
        PreparedDataset.open(tmp_path / "x.zarr").cell_line("hTERT-RPE1").lfc, prepared.cell_line("hTERT-RPE1").lfc
    )


def test_out_that_is_not_a_prepared_dataset_is_refused_not_wiped(good, tmp_path):
    """``--out`` naming a folder of other files must not delete them; re-preparing a dataset still replaces it."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(InputError) as error:
        prepare_dataset(Essential(), [good], folder)
    assert str(folder) in str(error.value) and "not a prepared dataset" in str(error.value)
    assert "\n" not in str(error.value)
    assert (folder / "notes.txt").read_text() == "keep me"
    first = prepare_dataset(Essential(), [good], tmp_path / "x.zarr")
    again = prepare_dataset(Essential(), [good], tmp_path / "x.zarr")
    np.testing.assert_array_equal(again.cell_line("K-562").lfc, first.cell_line("K-562").lfc)


def test_a_cell_line_given_in_two_files_is_refused_not_merged(tmp_path):
    """Two Replogle K562 files (the same screen twice, or two screens) would pool their cells and merge GEM
    groups that only share a number; one line names both files."""
    first = replogle_file(tmp_path / "K562_essential_raw.h5ad", lines=("K-562",))
    second = replogle_file(tmp_path / "K562_gwps_raw.h5ad", seed=3, lines=("K-562",))
    other_line = replogle_file(tmp_path / "rpe1_raw.h5ad", lines=("hTERT-RPE1",))
    with pytest.raises(InputError, match=r"cell line 'K-562' has cells in both K562_essential_raw.h5ad and "
                                         r"K562_gwps_raw.h5ad; essential takes each cell line from one file") as error:
        prepare_dataset(Essential(), [first, other_line, second], tmp_path / "x.zarr")
    assert "\n" not in str(error.value)
    prepared = prepare_dataset(Essential(), [first, other_line], tmp_path / "ok.zarr")
    assert sorted(prepared.cell_lines) == ["K-562", "hTERT-RPE1"]


def test_norman_refuses_two_scperturb_files_instead_of_reading_the_last(tmp_path):
    from embhub_datasets.norman import Norman
    from tests.datasets.layouts import norman_files

    paths, *_ = norman_files(tmp_path)
    copy = tmp_path / "NormanWeissman2019_filtered_copy.h5ad"
    copy.write_bytes(paths[0].read_bytes())
    with pytest.raises(InputError, match="two scPerturb files given"):
        prepare_dataset(Norman(), [paths[0], copy, paths[1]], tmp_path / "n.zarr")
