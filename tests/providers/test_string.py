"""STRING providers on real STRING data: the file layouts, the eigenmap against scipy, exclusions,
caching and the CLI. Partner-ranking quality is in test_string_quality.py."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.csgraph import laplacian

from embhub.identity.genes import load_gene_identity
from embhub.provider import Item
from embhub.store import EmbeddingStore
from embhub_string.providers import StringSpectral
from tests.providers.string_data import mossn_edges, snowball
from tests.support.cli import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def real_edges():
    """About 120 real genes and their STRING edges (score ≥ 0.9, 0–1 scale as mossn ships it)."""
    return snowball(mossn_edges(), 120, seed=3)


def write_string_download(folder, edges, extra_lines=()):
    """STRING's download layout: links (space-separated, ENSP ids, 0–1000) + protein.info (tab-separated).

    The ENSP numbers are made up (one per gene); the layout, headers and id form are STRING's.
    """
    genes = sorted(set(edges["gene_a"]) | set(edges["gene_b"]) | {name for line in extra_lines for name in line[:2]})
    protein = {gene: f"9606.ENSP{index:011d}" for index, gene in enumerate(genes, start=200000)}
    links = folder / "9606.protein.links.v12.0.txt.gz"
    rows = [(a, b, round(s * 1000)) for a, b, s in zip(edges["gene_a"], edges["gene_b"], edges["score"])]
    rows += list(extra_lines)
    with gzip.open(links, "wt") as handle:
        handle.write("protein1 protein2 combined_score\n")
        for a, b, score in rows:
            handle.write(f"{protein[a]} {protein[b]} {score}\n{protein[b]} {protein[a]} {score}\n")
    with gzip.open(folder / "9606.protein.info.v12.0.txt.gz", "wt") as handle:
        handle.write("#string_protein_id\tpreferred_name\tprotein_size\tannotation\n")
        for gene in genes:
            handle.write(f"{protein[gene]}\t{gene}\t393\tsome annotation; with spaces\n")
    return links


def independent_eigenmap(edges, genes, dim):
    """Generalised eigenvectors of (D - A) y = λ D y computed with scipy's dense solver."""
    index = {g: i for i, g in enumerate(genes)}
    rows = [index[a] for a in edges["gene_a"]]
    cols = [index[b] for b in edges["gene_b"]]
    weights = edges["weight"].to_numpy()
    adjacency = sp.coo_matrix((weights, (rows, cols)), shape=(len(genes),) * 2).toarray()
    adjacency = np.maximum(adjacency, adjacency.T)
    degree = adjacency.sum(axis=1)
    values, vectors = scipy.linalg.eigh(laplacian(adjacency), np.diag(degree))
    return values[1 : dim + 1], vectors[:, 1 : dim + 1]


def test_string_download_layout_becomes_a_gene_graph_with_recorded_exclusions(tmp_path, real_edges):
    member = real_edges["gene_a"].iloc[0]
    absent = next(g for g in ("BRCA2", "INS", "ALB", "HBB") if g not in set(real_edges["gene_a"]) | set(real_edges["gene_b"]))
    low = ("ZNF300", "ZNF302", 200)
    unresolvable = (member, "NOT-A-REAL-GENE", 950)
    island = ("MT-ND1", "MT-ND2", 990)
    links = write_string_download(tmp_path, real_edges, [low, unresolvable, island])
    provider = StringSpectral(StringSpectral.Parameters(network=str(links), min_score=900, dim=8))
    identity = load_gene_identity()
    network = provider.network()
    expected_genes = {identity.resolve(g).ensembl_id for g in set(real_edges["gene_a"]) | set(real_edges["gene_b"])}
    assert set(network.genes) == expected_genes
    assert len(network.edges) == len(real_edges)
    assert network.unresolved == {"NOT-A-REAL-GENE": load_gene_identity().failure_reason(identity.resolve("NOT-A-REAL-GENE"))}

    items = [Item("a", member), Item("b", "ZNF300"), Item("c", "MT-ND1"), Item("d", "nonsense-gene"), Item("e", absent)]
    result = provider.embed(items)
    assert result.input_ids == ["a"] and result.labels["symbol"] == [member]
    reasons = {f.input_id: f.reason for f in result.failures}
    assert "no edge to another gene scores ≥ min_score 900" in reasons["b"]
    assert "in a component of 2 genes, apart from the largest" in reasons["c"]
    assert reasons["d"].startswith("unknown gene id 'nonsense-gene'")
    assert "not in the STRING network file" in reasons["e"]
    facts = provider.provenance()
    assert facts["network_edges_read"] == 2 * (len(real_edges) + 3)
    assert facts["network_edges_below_min_score"] == 2
    assert facts["network_edges_with_unresolved_gene"] == 2
    assert facts["genes_outside_largest_component"] == 2
    assert facts["gene_id_release"] == identity.release
    assert facts["unresolved_network_names"] == 1 and "NOT-A-REAL-GENE" in facts["unresolved_network_names_examples"]
    assert [p.name for p in provider.checkpoint_files()] == [links.name, "9606.protein.info.v12.0.txt.gz"]


def test_eigenmap_spans_the_same_eigenvectors_as_scipy(tmp_path, real_edges):
    path = tmp_path / "edges.csv"
    real_edges.to_csv(path, index=False)
    provider = StringSpectral(StringSpectral.Parameters(network=str(path), min_score=900, dim=6))
    network = provider.network()
    vectors = provider.embed([Item(g, g) for g in network.genes]).vectors
    identity = load_gene_identity()
    edges = real_edges.assign(
        gene_a=[identity.resolve(g).ensembl_id for g in real_edges["gene_a"]],
        gene_b=[identity.resolve(g).ensembl_id for g in real_edges["gene_b"]],
        weight=real_edges["score"],
    )
    values, expected = independent_eigenmap(edges, network.genes, 6)
    assert np.all(np.diff(values) > 1e-6), "eigenvalues must be distinct for a column-wise comparison"
    for column in range(6):
        correlation = np.corrcoef(vectors[:, column], expected[:, column])[0, 1]
        assert abs(correlation) > 0.9999, (column, correlation)
    assert np.allclose(np.sqrt((vectors**2).mean(axis=0)), 1.0, atol=1e-4)


def test_scores_on_a_0_to_1_scale_are_read_as_string_units(tmp_path, real_edges):
    path = tmp_path / "edges.tsv"
    real_edges.to_csv(path, sep="\t", index=False)
    strict = StringSpectral(StringSpectral.Parameters(network=str(path), min_score=990, dim=4)).network()
    kept = real_edges[real_edges["score"] >= 0.99]
    assert strict.edges_read == len(real_edges) and strict.edges_below_threshold == len(real_edges) - len(kept)


def test_embedding_is_cached_per_network_and_parameters(tmp_path, real_edges):
    path = tmp_path / "edges.csv"
    real_edges.to_csv(path, index=False)
    parameters = StringSpectral.Parameters(network=str(path), min_score=900, dim=5)
    first = StringSpectral(parameters)
    gene = real_edges["gene_a"].iloc[0]
    vectors = first.embed([Item("a", gene)]).vectors
    assert first.provenance()["embedding_cache"] == "computed"
    second = StringSpectral(parameters)
    assert np.array_equal(second.embed([Item("a", gene)]).vectors, vectors)
    assert second.provenance()["embedding_cache"] == "reused"
    other = StringSpectral(StringSpectral.Parameters(network=str(path), min_score=900, dim=4))
    other.embed([Item("a", gene)])
    assert other.provenance()["embedding_cache"] == "computed"


def test_extract_without_input_embeds_every_network_gene(tmp_path, real_edges):
    path = tmp_path / "edges.csv"
    real_edges.to_csv(path, index=False)
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        f"models:\n  string-test:\n    provider: string-spectral\n    parameters: {{network: '{path}', min_score: 900, dim: 8}}\n"
    )
    out = run_cli("extract", "--model", "string-test", "--registry", registry, "--out", tmp_path / "s.zarr")
    assert out.exit_code == 0, out
    store = EmbeddingStore.open(tmp_path / "s.zarr")
    identity = load_gene_identity()
    genes = {identity.resolve(g).ensembl_id for g in set(real_edges["gene_a"]) | set(real_edges["gene_b"])}
    assert set(store.ids) == genes and store.dim == 8 and store.key_namespace == "ensembl_gene_id"
    assert list(store.labels("symbol")) == [identity.symbol_of(g) for g in store.ids]
    assert store.manifest["provenance"]["gene_id_release"] == identity.release
    assert store.manifest["checkpoint"]["files"][0]["path"] == str(path)


def test_missing_network_file_is_a_one_line_error(tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text("models:\n  string-missing:\n    provider: string-spectral\n    parameters: {network: /no/such/file.tsv}\n")
    outcome = run_cli("extract", "--model", "string-missing", "--registry", registry, "--out", tmp_path / "s.zarr")
    assert_one_line_error(outcome, "/no/such/file.tsv", "does not exist")


def test_links_without_their_info_file_is_a_one_line_error(tmp_path, real_edges):
    links = write_string_download(tmp_path, real_edges.head(5))
    (tmp_path / "9606.protein.info.v12.0.txt.gz").unlink()
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"models:\n  s:\n    provider: string-spectral\n    parameters: {{network: '{links}', dim: 2}}\n")
    outcome = run_cli("extract", "--model", "s", "--registry", registry, "--out", tmp_path / "s.zarr")
    assert_one_line_error(outcome, "9606.protein.info.v12.0.txt.gz", "protein_info")


def test_demo_model_embeds_the_bundled_subgraph_without_input(tmp_path):
    out = run_cli("extract", "--model", "string-spectral-demo", "--out", tmp_path / "demo.zarr")
    assert out.exit_code == 0, out
    store = EmbeddingStore.open(tmp_path / "demo.zarr")
    provider = StringSpectral(StringSpectral.Parameters(network="bundled-demo", min_score=900, dim=32))
    assert list(store.ids) == provider.network().genes
    assert store.dim == 32 and store.manifest["counts"]["failed"] == 0
    assert store.manifest["provenance"]["largest_component_genes"] == len(store.ids)


def test_sparse_solver_agrees_with_scipy_dense_on_a_larger_graph():
    from embhub_string.spectral import DENSE_LIMIT, laplacian_eigenmap

    edges = snowball(mossn_edges(), 600, seed=7)
    genes = sorted(set(edges["gene_a"]) | set(edges["gene_b"]))
    assert len(genes) > DENSE_LIMIT
    index = {g: i for i, g in enumerate(genes)}
    rows, cols = [index[a] for a in edges["gene_a"]], [index[b] for b in edges["gene_b"]]
    adjacency = sp.coo_matrix((edges["score"].to_numpy(), (rows, cols)), shape=(len(genes),) * 2).tocsr()
    adjacency = adjacency.maximum(adjacency.T)
    vectors = laplacian_eigenmap(adjacency, 5)
    values, expected = independent_eigenmap(edges.assign(weight=edges["score"]), genes, 5)
    assert np.all(np.diff(values) > 1e-6)
    for column in range(5):
        assert abs(np.corrcoef(vectors[:, column], expected[:, column])[0, 1]) > 0.9999, column


def test_edge_list_whose_name_mentions_protein_links_is_read_as_an_edge_list(tmp_path, real_edges):
    """Only STRING's own ``protein.links.`` download names need a protein.info file; a user's edge list
    named ``…protein.links_subset.csv`` is an edge list, hashed alone into the manifest."""
    path = tmp_path / "my.protein.links_subset.csv"
    real_edges.to_csv(path, index=False)
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        f"models:\n  s:\n    provider: string-spectral\n    parameters: {{network: '{path}', min_score: 900, dim: 4}}\n"
    )
    gene = real_edges["gene_a"].iloc[0]
    genes = tmp_path / "genes.txt"
    genes.write_text(f"{gene}\n")
    out = run_cli("extract", "--model", "s", "--registry", registry, "--input", genes, "--out", tmp_path / "s.zarr")
    assert out.exit_code == 0, out
    store = EmbeddingStore.open(tmp_path / "s.zarr")
    assert [f["path"] for f in store.manifest["checkpoint"]["files"]] == [str(path)]
    expected = StringSpectral(StringSpectral.Parameters(network=str(path), min_score=900, dim=4)).embed([Item(gene, gene)])
    assert np.array_equal(store.vectors(), expected.vectors)


def test_a_damaged_network_file_is_one_line_naming_it(tmp_path, real_edges):
    edges = tmp_path / "edges.tsv"
    real_edges.to_csv(edges, sep="\t", index=False)
    truncated = tmp_path / "edges_truncated.tsv.gz"
    truncated.write_bytes(gzip.compress(edges.read_bytes())[:300])
    latin1 = tmp_path / "edges_latin1.tsv"
    latin1.write_bytes(edges.read_bytes() + b"TP53\tcaf\xe9\t0.99\n")
    links = write_string_download(tmp_path, real_edges)
    truncated_links = tmp_path / "9606.protein.links.v12.0.txt.gz"
    truncated_links.write_bytes(links.read_bytes()[:300])
    genes = tmp_path / "genes.txt"
    genes.write_text(f"{real_edges['gene_a'].iloc[0]}\n")
    for path, what in ((truncated, "gzip"), (latin1, "UTF-8"), (truncated_links, "gzip")):
        outcome = run_cli("extract", "--model", "string-spectral-demo", "--set", f"network={path}", "--set", "dim=4",
                          "--input", genes, "--out", tmp_path / f"{path.name}.zarr")
        assert_one_line_error(outcome, str(path), what)


def test_string_physical_subnetwork_download_is_read_like_the_full_network(tmp_path, real_edges):
    full = tmp_path / "full"
    full.mkdir()
    links = write_string_download(full, real_edges)
    physical = tmp_path / "9606.protein.physical.links.v12.0.txt.gz"
    physical.write_bytes(links.read_bytes())
    (tmp_path / "9606.protein.info.v12.0.txt.gz").write_bytes((full / "9606.protein.info.v12.0.txt.gz").read_bytes())
    genes = sorted(set(real_edges["gene_a"]))[:5]
    items = [Item(g, g) for g in genes]
    expected = StringSpectral(StringSpectral.Parameters(network=str(links), min_score=900, dim=4)).embed(items)
    provider = StringSpectral(StringSpectral.Parameters(network=str(physical), min_score=900, dim=4))
    result = provider.embed(items)
    assert result.input_ids == genes and not result.failures
    np.testing.assert_array_equal(result.vectors, expected.vectors)
    assert [p.name for p in provider.checkpoint_files()] == [physical.name, "9606.protein.info.v12.0.txt.gz"]


def test_a_network_whose_names_are_not_genes_says_so_instead_of_blaming_min_score(tmp_path, real_edges):
    """STRING protein ids in a file not named like STRING's download are read as an edge list of unknown names."""
    links = write_string_download(tmp_path, real_edges)
    renamed = tmp_path / "string_human.txt.gz"
    renamed.write_bytes(links.read_bytes())
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"models:\n  s:\n    provider: string-spectral\n    parameters: {{network: '{renamed}', min_score: 900, dim: 4}}\n")
    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\n")
    outcome = run_cli("extract", "--model", "s", "--registry", registry, "--input", genes, "--out", tmp_path / "s.zarr")
    assert_one_line_error(outcome, "string_human.txt.gz", "9606.ENSP", "protein.info")
    assert "lower min_score" not in outcome.stderr


def test_a_bad_network_or_dim_fails_before_a_store_exists(tmp_path, real_edges):
    """Otherwise the corrected command meets an empty store of other parameters and is told to --overwrite."""
    edges = tmp_path / "edges.csv"
    real_edges.to_csv(edges, index=False)
    no_scores = tmp_path / "no_scores.csv"
    no_scores.write_text("gene_a,gene_b\nTP53,MDM2\n")
    gene = real_edges["gene_a"].iloc[0]
    genes = tmp_path / "genes.txt"
    genes.write_text(f"{gene}\n")
    out = tmp_path / "s.zarr"

    def extract(network, dim):
        return run_cli("extract", "--model", "string-spectral-demo", "--set", f"network={network}", "--set", f"dim={dim}",
                       "--input", genes, "--out", out)

    assert_one_line_error(extract(no_scores, 4), "no_scores.csv", "score")
    assert not out.exists()
    assert_one_line_error(extract(edges, 5000), "too few for dim 5000")
    assert not out.exists()
    assert extract(edges, 4).exit_code == 0
    expected = StringSpectral(StringSpectral.Parameters(network=str(edges), min_score=900, dim=4)).embed([Item(gene, gene)])
    np.testing.assert_array_equal(EmbeddingStore.open(out).vectors(), expected.vectors)


def test_a_malformed_edge_list_is_one_line_naming_the_file_and_line(tmp_path, real_edges):
    edges = tmp_path / "edges.tsv"
    real_edges.head(30).to_csv(edges, sep="\t", index=False)
    edges.write_text(edges.read_text() + "TP53\tMDM2\t0.99\tstray field\n")
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"models:\n  s:\n    provider: string-spectral\n    parameters: {{network: '{edges}', min_score: 900, dim: 2}}\n")
    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\n")
    outcome = run_cli("extract", "--model", "s", "--registry", registry, "--input", genes, "--out", tmp_path / "s.zarr")
    assert_one_line_error(outcome, str(edges), "line 32")
