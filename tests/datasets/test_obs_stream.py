"""obs columns read block by block equal anndata's whole-table read, for each column encoding."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from embhub.datasets.cells import ObsColumns
from embhub.errors import InputError


def test_blocks_match_anndata_for_every_encoding(tmp_path):
    n = 50
    rng = np.random.default_rng(0)
    obs = pd.DataFrame(
        {
            "categorical": pd.Categorical(rng.choice(["a", "b", "c"], n)),
            "strings": np.array([f"s{i}" for i in range(n)], dtype=object),
            "integers": rng.integers(0, 9, n),
            "floats": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
            "flags": rng.random(n) < 0.5,
            "nullable_int": pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64"),
            "nullable_bool": pd.array([None if i % 5 == 0 else i % 2 == 0 for i in range(n)], dtype="boolean"),
        },
        index=[f"c{i}" for i in range(n)],
    )
    path = tmp_path / "x.h5ad"
    ad.AnnData(obs=obs).write_h5ad(path)
    expected = ad.read_h5ad(path).obs
    reader = ObsColumns(path, block_cells=7)
    assert reader.n_rows == n and reader.names == list(obs.columns)
    blocks = list(reader.blocks(list(obs.columns)))
    assert [start for start, _ in blocks] == list(range(0, n, 7))
    streamed = pd.concat([block for _, block in blocks], ignore_index=True)
    for column in obs.columns:
        got = pd.Series(streamed[column]).astype(object).where(pd.notna(streamed[column]), None).tolist()
        want = expected[column].astype(object).where(pd.notna(expected[column]), None).tolist()
        assert got == want, column


def test_missing_column_is_one_line(tmp_path):
    path = tmp_path / "x.h5ad"
    ad.AnnData(obs=pd.DataFrame({"a": [1, 2]}, index=["x", "y"])).write_h5ad(path)
    with pytest.raises(InputError, match="obs has no column 'gem_group'"):
        next(ObsColumns(path).blocks(["gem_group"]))
