"""STRING embeddings place interaction partners close: edges held out of the training graph.

Groups are not hand-picked: a random 10% of the real STRING edges of a breadth-first subgraph is
removed before embedding, and for each removed edge (a, b) we rank b among all genes by cosine
similarity to a (rank 1 = nearest). A random embedding puts the median rank near n/2. Measured
(2 shared CPU cores): spectral median 63 of 795 genes (random ≈ 397), GNN about 60 of 496 (≈ 248);
the subgraphs are dense (≈ 40 partners per gene), so a partner ranks among the other partners.
"""

from __future__ import annotations

import numpy as np
import pytest

from embhub.identity.genes import load_gene_identity
from embhub.provider import Item
from embhub_string.providers import StringGNN, StringSpectral
from tests.providers.string_data import mossn_edges, snowball


def held_out_split(n_genes, seed, tmp_path):
    edges = snowball(mossn_edges(), n_genes, seed=seed)
    held = np.random.default_rng(seed + 100).random(len(edges)) < 0.1
    path = tmp_path / "train_edges.csv"
    edges[~held].to_csv(path, index=False)
    return path, edges[held]


def median_partner_rank(provider, held_out):
    network = provider.network()
    result = provider.embed([Item(g, g) for g in network.genes])
    row = {gene: i for i, gene in enumerate(result.keys)}
    unit = result.vectors / np.linalg.norm(result.vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    identity = load_gene_identity()
    ranks = []
    for a, b in zip(held_out["gene_a"], held_out["gene_b"]):
        i, j = row.get(identity.resolve(a).ensembl_id), row.get(identity.resolve(b).ensembl_id)
        if i is not None and j is not None:
            ranks.append(1 + int((similarity[i] > similarity[i, j]).sum()))
    return float(np.median(ranks)), len(ranks), len(row)


def test_spectral_ranks_held_out_partners_far_above_random(tmp_path):
    path, held_out = held_out_split(800, seed=0, tmp_path=tmp_path)
    provider = StringSpectral(StringSpectral.Parameters(network=str(path), min_score=900, dim=32))
    median, n_pairs, n_genes = median_partner_rank(provider, held_out)
    assert n_pairs > 0.9 * len(held_out)
    random_median = (n_genes - 1) / 2
    assert median < random_median / 5, (median, random_median)


@pytest.mark.slow
def test_gnn_ranks_held_out_partners_far_above_random(tmp_path):
    path, held_out = held_out_split(500, seed=1, tmp_path=tmp_path)
    parameters = StringGNN.Parameters(network=str(path), min_score=900, dim=32, hidden_dim=64, epochs=60, device="cpu")
    median, n_pairs, n_genes = median_partner_rank(StringGNN(parameters), held_out)
    assert n_pairs > 0.9 * len(held_out)
    random_median = (n_genes - 1) / 2
    assert median < random_median / 3, (median, random_median)


@pytest.fixture
def small_real_graph(tmp_path):
    path = tmp_path / "edges.csv"
    snowball(mossn_edges(), 150, seed=5).to_csv(path, index=False)
    return path


def test_gnn_is_deterministic_on_cpu_for_a_seed(small_real_graph, tmp_path, monkeypatch):
    def train(seed, home):
        monkeypatch.setenv("EMBHUB_HOME", str(tmp_path / home))
        parameters = StringGNN.Parameters(network=str(small_real_graph), min_score=900, dim=16, hidden_dim=32,
                                          epochs=25, seed=seed, device="cpu")
        provider = StringGNN(parameters)
        vectors = provider.embed([Item(g, g) for g in provider.network().genes]).vectors
        return vectors, provider.provenance()

    first, facts = train(0, "a")
    again, _ = train(0, "b")
    other, _ = train(1, "c")
    assert facts["embedding_cache"] == "computed" and facts["training_device"] == "cpu"
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)
    losses = list(facts["loss_by_epoch"].values())
    assert losses[-1] < losses[0]
