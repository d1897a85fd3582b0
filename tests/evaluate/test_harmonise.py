"""Gene ids in another namespace are harmonised through the identity layer, and `--all` picks gene stores."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from embhub.cli import app
from embhub.datasets.prepared import PreparedDataset
from embhub.errors import StoreError
from embhub.evaluate.runner import evaluate
from embhub.identity.genes import load_gene_identity
from tests.evaluate.conftest import build_dataset, build_store, informative_vectors


def _real_genes(n):
    ident = load_gene_identity()
    chosen = []
    for ensembl_id, gene in ident.genes.items():
        if gene.symbol and ident.resolve(gene.symbol).ensembl_id == ensembl_id:
            chosen.append((ensembl_id, gene.symbol))
        if len(chosen) == n:
            break
    return np.array([c[0] for c in chosen]), np.array([c[1] for c in chosen])


def test_symbol_keyed_store_is_mapped_to_ensembl(tmp_path):
    toy = build_dataset(tmp_path / "real.zarr", cell_lines=("K-562",), with_deg=False)
    ensembl, symbols = _real_genes(len(toy.pert_ids))
    toy.pert_ids[:] = ensembl
    import zarr

    group = zarr.open_group(str(toy.path), mode="r+")
    group["cell_lines/K-562/pert_ids"][:] = ensembl.astype(object)
    vectors = informative_vectors(toy, 120, 4)
    by_ensembl = build_store(tmp_path / "ens.zarr", ensembl, vectors, "by-ensembl")
    by_symbol = build_store(tmp_path / "sym.zarr", symbols, vectors, "by-symbol", key_namespace="hgnc_symbol")
    evaluation = evaluate(PreparedDataset.open(toy.path), [by_ensembl, by_symbol], folds=[0], baselines=False)
    frame = evaluation.results
    values = frame[frame.subset == "all"].pivot_table(index="metric", columns="embedding", values="value")
    np.testing.assert_allclose(values["by-symbol"], values["by-ensembl"], rtol=0, atol=1e-12)
    coverage = evaluation.coverage.set_index("embedding")
    assert coverage.loc["by-symbol", "harmonised_ids"] == len(ensembl)
    assert coverage.loc["by-symbol", "n_covered"] == len(ensembl)


def test_all_takes_every_gene_store_and_reports_skipped(tmp_path, toy, isolated_home):
    stores_dir = isolated_home / "stores"
    build_store(stores_dir / "a" / "x.zarr", toy.pert_ids, informative_vectors(toy, 30, 1), "gene-a")
    build_store(stores_dir / "b" / "y.zarr", np.array(["QWERTYUIOPASDF-QWERTYUIOP-N"]), np.ones((1, 4)), "drug-b",
                entity="drug", key_namespace="inchikey")
    out = tmp_path / "all"
    result = CliRunner().invoke(app, ["evaluate", "--dataset", str(toy.path), "--all", "--cell-line", "K-562", "--fold", "0",
                                      "--no-plots", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "drug store" in result.output
    frame = pd.read_parquet(out / "results.parquet")
    assert "gene-a" in set(frame.embedding) and "drug-b" not in set(frame.embedding)


def test_ids_naming_the_same_gene_keep_the_closest_match_and_report_the_others(tmp_path):
    toy = build_dataset(tmp_path / "real.zarr", cell_lines=("K-562",), with_deg=False)
    ensembl, symbols = _real_genes(len(toy.pert_ids))
    import zarr

    group = zarr.open_group(str(toy.path), mode="r+")
    group["cell_lines/K-562/pert_ids"][:] = ensembl.astype(object)
    vectors = informative_vectors(toy, 30, 4)
    by_symbol = build_store(tmp_path / "sym.zarr", symbols, vectors, "by-symbol", key_namespace="hgnc_symbol")
    lower = symbols[:3].astype(object)
    lowered = np.array([s.lower() for s in lower])
    assert not any(s == l for s, l in zip(lower, lowered))
    # the lower-case copies come first in the store and hold other vectors: the approved symbols must still win
    keys = np.concatenate([lowered, symbols, ["NO-SUCH-GENE-XYZ"]])
    colliding = build_store(tmp_path / "collide.zarr", keys, np.vstack([-vectors[:3] + 5.0, vectors, vectors[:1]]), "collide",
                            key_namespace="hgnc_symbol")
    evaluation = evaluate(PreparedDataset.open(toy.path), [by_symbol, colliding], folds=[0], baselines=False)
    frame = evaluation.results
    values = frame[frame.subset == "all"].pivot_table(index="metric", columns="embedding", values="value")
    np.testing.assert_allclose(values["collide"], values["by-symbol"], rtol=0, atol=1e-12)
    coverage = evaluation.coverage.set_index("embedding")
    assert coverage.loc["collide", "superseded_store_ids"] == 3 and coverage.loc["by-symbol", "superseded_store_ids"] == 0
    recorded = {store["name"]: store for store in evaluation.metadata["stores"]}
    assert recorded["collide"]["superseded_ids"] == dict(zip(lowered, lower))  # which id gave way to which
    assert recorded["collide"]["unmapped_ids"] == ["NO-SUCH-GENE-XYZ"] and coverage.loc["collide", "unmapped_store_ids"] == 1

    capitalised = np.array([s[0] + s[1:].lower() for s in lower])
    tied_keys = np.concatenate([lowered[:1], capitalised[:1], symbols[1:]])
    tied = build_store(tmp_path / "tied.zarr", tied_keys, np.vstack([vectors[:1], vectors[:1] + 1.0, vectors[1:]]), "tied",
                       key_namespace="hgnc_symbol")
    with pytest.raises(StoreError, match=f"the ids '{lowered[0]}' and '{capitalised[0]}' both name gene {ensembl[0]} "
                                         "and hold different vectors; keep one of them"):
        evaluate(PreparedDataset.open(toy.path), [tied], folds=[0], baselines=False)
    same = build_store(tmp_path / "same.zarr", tied_keys, np.vstack([vectors[:1], vectors[:1], vectors[1:]]), "same",
                       key_namespace="hgnc_symbol")
    coverage = evaluate(PreparedDataset.open(toy.path), [same], folds=[0], baselines=False).coverage
    assert coverage.iloc[0]["superseded_store_ids"] == 1 and coverage.iloc[0]["n_covered"] == len(ensembl)
