"""Drug stores keyed by InChIKey are matched to a CID-keyed dataset through its stored aliases."""

import numpy as np
import pytest
import zarr

from embhub.datasets.prepared import PreparedDataset
from embhub.errors import StoreError
from embhub.evaluate.runner import evaluate
from tests.evaluate.conftest import build_dataset, build_store, informative_vectors


def test_inchikey_store_on_cid_dataset_equals_cid_store(tmp_path):
    toy = build_dataset(tmp_path / "drugs.zarr", cell_lines=("K-562",), entity="drug", key_namespace="pubchem_cid", with_deg=False)
    cids = np.array([f"{1000 + i}" for i in range(len(toy.pert_ids))])
    inchikeys = np.array([f"KEY{i:011d}-UHFFFAOYSA-N" for i in range(len(cids))])
    group = zarr.open_group(str(toy.path), mode="r+")
    group["cell_lines/K-562/pert_ids"][:] = cids.astype(object)
    aliases = inchikeys.astype(object).copy()
    aliases[:7] = ""
    group.create_array("cell_lines/K-562/pert_aliases/inchikey", shape=(len(cids),), dtype=str)[:] = aliases
    vectors = informative_vectors(toy, 64, 3)
    by_cid = build_store(tmp_path / "cid.zarr", cids[7:], vectors[7:], "by-cid", entity="drug", key_namespace="pubchem_cid")
    by_key = build_store(tmp_path / "key.zarr", inchikeys, vectors, "by-inchikey", entity="drug", key_namespace="inchikey")
    dataset = PreparedDataset.open(toy.path)
    evaluation = evaluate(dataset, [by_cid, by_key], folds=[0], baselines=False)
    frame = evaluation.results
    values = frame[frame.subset == "all"].pivot_table(index="metric", columns="embedding", values="value")
    np.testing.assert_allclose(values["by-inchikey"], values["by-cid"], rtol=0, atol=1e-12)
    coverage = evaluation.coverage.set_index("embedding")
    assert coverage.loc["by-inchikey", "n_covered"] == len(cids) - 7

    group["cell_lines/K-562"].__delitem__("pert_aliases")
    with pytest.raises(StoreError, match="stores no inchikey aliases"):
        evaluate(PreparedDataset.open(toy.path), [by_key], folds=[0], baselines=False)


def test_name_keyed_drug_dataset_meets_drug_name_keys_without_aliases(tmp_path):
    """Study files keyed by drug name (no aliases stored) meet a store's 'drug_name:<name>' keys, and the
    scores equal those of a store keyed by the names themselves."""
    toy = build_dataset(tmp_path / "names.zarr", cell_lines=("K-562",), entity="drug", key_namespace="drug_name", with_deg=False)
    names = np.array([f"Drug {i} (CODE-{i})" for i in range(len(toy.pert_ids))])
    group = zarr.open_group(str(toy.path), mode="r+")
    group["cell_lines/K-562/pert_ids"][:] = names.astype(object)
    vectors = informative_vectors(toy, 32, 4)
    by_name = build_store(tmp_path / "n.zarr", names, vectors, "by-name", entity="drug", key_namespace="drug_name")
    name_keys = [f"drug_name:drug {i} (code-{i})" for i in range(len(names))]
    targets = build_store(tmp_path / "t.zarr", name_keys, vectors, "targets-style", entity="drug", key_namespace="inchikey")
    evaluation = evaluate(PreparedDataset.open(toy.path), [by_name, targets], folds=[0], baselines=False)
    frame = evaluation.results
    values = frame[frame.subset == "all"].pivot_table(index="metric", columns="embedding", values="value")
    np.testing.assert_allclose(values["targets-style"], values["by-name"], rtol=0, atol=1e-12)
    assert evaluation.coverage.set_index("embedding").loc["targets-style", "n_covered"] == len(names)


def test_drug_name_key_is_the_drug_targets_key():
    from embhub.identity.drugs import drug_name_key
    from embhub_drug_targets.target_table import DrugTargets

    for name in ("SAHA (Vorinostat)", "  Quisinostat  (JNJ-26481585) 2HCl", "(+)-JQ1"):
        assert DrugTargets(name=name).key == drug_name_key(name)
