"""scGPT provider on a tiny random checkpoint folder written in the released format (args.json, vocab.json built
from a subset of scGPT's real gene vocabulary, best_model.pt with TransformerModel's key names, in both attention
namings). Expected vectors are the LayerNorm of the saved embedding rows, computed here in numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from embhub.identity.genes import load_gene_identity  # noqa: E402
from embhub.provider import Item  # noqa: E402
from embhub.store import EmbeddingStore  # noqa: E402
from embhub_scgpt import ScgptEmbeddings  # noqa: E402
from tests.support.cli import assert_one_line_error, run_cli  # noqa: E402

REAL_VOCAB_SUBSET = Path(__file__).parents[1] / "data" / "scgpt" / "default_gene_vocab_subset.json"
EMBSIZE, NHEADS, D_HID, NLAYERS = 16, 2, 32, 2
SYMBOLS = ["TP53", "KRAS", "GAPDH", "MYC", "CDK4", "MDM2", "ATG5", "EGFR", "NDP"]


def real_vocab() -> dict[str, int]:
    """The shipped genes renumbered from 1 after ``<pad>`` = 0, with ``<cls>`` and ``<eoc>`` at the end."""
    genes = json.loads(REAL_VOCAB_SUBSET.read_text())
    tokens = ["<pad>", *sorted(genes, key=genes.get), "<cls>", "<eoc>"]
    return {token: index for index, token in enumerate(tokens)}


def tiny_state_dict(vocab_size: int, attention: str) -> dict[str, torch.Tensor]:
    """Every weight of scGPT's TransformerModel (continuous value encoder, MVC decoder), named as it saves them."""
    torch.manual_seed(0)
    state = {
        "encoder.embedding.weight": torch.randn(vocab_size, EMBSIZE),
        "encoder.enc_norm.weight": 1 + 0.3 * torch.randn(EMBSIZE),
        "encoder.enc_norm.bias": 0.2 * torch.randn(EMBSIZE),
        "value_encoder.linear1.weight": torch.randn(EMBSIZE, 1),
        "value_encoder.linear1.bias": torch.randn(EMBSIZE),
        "value_encoder.linear2.weight": torch.randn(EMBSIZE, EMBSIZE),
        "value_encoder.linear2.bias": torch.randn(EMBSIZE),
        "value_encoder.norm.weight": torch.ones(EMBSIZE),
        "value_encoder.norm.bias": torch.zeros(EMBSIZE),
    }
    layer = torch.nn.TransformerEncoderLayer(EMBSIZE, NHEADS, D_HID, batch_first=True)
    for index in range(NLAYERS):
        for name, tensor in layer.state_dict().items():
            if attention == "Wqkv":
                name = name.replace("in_proj_", "Wqkv.")
            state[f"transformer_encoder.layers.{index}.{name}"] = torch.randn_like(tensor)
    for index in (0, 2, 4):
        shape = (1, EMBSIZE) if index == 4 else (EMBSIZE, EMBSIZE)
        state[f"decoder.fc.{index}.weight"] = torch.randn(shape)
        state[f"decoder.fc.{index}.bias"] = torch.randn(shape[0])
    state["mvc_decoder.gene2query.weight"] = torch.randn(EMBSIZE, EMBSIZE)
    state["mvc_decoder.gene2query.bias"] = torch.randn(EMBSIZE)
    state["mvc_decoder.W.weight"] = torch.randn(EMBSIZE, EMBSIZE)
    return state


def write_checkpoint(directory: Path, attention: str = "Wqkv") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    vocab = real_vocab()
    args = {
        "embsize": EMBSIZE, "nheads": NHEADS, "d_hid": D_HID, "nlayers": NLAYERS, "n_layers_cls": 3, "dropout": 0.2,
        "pad_token": "<pad>", "pad_value": -2, "mask_value": -1, "input_emb_style": "continuous", "n_bins": 51,
        "max_seq_len": 1200, "fast_transformer": attention == "Wqkv", "MVC": True,
    }
    (directory / "args.json").write_text(json.dumps(args, indent=4))
    (directory / "vocab.json").write_text(json.dumps(vocab))
    torch.save(tiny_state_dict(len(vocab), attention), directory / "best_model.pt")
    return directory


@pytest.fixture(scope="module", params=["Wqkv", "in_proj"])
def checkpoint(request, tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp(f"scgpt-{request.param}"), request.param)


def provider_for(directory: Path, **parameters) -> ScgptEmbeddings:
    return ScgptEmbeddings(ScgptEmbeddings.Parameters(checkpoint=str(directory), device="cpu", **parameters))


def gene_encoder_by_hand(directory: Path, tokens: list[str]) -> np.ndarray:
    """LayerNorm (eps 1e-5) of the tokens' embedding rows, in float64 from the saved tensors."""
    state = torch.load(directory / "best_model.pt", weights_only=True)
    vocab = json.loads((directory / "vocab.json").read_text())
    rows = state["encoder.embedding.weight"].double().numpy()[[vocab[t] for t in tokens]]
    weight, bias = (state[f"encoder.enc_norm.{p}"].double().numpy() for p in ("weight", "bias"))
    centred = rows - rows.mean(axis=1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(axis=1, keepdims=True) + 1e-5) * weight + bias


def test_vectors_are_the_layer_norm_of_the_genes_embedding_rows(checkpoint):
    result = provider_for(checkpoint).embed([Item(s, s) for s in SYMBOLS])
    assert result.failures == []
    ident = load_gene_identity()
    assert result.keys == [ident.resolve(s).ensembl_id for s in SYMBOLS]
    assert result.labels == {"symbol": SYMBOLS, "vocab_token": SYMBOLS}
    assert result.vectors.shape == (len(SYMBOLS), EMBSIZE) and result.vectors.dtype == np.float32
    np.testing.assert_allclose(result.vectors, gene_encoder_by_hand(checkpoint, SYMBOLS), atol=1e-6, rtol=0)


def test_any_gene_id_the_identity_layer_knows_gives_the_same_vector(checkpoint):
    ident = load_gene_identity()
    tp53 = ident.resolve("TP53").ensembl_id
    result = provider_for(checkpoint).embed([Item("a", "TP53"), Item("b", tp53), Item("c", "tp53"), Item("d", "7157")])
    assert result.failures == [] and result.keys == [tp53] * 4
    np.testing.assert_array_equal(result.vectors, np.repeat(result.vectors[:1], 4, axis=0))


def test_genes_whose_token_is_a_previous_symbol_or_an_alias_get_that_token(checkpoint):
    """The vocabulary has SMIM11 (SMIM11A's previous symbol), PHB1 (an alias of PHB), and both PEX1 and its
    previous symbol ZWS1: the approved symbol wins."""
    result = provider_for(checkpoint).embed([Item(s, s) for s in ("SMIM11A", "PHB", "PEX1", "ZWS1")])
    assert result.failures == []
    assert result.labels["symbol"] == ["SMIM11A", "PHB", "PEX1", "PEX1"]
    assert result.labels["vocab_token"] == ["SMIM11", "PHB1", "PEX1", "PEX1"]
    np.testing.assert_allclose(result.vectors, gene_encoder_by_hand(checkpoint, result.labels["vocab_token"]), atol=1e-6)
    assert result.counts == {"vocab_token_is_previous_symbol": 1, "vocab_token_is_alias": 1}


def test_unknown_ambiguous_and_unmatched_genes_are_failures_naming_the_gene(checkpoint):
    items = [Item("unknown", "NOT_A_GENE_XYZ"), Item("ambiguous", "S9"), Item("absent", "BRCA2"),
             Item("two-tokens", "TAZ"), Item("shared-token", "GRK7"), Item("fine", "KRAS")]
    result = provider_for(checkpoint).embed(items)
    assert result.input_ids == ["fine"]
    reasons = {f.input_id: f.reason for f in result.failures}
    assert reasons["unknown"].startswith("unknown gene id 'NOT_A_GENE_XYZ'")
    assert reasons["ambiguous"].startswith("ambiguous gene id 'S9'")
    vocab = checkpoint / "vocab.json"
    assert reasons["absent"].startswith("gene 'BRCA2' (ENSG00000139618 BRCA2) is not in the scGPT vocabulary")
    assert str(vocab) in reasons["absent"]
    assert "several equally good tokens" in reasons["two-tokens"] and "(CMD3A, EFE2)" in reasons["two-tokens"]
    assert "only by GPRK7, which also name other genes" in reasons["shared-token"]


def test_extract_through_the_cli_writes_a_store_keyed_by_ensembl_ids(checkpoint, tmp_path):
    genes = tmp_path / "genes.txt"
    genes.write_text("\n".join([*SYMBOLS, "SMIM11A", "BRCA2"]) + "\n")
    out = tmp_path / "scgpt.zarr"
    outcome = run_cli("extract", "--model", "scgpt-human-gene-token", "--set", f"checkpoint={checkpoint}",
                      "--set", "device=cpu", "--input", genes, "--out", out)
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    ident = load_gene_identity()
    assert store.key_namespace == "ensembl_gene_id" and store.dim == EMBSIZE
    assert list(store.ids) == [ident.resolve(s).ensembl_id for s in [*SYMBOLS, "SMIM11A"]]
    assert list(store.labels("vocab_token")) == [*SYMBOLS, "SMIM11"]
    expected = gene_encoder_by_hand(checkpoint, [*SYMBOLS, "SMIM11"])
    np.testing.assert_allclose(store.vectors(), expected, atol=1e-6, rtol=0)
    manifest = store.manifest
    assert {Path(f["path"]).name for f in manifest["checkpoint"]["files"]} == {"args.json", "vocab.json", "best_model.pt"}
    provenance = manifest["provenance"]
    assert provenance["gene_id_release"] == ident.release and provenance["device"] == "cpu"
    assert provenance["vocab_token_is_previous_symbol"] == 1 and provenance["layers"] == NLAYERS
    naming = json.loads((checkpoint / "args.json").read_text())["fast_transformer"]
    assert provenance["attention_weights"].startswith("Wqkv" if naming else "in_proj")


def test_extract_without_input_embeds_every_gene_the_vocabulary_names(checkpoint, tmp_path):
    out = tmp_path / "all.zarr"
    outcome = run_cli("extract", "--model", "scgpt-human-gene-token", "--set", f"checkpoint={checkpoint}",
                      "--set", "device=cpu", "--out", out)
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    ident = load_gene_identity()
    tokens = [t for t in real_vocab() if not t.startswith("<")]
    resolved = {t: ident.resolve(t) for t in tokens}
    named = {r.ensembl_id for r in resolved.values() if r.resolved}
    conflicted = {ident.resolve("TAZ").ensembl_id}
    assert set(store.ids) == named - conflicted
    assert len(store.ids) == len(named) - 1 < len(tokens)
    labelled = dict(zip(store.ids, store.labels("vocab_token")))
    np.testing.assert_allclose(store.vectors(), gene_encoder_by_hand(checkpoint, [labelled[g] for g in store.ids]), atol=1e-6)


def _corrupt_args(d):
    (d / "args.json").write_text('{"embsize": 16, "nlayers": ')


def _args_without_embsize(d):
    (d / "args.json").write_text(json.dumps({"nlayers": NLAYERS}))


def _corrupt_vocab(d):
    (d / "vocab.json").write_text("TP53 0\nKRAS 1\n")


def _vocab_of_another_model(d):
    vocab = json.loads((d / "vocab.json").read_text())
    vocab["NEWGENE1"] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab))


def _corrupt_weights(d):
    (d / "best_model.pt").write_bytes(b"not a torch file")


def _weights_missing_the_encoder_norm(d):
    state = torch.load(d / "best_model.pt", weights_only=True)
    del state["encoder.enc_norm.bias"]
    torch.save(state, d / "best_model.pt")


@pytest.mark.parametrize("damage, fragments", [
    (lambda d: (d / "args.json").unlink(), ["has no args.json", "download the scGPT model folder"]),
    (_corrupt_args, ["args.json is not valid JSON", "download"]),
    (_args_without_embsize, ["args.json has no positive integer 'embsize'", "download"]),
    (lambda d: (d / "vocab.json").unlink(), ["has no vocab.json", "download"]),
    (_corrupt_vocab, ["vocab.json is not valid JSON", "download"]),
    (_vocab_of_another_model, ["best_model.pt has a gene embedding of shape (63, 16)", "vocab.json", "(64, 16)"]),
    (lambda d: (d / "best_model.pt").unlink(), ["has no best_model.pt", "download"]),
    (_corrupt_weights, ["best_model.pt cannot be read as a torch state dict", "download"]),
    (_weights_missing_the_encoder_norm, ["best_model.pt lacks encoder.enc_norm.bias", "not an scGPT TransformerModel"]),
])
def test_a_broken_checkpoint_folder_is_one_line_naming_the_file_and_the_fix(tmp_path, damage, fragments):
    directory = write_checkpoint(tmp_path / "scGPT_human")
    damage(directory)
    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\nKRAS\n")
    outcome = run_cli("extract", "--model", "scgpt-human-gene-token", "--set", f"checkpoint={directory}",
                      "--set", "device=cpu", "--input", genes, "--out", tmp_path / "x.zarr")
    assert_one_line_error(outcome, str(directory), *fragments)


def test_a_checkpoint_folder_that_does_not_exist_is_one_line(tmp_path):
    missing = tmp_path / "scGPT_human"
    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\n")
    outcome = run_cli("extract", "--model", "scgpt-human-gene-token", "--set", f"checkpoint={missing}",
                      "--input", genes, "--out", tmp_path / "x.zarr")
    assert_one_line_error(outcome, f"scGPT checkpoint folder '{missing}' does not exist", "--set checkpoint=DIR")


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of gene_token, control_cells"):
        ScgptEmbeddings.Parameters(checkpoint="x", mode="cell_mean")


def test_a_resumed_extraction_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    from embhub.registry import ModelSpec
    from tests.core.test_resume import whole_and_resumed

    directory = write_checkpoint(tmp_path / "scGPT_human")
    items = [Item(s, s, row) for row, s in enumerate(["TP53", "SMIM11A", "BRCA2", "PHB", "KRAS", "MYC", "GAPDH"], 1)]
    spec = ModelSpec("scgpt-tiny", "scgpt", checkpoint=str(directory))
    first, second = whole_and_resumed(spec, lambda: provider_for(directory), items, tmp_path, monkeypatch, batch_size=2)
    assert list(first.ids) == list(second.ids) and len(first.ids) == 6
    np.testing.assert_array_equal(first.vectors(), second.vectors())
    for store in (first, second):
        assert store.manifest["provenance"]["vocab_token_is_previous_symbol"] == 1
        assert store.manifest["provenance"]["vocab_token_is_alias"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_gpu_vectors_follow_the_cpu_ones(checkpoint, precision):
    items = [Item(s, s) for s in SYMBOLS]
    cpu = provider_for(checkpoint).embed(items).vectors
    gpu = ScgptEmbeddings(ScgptEmbeddings.Parameters(checkpoint=str(checkpoint), device="cuda", precision=precision))
    vectors = gpu.embed(items).vectors
    assert gpu.provenance()["device"].startswith("cuda")
    if precision == "fp32":
        np.testing.assert_allclose(vectors, cpu, atol=1e-5)
    else:
        assert gpu.provenance()["precision"] in ("bfloat16", "float16")
        cosine = (vectors * cpu).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(cpu, axis=1)
        assert cosine.min() > 0.999
