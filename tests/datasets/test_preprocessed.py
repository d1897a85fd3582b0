"""Importing the study's preprocessed task files keeps their responses, DEG labels and folds exactly."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from embhub.datasets.preprocessed import import_study_files
from embhub.errors import InputError


def essential_files(tmp_path):
    rng = np.random.default_rng(0)
    genes = [f"ENSG{i:011d}" for i in range(12)]
    rows = [(f"ENSG{900 + i:011d}", line, i % 5, f"S{i}") for line in ("K-562", "Jurkat") for i in range(9)]
    obs = pd.DataFrame(rows, columns=["gene_id", "cell_line", "test_split", "symbol"])
    obs.index = [f"{g}_{c}" for g, c, _, _ in rows]
    lfc = ad.AnnData(rng.normal(size=(len(obs), 12)).astype(np.float32), obs=obs, var=pd.DataFrame(index=genes))
    lfc.write_h5ad(tmp_path / "essential_pseudobulk_deltas_all_perts.h5ad")
    keep = obs.iloc[::-1].iloc[:-2]  # reversed order, two perturbations without DEG labels
    deg = ad.AnnData(
        rng.integers(-1, 2, size=(len(keep), 12)).astype(np.int8),
        obs=keep.drop(columns="symbol"),
        var=pd.DataFrame(index=genes),
    )
    deg.write_h5ad(tmp_path / "essential_deg_with_split.h5ad")
    return lfc, deg


def test_essential_import_keeps_values_and_folds(tmp_path):
    lfc, deg = essential_files(tmp_path)
    prepared = import_study_files(
        "essential",
        [tmp_path / "essential_pseudobulk_deltas_all_perts.h5ad", tmp_path / "essential_deg_with_split.h5ad"],
    )
    assert prepared.cell_lines == ["Jurkat", "K-562"]
    for line in prepared.cell_lines:
        data = prepared.cell_line(line)
        for row, pert in enumerate(data.pert_ids):
            source = lfc[(lfc.obs.gene_id == pert) & (lfc.obs.cell_line == line)]
            np.testing.assert_array_equal(data.lfc[row], source.X[0])
            assert data.folds[row] == int(source.obs.test_split.iloc[0])
            assert data.pert_labels[row] == source.obs.symbol.iloc[0]
            labelled = deg[(deg.obs.gene_id == pert) & (deg.obs.cell_line == line)]
            assert data.deg_mask[row] == (labelled.n_obs == 1)
            if labelled.n_obs:
                np.testing.assert_array_equal(data.deg[row], labelled.X[0])
    assert prepared.manifest["kind"] == "study-preprocessed"


def test_sciplex_fold_columns(tmp_path):
    obs = pd.DataFrame(
        {
            "drug": ["A", "B", "C"],
            "cell_line": ["A549"] * 3,
            "dose": ["10000.0"] * 3,
            **{f"fold_{k}": ["test" if k == i else "train" for i in range(3)] for k in range(5)},
        },
        index=["a", "b", "c"],
    )
    var = pd.DataFrame({"ensembl_gene_id": ["ENSG1", "ENSG2"], "symbol": ["X", "Y"]}, index=["X", "Y"])
    ad.AnnData(np.ones((3, 2), dtype=np.float32), obs=obs, var=var).write_h5ad(tmp_path / "s.h5ad")
    prepared = import_study_files("sciplex3", [tmp_path / "s.h5ad"], tmp_path / "s.zarr")
    assert list(prepared.cell_line("A549").folds) == [0, 1, 2]
    assert list(prepared.genes) == ["ENSG1", "ENSG2"]


def test_file_without_folds_is_refused(tmp_path):
    obs = pd.DataFrame({"gene_id": ["ENSG1"], "cell_line": ["K-562"]}, index=["r"])
    ad.AnnData(np.ones((1, 2), dtype=np.float32), obs=obs).write_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(InputError, match="test_split"):
        import_study_files("essential", [tmp_path / "x.h5ad"], tmp_path / "x.zarr")


def test_tahoe_import_keeps_smiles_inchikey_and_annotations(tmp_path):
    """The study's Tahoe task file carries canonical_smiles and the drug metadata: kept as aliases (so stores
    keyed by InChIKey match, as for a raw prepare) and annotations; a row without a CID is counted, not a crash."""
    from rdkit import Chem

    smiles = ["CCO", "c1ccccc1O", "CC(=O)O"]
    obs = pd.DataFrame(
        {
            "cell_line": ["CVCL_0023"] * 3,
            "drug": ["DrugA", "DrugB", "DrugC"],
            "dose": [5.0] * 3,
            "pubchem_cid": [202.0, 101.0, np.nan],
            "canonical_smiles": smiles,
            "targets": ["TUBB", "EGFR, ERBB2", ""],
            "moa-fine": ["Tubulin inhibitor", "EGFR inhibitor", "unclear"],
            **{f"fold_{k}": ["test" if k == i else "train" for i in range(3)] for k in range(5)},
        },
        index=["a", "b", "c"],
    )
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    ad.AnnData(x, obs=obs, var=pd.DataFrame(index=list("WXYZ"))).write_h5ad(tmp_path / "tahoe.h5ad")
    prepared = import_study_files("tahoe", [tmp_path / "tahoe.h5ad"], tmp_path / "t.zarr")
    data = prepared.cell_line("CVCL_0023")
    assert list(data.pert_ids) == ["101", "202"] and list(data.pert_labels) == ["DrugB", "DrugA"]
    np.testing.assert_array_equal(data.lfc, x[[1, 0]])
    assert list(data.folds) == [1, 0]
    assert list(data.pert_aliases("smiles")) == ["c1ccccc1O", "CCO"]
    assert list(data.pert_aliases("inchikey")) == [Chem.MolToInchiKey(Chem.MolFromSmiles(s)) for s in smiles[1::-1]]
    assert list(data.pert_annotation("targets")) == ["EGFR, ERBB2", "TUBB"]
    assert list(data.pert_annotation("moa-fine")) == ["EGFR inhibitor", "Tubulin inhibitor"]
    assert prepared.manifest["exclusions"] == {"rows without a PubChem CID": 1}
