"""scGPT ``mode: control_cells`` on the tiny real-format checkpoint of test_scgpt.py and real counts.

The cells are 40 cells of celltypist's ``sample_cell_by_gene.csv`` (MIT; real UMI counts with symbols),
restricted to the vocabulary genes it holds plus five genes outside the vocabulary
(``tests/data/scgpt/celltypist_sample_counts.csv``); 30 are labelled ``non-targeting``. Expected vectors come
from a plain per-cell forward written here with ``torch.nn.functional`` on the saved tensors, in float64,
following scGPT's documented steps (normalise, log1p, per-cell quantile bins with seeded tie spreading,
``<cls>`` first, post-norm layers), then the mean per gene.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
anndata = pytest.importorskip("anndata")

import pandas as pd  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from embhub.identity.genes import load_gene_identity  # noqa: E402
from embhub.provider import Item  # noqa: E402
from embhub.store import EmbeddingStore  # noqa: E402
from embhub_scgpt import ScgptEmbeddings  # noqa: E402
from tests.providers.test_scgpt import EMBSIZE, NHEADS, write_checkpoint  # noqa: E402
from tests.support.cells import write_raw_cells  # noqa: E402
from tests.support.cli import assert_one_line_error, run_cli  # noqa: E402

COUNTS = Path(__file__).parents[1] / "data" / "scgpt" / "celltypist_sample_counts.csv"
CONTROLS = 30
NOT_EXPRESSED = ["MYC", "EGFR", "NDP"]
EXPRESSED = ["GAPDH", "KRAS", "TP53", "CDK4", "MDM2", "ATG5", "SMIM11A", "PEX1"]


def counts_table() -> pd.DataFrame:
    return pd.read_csv(COUNTS, index_col="cell")


def write_cells(path: Path, table: pd.DataFrame | None = None, *, ensembl_index: bool = False) -> Path:
    """The first 30 cells of the counts table non-targeting, the others TP53."""
    original = counts_table().index.tolist()
    table = counts_table() if table is None else table
    return write_raw_cells(path, table, lambda name: original.index(name) < CONTROLS, ensembl_index=ensembl_index)


@pytest.fixture(scope="module", params=["Wqkv", "in_proj"])
def checkpoint(request, tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp(f"scgpt-cells-{request.param}"), request.param)


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> Path:
    return write_cells(tmp_path_factory.mktemp("cells") / "controls.h5ad")


def provider_for(directory: Path, cells: Path, **parameters) -> ScgptEmbeddings:
    return ScgptEmbeddings(
        ScgptEmbeddings.Parameters(checkpoint=str(directory), mode="control_cells", cells=str(cells), device="cpu", **parameters)
    )


# ---- the independent computation -------------------------------------------------------------------------------


def cell_generator(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.blake2b(f"{seed}\0{name}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def cell_inputs(directory: Path, max_length: int, seed: int = 0, cells: list[str] | None = None):
    """(cell name, token ids, values) per control cell (or per cell of ``cells``), by scGPT's documented steps."""
    args = json.loads((directory / "args.json").read_text())
    vocab = json.loads((directory / "vocab.json").read_text())
    table = counts_table().iloc[:CONTROLS] if cells is None else counts_table().loc[cells]
    ident = load_gene_identity()
    token_of = {}
    for symbol in table.columns:
        gene = ident.resolve(symbol).ensembl_id
        matches = [t for t in vocab if not t.startswith("<") and ident.resolve(t).ensembl_id == gene]
        if matches:
            token_of[symbol] = vocab[matches[0]]
    inputs = []
    for name, row in table.iterrows():
        logged = np.log1p(row.to_numpy(float) / row.sum() * 1e4)
        expressed = sorted((token_of[s], v) for s, v in zip(table.columns, logged) if s in token_of and v > 0)
        tokens = np.array([t for t, _ in expressed], dtype=np.int64)
        values = np.array([v for _, v in expressed])
        rng = cell_generator(seed, name)
        if len(values):
            edges = np.quantile(values, np.linspace(0, 1, args["n_bins"] - 1))
            low, high = np.digitize(values, edges), np.digitize(values, edges, right=True)
            bins = np.ceil(rng.random(len(values)) * (high - low) + low)
        else:
            bins = np.zeros(0)
        if len(tokens) + 1 > max_length:
            keep = np.sort(rng.permutation(len(tokens))[: max_length - 1])
            tokens, bins = tokens[keep], bins[keep]
        inputs.append((name, np.concatenate([[vocab["<cls>"]], tokens]), np.concatenate([[args["pad_value"]], bins])))
    return inputs


def forward_one_cell(state: dict, tokens: np.ndarray, values: np.ndarray, layers: int) -> torch.Tensor:
    """scGPT's _encode for one unpadded cell, in float64, from the state-dict tensors."""
    w = {k: v.double() for k, v in state.items()}
    ln = lambda x, p: F.layer_norm(x, (EMBSIZE,), w[f"{p}.weight"], w[f"{p}.bias"], 1e-5)  # noqa: E731
    lin = lambda x, p: x @ w[f"{p}.weight"].T + w[f"{p}.bias"]  # noqa: E731
    genes = ln(w["encoder.embedding.weight"][torch.as_tensor(tokens)], "encoder.enc_norm")
    v = torch.as_tensor(values, dtype=torch.float64)[:, None].clamp(max=512)
    x = genes + ln(lin(torch.relu(lin(v, "value_encoder.linear1")), "value_encoder.linear2"), "value_encoder.norm")
    head = EMBSIZE // NHEADS
    for i in range(layers):
        p = f"transformer_encoder.layers.{i}"
        qkv_key = f"{p}.self_attn.Wqkv" if f"{p}.self_attn.Wqkv.weight" in w else f"{p}.self_attn.in_proj"
        sep = "." if qkv_key.endswith("Wqkv") else "_"
        qkv = x @ w[f"{qkv_key}{sep}weight"].T + w[f"{qkv_key}{sep}bias"]
        q, k, v_ = qkv.split(EMBSIZE, dim=1)
        heads = []
        for h in range(NHEADS):
            cols = slice(h * head, (h + 1) * head)
            scores = q[:, cols] @ k[:, cols].T / np.sqrt(head)
            heads.append(torch.softmax(scores, dim=1) @ v_[:, cols])
        attended = lin(torch.cat(heads, dim=1), f"{p}.self_attn.out_proj")
        x = ln(x + attended, f"{p}.norm1")
        x = ln(x + lin(torch.relu(lin(x, f"{p}.linear1")), f"{p}.linear2"), f"{p}.norm2")
    return x


def expected_gene_means(directory: Path, max_length: int = 1200, seed: int = 0, cells: list[str] | None = None):
    """Vocabulary index → (mean hidden state, cells) over the control cells (or ``cells``)."""
    state = torch.load(directory / "best_model.pt", weights_only=True)
    layers = json.loads((directory / "args.json").read_text())["nlayers"]
    sums, counted = {}, {}
    for _, tokens, values in cell_inputs(directory, max_length, seed, cells):
        hidden = forward_one_cell(state, tokens, values, layers).numpy()
        for position, token in enumerate(tokens[1:], 1):
            sums[int(token)] = sums.get(int(token), 0) + hidden[position]
            counted[int(token)] = counted.get(int(token), 0) + 1
    return {token: (sums[token] / counted[token], counted[token]) for token in sums}


def expected_vectors(directory: Path, tokens: list[str], **kwargs) -> np.ndarray:
    vocab = json.loads((directory / "vocab.json").read_text())
    means = expected_gene_means(directory, **kwargs)
    return np.stack([means[vocab[t]][0] for t in tokens])


# ---- tests -----------------------------------------------------------------------------------------------------


def test_vectors_equal_a_plain_per_cell_forward_averaged_per_gene(checkpoint, cells):
    result = provider_for(checkpoint, cells).embed([Item(s, s) for s in EXPRESSED])
    assert result.failures == []
    ident = load_gene_identity()
    assert result.keys == [ident.resolve(s).ensembl_id for s in EXPRESSED]
    assert result.labels["vocab_token"] == [*EXPRESSED[:6], "SMIM11", "PEX1"]
    assert result.vectors.shape == (len(EXPRESSED), EMBSIZE) and result.vectors.dtype == np.float32
    expected = expected_vectors(checkpoint, result.labels["vocab_token"])
    np.testing.assert_allclose(result.vectors, expected, atol=1e-5, rtol=0)
    vocab = json.loads((checkpoint / "vocab.json").read_text())
    means = expected_gene_means(checkpoint)
    assert result.labels["cells"] == [str(means[vocab[t]][1]) for t in result.labels["vocab_token"]]
    assert int(result.labels["cells"][0]) == (counts_table().iloc[:CONTROLS]["GAPDH"] > 0).sum()


def test_a_short_max_length_samples_genes_per_cell_as_documented(checkpoint, cells):
    result = provider_for(checkpoint, cells, max_length=4, seed=3).embed([Item(s, s) for s in EXPRESSED])
    found = dict(zip(result.input_ids, result.vectors))
    means = expected_gene_means(checkpoint, max_length=4, seed=3)
    vocab = json.loads((checkpoint / "vocab.json").read_text())
    tokens = dict(zip(result.input_ids, result.labels["vocab_token"]))
    assert found, "every gene dropped"
    for symbol, vector in found.items():
        np.testing.assert_allclose(vector, means[vocab[tokens[symbol]]][0], atol=1e-5, rtol=0)
    full = provider_for(checkpoint, cells).embed([Item("GAPDH", "GAPDH")]).vectors
    assert not np.allclose(found["GAPDH"], full[0], atol=1e-3)


def test_batching_padding_and_cell_order_do_not_change_the_vectors(checkpoint, cells, tmp_path):
    items = [Item(s, s) for s in EXPRESSED]
    reference = provider_for(checkpoint, cells).embed(items).vectors
    one_cell_per_pass = provider_for(checkpoint, cells, tokens_per_batch=1).embed(items).vectors
    np.testing.assert_allclose(one_cell_per_pass, reference, atol=1e-5, rtol=0)
    table = counts_table()
    shuffled = table.iloc[np.random.default_rng(1).permutation(len(table))]
    shuffled = shuffled[list(reversed(shuffled.columns))]
    reordered = write_cells(tmp_path / "shuffled.h5ad", shuffled)
    np.testing.assert_allclose(provider_for(checkpoint, reordered).embed(items).vectors, reference, atol=1e-5, rtol=0)
    by_ensembl = write_cells(tmp_path / "ensembl.h5ad", ensembl_index=True)
    np.testing.assert_allclose(provider_for(checkpoint, by_ensembl).embed(items).vectors, reference, atol=1e-5, rtol=0)


def test_max_cells_takes_the_controls_whose_seeded_name_hash_is_smallest(checkpoint, cells, tmp_path):
    """The sample is the 10 controls with the smallest blake2b(f"{seed}\\0{name}") — whatever the file order."""
    items = [Item(s, s) for s in ["GAPDH", "KRAS", "MDM2"]]
    sampled = provider_for(checkpoint, cells, max_cells=10, seed=5)
    vectors = sampled.embed(items).vectors
    controls = counts_table().index[:CONTROLS].tolist()
    rank = lambda name: int.from_bytes(hashlib.blake2b(f"5\0{name}".encode(), digest_size=8).digest(), "little")  # noqa: E731
    chosen = sorted(controls, key=rank)[:10]
    vocab = json.loads((checkpoint / "vocab.json").read_text())
    means = expected_gene_means(checkpoint, seed=5, cells=chosen)
    np.testing.assert_allclose(vectors, np.stack([means[vocab[s]][0] for s in ("GAPDH", "KRAS", "MDM2")]), atol=1e-5)
    facts = sampled.provenance()
    assert facts["cells_used"] == 10 and facts["cells_matching_filter"] == CONTROLS
    reversed_file = write_cells(tmp_path / "reversed.h5ad", counts_table().iloc[::-1])
    again = provider_for(checkpoint, reversed_file, max_cells=10, seed=5).embed(items).vectors
    np.testing.assert_allclose(again, vectors, atol=1e-5, rtol=0)
    other_seed = provider_for(checkpoint, cells, max_cells=10, seed=6).embed(items).vectors
    assert not np.allclose(other_seed, vectors, atol=1e-3)


def test_genes_absent_from_the_cells_are_failures_naming_the_gene(checkpoint, cells):
    items = [Item(s, s) for s in [*NOT_EXPRESSED, "BRAF", "HRAS", "BRCA2", "NOT_A_GENE_XYZ"]]
    result = provider_for(checkpoint, cells).embed(items)
    reasons = {f.input_id: f.reason for f in result.failures}
    for symbol in NOT_EXPRESSED:
        assert reasons[symbol].startswith(f"gene '{symbol}' (ENSG")
        assert reasons[symbol].endswith(f"is not expressed in the {CONTROLS} control cells of {cells}")
    assert "is not in the scGPT vocabulary" in reasons["BRCA2"]
    assert reasons["NOT_A_GENE_XYZ"].startswith("unknown gene id")
    controls = counts_table().iloc[:CONTROLS]
    present = [s for s in ("BRAF", "HRAS") if (controls[s] > 0).any()]
    assert result.input_ids == present


def test_a_gene_the_file_lacks_is_a_failure_saying_so(checkpoint, tmp_path):
    cells = write_cells(tmp_path / "no-kras.h5ad", counts_table().drop(columns=["KRAS"]))
    result = provider_for(checkpoint, cells).embed([Item("KRAS", "KRAS"), Item("GAPDH", "GAPDH")])
    assert result.input_ids == ["GAPDH"]
    assert result.failures[0].reason.endswith(f"is not among the genes of the cells file {cells}")


def _write_not_h5ad(path: Path) -> Path:
    path.write_text("cell,GAPDH\nc1,3\n")
    return path


def _write_without_vocab_genes(path: Path) -> Path:
    return write_cells(path, counts_table()[["MALAT1", "ACTB", "B2M"]])


@pytest.mark.parametrize("make, settings, fragments", [
    (lambda d: d / "missing.h5ad", [], ["does not exist", "set cells=PATH"]),
    (lambda d: _write_not_h5ad(d / "cells.h5ad"), [], ["is not a readable .h5ad file"]),
    (lambda d: write_cells(d / "cells.h5ad"), ["control_value=control"],
     ["no cell has obs 'gene' == 'control'", "set control_column / control_value"]),
    (lambda d: write_cells(d / "cells.h5ad"), ["control_column=perturbation"],
     ["obs has no column 'perturbation'", "set control_column"]),
    (lambda d: _write_without_vocab_genes(d / "cells.h5ad"), [], ["is in the scGPT vocabulary", "var must hold"]),
])
def test_a_bad_cells_file_is_one_line_naming_the_file_and_the_fix(tmp_path, make, settings, fragments):
    directory = write_checkpoint(tmp_path / "scGPT_human")
    cells = make(tmp_path)
    genes = tmp_path / "genes.txt"
    genes.write_text("GAPDH\nKRAS\n")
    extra = [arg for setting in settings for arg in ("--set", setting)]
    outcome = run_cli("extract", "--model", "scgpt-human-controls", "--set", f"checkpoint={directory}",
                      "--set", f"cells={cells}", "--set", "device=cpu", *extra, "--input", genes,
                      "--out", tmp_path / "x.zarr")
    assert_one_line_error(outcome, str(cells), *fragments)


def test_the_registry_entry_without_cells_is_one_line_asking_for_them(tmp_path):
    directory = write_checkpoint(tmp_path / "scGPT_human")
    genes = tmp_path / "genes.txt"
    genes.write_text("GAPDH\n")
    outcome = run_cli("extract", "--model", "scgpt-human-controls", "--set", f"checkpoint={directory}",
                      "--input", genes, "--out", tmp_path / "x.zarr")
    assert_one_line_error(outcome, "mode control_cells needs the control cells", "--set cells=FILE.h5ad")
    listing = run_cli("models")
    assert listing.exit_code == 0 and "scgpt-human-controls" in listing.stdout


def test_extract_through_the_cli_writes_a_store_keyed_by_ensembl_ids(checkpoint, cells, tmp_path):
    genes = tmp_path / "genes.txt"
    genes.write_text("\n".join([*EXPRESSED, "MYC"]) + "\n")
    out = tmp_path / "controls.zarr"
    outcome = run_cli("extract", "--model", "scgpt-human-controls", "--set", f"checkpoint={checkpoint}",
                      "--set", f"cells={cells}", "--set", "device=cpu", "--input", genes, "--out", out)
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    ident = load_gene_identity()
    assert store.key_namespace == "ensembl_gene_id" and store.dim == EMBSIZE
    assert list(store.ids) == [ident.resolve(s).ensembl_id for s in EXPRESSED]
    tokens = list(store.labels("vocab_token"))
    np.testing.assert_allclose(store.vectors(), expected_vectors(checkpoint, tokens), atol=1e-5, rtol=0)
    manifest = store.manifest
    files = {Path(f["path"]).name: f["sha256"] for f in manifest["checkpoint"]["files"]}
    cells_sha = hashlib.sha256(cells.read_bytes()).hexdigest()
    assert files["controls.h5ad"] == cells_sha and {"args.json", "vocab.json", "best_model.pt"} < set(files)
    provenance = manifest["provenance"]
    assert provenance["mode"] == "control_cells" and provenance["cells_sha256"] == cells_sha
    assert provenance["cells_used"] == CONTROLS and provenance["max_length"] == 1200
    assert provenance["cells_filter"] == "obs['gene'] == 'non-targeting'" and provenance["truncated_cells"] == 0


def test_extract_without_input_embeds_every_gene_the_cells_express(checkpoint, cells, tmp_path):
    out = tmp_path / "all.zarr"
    outcome = run_cli("extract", "--model", "scgpt-human-controls", "--set", f"checkpoint={checkpoint}",
                      "--set", f"cells={cells}", "--set", "device=cpu", "--out", out)
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    vocab = json.loads((checkpoint / "vocab.json").read_text())
    means = expected_gene_means(checkpoint)
    assert sorted(vocab[t] for t in store.labels("vocab_token")) == sorted(means)
    expected = np.stack([means[vocab[t]][0] for t in store.labels("vocab_token")])
    np.testing.assert_allclose(store.vectors(), expected, atol=1e-5, rtol=0)


def test_a_resumed_extraction_equals_an_uninterrupted_one_and_refuses_a_changed_cells_file(tmp_path, monkeypatch):
    from embhub.errors import StoreError
    from embhub.extract import extract
    from embhub.plugins import load_plugins
    from embhub.registry import ModelSpec
    from tests.core.test_resume import extract_killed_after_the_first_batch, whole_and_resumed

    directory = write_checkpoint(tmp_path / "scGPT_human")
    cells = write_cells(tmp_path / "controls.h5ad")
    items = [Item(s, s, row) for row, s in enumerate(["GAPDH", "MYC", "KRAS", "TP53", "CDK4", "BRCA2", "MDM2"], 1)]
    spec = ModelSpec("scgpt-controls-tiny", "scgpt", checkpoint=str(directory))
    first, second = whole_and_resumed(spec, lambda: provider_for(directory, cells), items, tmp_path, monkeypatch, batch_size=2)
    assert list(first.ids) == list(second.ids) and len(first.ids) == 5
    np.testing.assert_array_equal(first.vectors(), second.vectors())
    interrupted = tmp_path / "interrupted.zarr"
    extract_killed_after_the_first_batch(spec, provider_for(directory, cells), items, interrupted, monkeypatch, batch_size=2)
    write_cells(cells, counts_table().iloc[::-1])
    with pytest.raises(StoreError, match="other contents of .*controls.h5ad"):
        extract(spec, provider_for(directory, cells), items, interrupted, plugins=load_plugins(), batch_size=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_vectors_follow_the_cpu_ones(checkpoint, cells):
    items = [Item(s, s) for s in EXPRESSED]
    cpu = provider_for(checkpoint, cells).embed(items).vectors
    gpu = ScgptEmbeddings(ScgptEmbeddings.Parameters(
        checkpoint=str(checkpoint), mode="control_cells", cells=str(cells), device="cuda", tokens_per_batch=64))
    np.testing.assert_allclose(gpu.embed(items).vectors, cpu, atol=1e-4)
    assert gpu.provenance()["device"].startswith("cuda")
