"""ESM-2 provider on a tiny random checkpoint saved in the real Hugging Face format and real human
Swiss-Prot sequences (tests/data/proteins). Expected vectors come from direct transformers calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from embhub.identity.genes import load_gene_identity  # noqa: E402
from embhub.provider import Item  # noqa: E402
from embhub.store import EmbeddingStore  # noqa: E402
from embhub_esm2 import Esm2Embeddings  # noqa: E402
from embhub_esm2.encoder import plan_batches, split_windows, Window  # noqa: E402
from embhub_esm2.sequences import canonical_sequences, read_fasta  # noqa: E402
from tests.support.cli import assert_one_line_error, run_cli  # noqa: E402

FASTA = Path(__file__).parents[1] / "data" / "proteins" / "human_swissprot_2014_sample.fasta"
ESM_ALPHABET = "<cls> <pad> <eos> <unk> L A G V S E R T I D P K Q N F Y M H W C X B U Z O . - <null_1> <mask>".split()
"""The ESM-2 token vocabulary in id order (fair-esm's ``Alphabet`` for ESM-1b/ESM-2)."""


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide ESM-2-style model with random weights, saved as save_pretrained writes it."""
    directory = tmp_path_factory.mktemp("tiny-esm2")
    (directory / "vocab.txt").write_text("\n".join(ESM_ALPHABET) + "\n")
    tokenizer = transformers.EsmTokenizer(str(directory / "vocab.txt"))
    config = transformers.EsmConfig(
        vocab_size=len(ESM_ALPHABET),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=1026,
        position_embedding_type="rotary",
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        token_dropout=True,
        emb_layer_norm_before=False,
    )
    torch.manual_seed(0)
    transformers.EsmModel(config, add_pooling_layer=False).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def reference_model(tiny_checkpoint):
    model = transformers.EsmModel.from_pretrained(str(tiny_checkpoint), add_pooling_layer=False).eval()
    tokenizer = transformers.EsmTokenizer.from_pretrained(str(tiny_checkpoint))
    return model, tokenizer


def direct_mean(reference_model, sequence: str) -> np.ndarray:
    """One unpadded forward pass; mean of the last layer over residue positions 1..L."""
    model, tokenizer = reference_model
    with torch.no_grad():
        hidden = model(**tokenizer(sequence, return_tensors="pt")).last_hidden_state[0]
    assert hidden.shape[0] == len(sequence) + 2
    return hidden[1:-1].mean(dim=0).numpy()


def fasta_sequences() -> dict[str, str]:
    return {record.accession: record.sequence for record in read_fasta(FASTA)}


def provider_for(checkpoint: Path, **parameters) -> Esm2Embeddings:
    return Esm2Embeddings(Esm2Embeddings.Parameters(checkpoint=str(checkpoint), fasta=str(FASTA), device="cpu", **parameters))


SYMBOLS = ["TP53", "KRAS", "GAPDH", "MYC", "CDK4", "MDM2", "NDP", "ATG5"]


def test_pooled_vectors_equal_a_direct_transformers_forward_pass(tiny_checkpoint, reference_model):
    provider = provider_for(tiny_checkpoint, window=5000)
    result = provider.embed([Item(s, s) for s in SYMBOLS])
    assert result.failures == []
    ident = load_gene_identity()
    assert result.keys == [ident.resolve(s).ensembl_id for s in SYMBOLS]
    assert result.labels["symbol"] == SYMBOLS
    sequences = fasta_sequences()
    expected = np.stack([direct_mean(reference_model, sequences[acc]) for acc in result.labels["uniprot"]])
    assert result.vectors.shape == (len(SYMBOLS), 32)
    np.testing.assert_allclose(result.vectors, expected, atol=2e-5, rtol=1e-4)
    assert result.labels["uniprot"][0] == "P04637"


def test_batching_and_input_order_do_not_change_vectors(tiny_checkpoint):
    genes = [r.accession for r in read_fasta(FASTA)][::3]
    items = [Item(g, g) for g in genes]
    one_by_one = provider_for(tiny_checkpoint, window=400, max_tokens=3).embed(items)
    packed = provider_for(tiny_checkpoint, window=400, max_tokens=20000).embed(items)
    reversed_order = provider_for(tiny_checkpoint, window=400, max_tokens=4000).embed(items[::-1])
    assert one_by_one.failures == packed.failures == reversed_order.failures == []
    assert len(one_by_one.keys) == len(genes)
    np.testing.assert_allclose(packed.vectors, one_by_one.vectors, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(reversed_order.vectors[::-1], one_by_one.vectors, atol=2e-5, rtol=1e-4)


def test_long_proteins_are_split_into_windows_whose_residues_are_averaged(tiny_checkpoint, reference_model):
    egfr = fasta_sequences()["P00533"]
    assert len(egfr) == 1210
    vector = provider_for(tiny_checkpoint, window=300).embed([Item("EGFR", "EGFR")]).vectors[0]
    chunks = np.array_split(np.array(list(egfr)), int(np.ceil(len(egfr) / 300)))
    assert [len(c) for c in chunks] == [242] * 5
    window_means = np.stack([direct_mean(reference_model, "".join(c)) for c in chunks])
    expected = np.average(window_means, axis=0, weights=[len(c) for c in chunks])
    np.testing.assert_allclose(vector, expected, atol=2e-5, rtol=1e-4)
    whole = direct_mean(reference_model, egfr)
    assert not np.allclose(vector, whole, atol=1e-3), "windowing had no effect"


@pytest.mark.parametrize("length, window", [(1, 1022), (1022, 1022), (1023, 1022), (1210, 300), (34350, 1022)])
def test_windows_cover_the_protein_contiguously_within_the_window(length, window):
    bounds = split_windows(length, window)
    assert len(bounds) == int(np.ceil(length / window))
    assert bounds[0][0] == 0 and bounds[-1][1] == length
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) <= window and max(sizes) - min(sizes) <= 1


def test_batches_respect_the_token_budget_and_go_longest_first():
    rng = np.random.default_rng(0)
    windows = [Window(i, 0, int(n)) for i, n in enumerate(rng.integers(1, 600, size=200))]
    batches = plan_batches(windows, max_tokens=2048)
    assert sorted(i for b in batches for i in b) == list(range(200))
    for batch in batches:
        longest = max(windows[i].length for i in batch)
        assert len(batch) == 1 or len(batch) * (longest + 2) <= 2048
    firsts = [windows[b[0]].length for b in batches]
    assert firsts == sorted(firsts, reverse=True)


def test_residue_letters_outside_the_vocabulary_are_read_as_unknown(tiny_checkpoint, reference_model, tmp_path):
    fasta = tmp_path / "odd.fasta"
    fasta.write_text(">sp|P01116|RASK_HUMAN GTPase KRas OS=Homo sapiens OX=9606 GN=KRAS PE=1 SV=1\nMTEYJJKLVV*\n")
    provider = Esm2Embeddings(Esm2Embeddings.Parameters(checkpoint=str(tiny_checkpoint), fasta=str(fasta), device="cpu"))
    vector = provider.embed([Item("KRAS", "KRAS")]).vectors[0]
    np.testing.assert_allclose(vector, direct_mean(reference_model, "MTEYXXKLVV"), atol=2e-5, rtol=1e-4)


def test_canonical_sequence_prefers_reviewed_canonical_entries(tmp_path):
    fasta = tmp_path / "mixed.fasta"
    fasta.write_text(
        ">tr|TESTACC0|TESTACC0_HUMAN Tumor protein p53 OS=Homo sapiens OX=9606 GN=TP53\nMEEPQSDPSVEPPLSQETFSDLWKLL\n"
        ">sp|P04637-2|P53_HUMAN Isoform 2 of Cellular tumor antigen p53 OS=Homo sapiens GN=TP53\nMEEPQ\n"
        ">sp|P04637|P53_HUMAN Cellular tumor antigen p53 OS=Homo sapiens OX=9606 GN=TP53 PE=1 SV=4\nMEEPQSDP\n"
        ">sp|TESTACC1|NOTREAL_HUMAN Made-up entry OS=Homo sapiens OX=9606 GN=MYC PE=1 SV=1\nMPLNVS\n"
        ">sp|TESTACC2|NOTREAL2_HUMAN Made-up entry without a known gene OS=Homo sapiens OX=9606 GN=NOSUCHGENE1\nMA\n"
    )
    ident = load_gene_identity()
    chosen = canonical_sequences(read_fasta(fasta), ident)
    tp53, myc = ident.resolve("TP53").ensembl_id, ident.resolve("MYC").ensembl_id
    assert chosen[tp53].accession == "P04637" and chosen[tp53].sequence == "MEEPQSDP"
    assert chosen[myc].accession == "TESTACC1", "GN= is used when the accession is not in the identity table"
    assert len(chosen) == 2


def test_genes_without_a_sequence_or_unknown_ids_are_reported_not_dropped(tiny_checkpoint):
    provider = provider_for(tiny_checkpoint)
    result = provider.embed([Item("a", "TP53"), Item("b", "BRCA2"), Item("c", "NOT_A_GENE_XYZ")])
    assert result.input_ids == ["a"]
    reasons = {f.input_id: f.reason for f in result.failures}
    assert "no protein sequence for gene 'BRCA2'" in reasons["b"] and str(FASTA) in reasons["b"]
    assert reasons["c"].startswith("unknown gene id 'NOT_A_GENE_XYZ'")


def test_extract_without_input_embeds_every_gene_of_the_fasta(tiny_checkpoint, tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "models:\n"
        "  esm2-tiny:\n"
        "    provider: esm2\n"
        f"    checkpoint: {tiny_checkpoint}\n"
        f"    parameters: {{fasta: {FASTA}, device: cpu, max_tokens: 8192}}\n"
    )
    out = tmp_path / "esm2.zarr"
    outcome = run_cli("extract", "--model", "esm2-tiny", "--registry", registry, "--out", out)
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    assert len(store.ids) == 40 and store.dim == 32
    assert store.key_namespace == "ensembl_gene_id"
    symbols = dict(zip(store.ids, store.labels("symbol")))
    assert symbols[load_gene_identity().resolve("TP53").ensembl_id] == "TP53"
    provenance = store.manifest["provenance"]
    assert provenance["gene_id_release"] == load_gene_identity().release
    assert provenance["device"] == "cpu" and provenance["precision"] == "float32"
    hashed = {Path(f["path"]).name for f in store.manifest["checkpoint"]["files"]}
    assert {"model.safetensors", "config.json", "vocab.txt", FASTA.name} <= hashed


def test_missing_fasta_is_a_one_line_error(tiny_checkpoint, tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"models:\n  esm2-tiny:\n    provider: esm2\n    checkpoint: {tiny_checkpoint}\n")
    outcome = run_cli("extract", "--model", "esm2-tiny", "--registry", registry, "--out", tmp_path / "x.zarr")
    assert_one_line_error(outcome, "fasta")


def test_a_missing_fasta_is_reported_before_any_weights_are_downloaded(tmp_path, monkeypatch):
    import embhub_esm2
    from embhub.errors import InputError
    from embhub.extract import extract
    from embhub.plugins import load_plugins
    from embhub.registry import ModelSpec

    downloads = []
    monkeypatch.setattr(embhub_esm2, "_hub_snapshot", lambda *arguments: downloads.append(arguments) or tmp_path)
    fasta = tmp_path / "missing.fasta"
    spec = ModelSpec("esm2-650m", "esm2", parameters={"fasta": str(fasta)}, checkpoint="facebook/esm2_t33_650M_UR50D")
    provider = Esm2Embeddings(Esm2Embeddings.Parameters(checkpoint=spec.checkpoint, fasta=str(fasta)))
    with pytest.raises(InputError, match=r"missing\.fasta, which does not exist; .*set the parameter fasta"):
        extract(spec, provider, [Item("TP53", "TP53")], tmp_path / "x.zarr", plugins=load_plugins())
    assert downloads == []


def test_a_checkpoint_directory_that_does_not_exist_is_named_as_a_path_not_a_hub_name(tmp_path):
    missing = tmp_path / "esm2_t6_8M_UR50D"
    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\nKRAS\n")
    outcome = run_cli("extract", "--model", "esm2-8m", "--set", f"checkpoint={missing}", "--set", f"fasta={FASTA}",
                      "--input", genes, "--out", tmp_path / "x.zarr")
    assert_one_line_error(outcome, f"checkpoint '{missing}' is not a directory here nor a Hub name", "fix the path")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_half_precision_vectors_follow_the_cpu_fp32_ones(tiny_checkpoint):
    items = [Item(s, s) for s in SYMBOLS]
    cpu = provider_for(tiny_checkpoint).embed(items).vectors
    gpu = Esm2Embeddings(Esm2Embeddings.Parameters(checkpoint=str(tiny_checkpoint), fasta=str(FASTA), device="cuda"))
    half = gpu.embed(items).vectors
    assert gpu.provenance()["precision"] in ("bfloat16", "float16")
    cosine = (half * cpu).sum(1) / np.linalg.norm(half, axis=1) / np.linalg.norm(cpu, axis=1)
    assert cosine.min() > 0.999


def test_a_fasta_is_gunzipped_by_content_and_a_damaged_one_is_one_line(tiny_checkpoint, tmp_path):
    import gzip

    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\nKRAS\n")

    def extract(fasta, out):
        return run_cli("extract", "--model", "esm2-8m", "--set", f"checkpoint={tiny_checkpoint}", "--set", f"fasta={fasta}",
                       "--input", genes, "--out", tmp_path / out)

    assert extract(FASTA, "plain.zarr").exit_code == 0
    unlabelled = tmp_path / "proteome.fasta"
    unlabelled.write_bytes(gzip.compress(FASTA.read_bytes()))
    assert extract(unlabelled, "gz.zarr").exit_code == 0
    plain, gunzipped = EmbeddingStore.open(tmp_path / "plain.zarr"), EmbeddingStore.open(tmp_path / "gz.zarr")
    assert len(plain) == 2 and list(gunzipped.ids) == list(plain.ids)
    np.testing.assert_array_equal(gunzipped.vectors(), plain.vectors())

    truncated = tmp_path / "proteome.fasta.gz"
    truncated.write_bytes(gzip.compress(FASTA.read_bytes())[:2000])
    assert_one_line_error(extract(truncated, "t.zarr"), str(truncated), "gzip")
    latin1 = tmp_path / "latin1.fasta"
    latin1.write_bytes(b">sp|P04637|P53_HUMAN Cellular tumor antigen p53, caf\xe9 GN=TP53\nMEEPQSDPSV\n")
    assert_one_line_error(extract(latin1, "l.zarr"), str(latin1), "UTF-8")


def test_a_bad_fasta_or_checkpoint_fails_before_a_store_exists(tiny_checkpoint, reference_model, tmp_path):
    """Otherwise the corrected command meets an empty store of other parameters and is told to --overwrite."""
    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\n")
    out = tmp_path / "esm.zarr"

    def extract(checkpoint, fasta):
        return run_cli("extract", "--model", "esm2-8m", "--set", f"checkpoint={checkpoint}", "--set", f"fasta={fasta}",
                       "--input", genes, "--out", out)

    not_fasta = tmp_path / "proteins.fasta"
    not_fasta.write_text("MEEPQSDPSV\n>sp|P04637|P53_HUMAN\nMEEPQSDPSV\n")
    assert_one_line_error(extract(tiny_checkpoint, not_fasta), str(not_fasta), "before any '>' header")
    assert not out.exists()
    not_esm = tmp_path / "not-esm"
    not_esm.mkdir()
    (not_esm / "config.json").write_text('{"model_type": "bert"}')
    outcome = extract(not_esm, FASTA)
    assert_one_line_error(outcome, str(not_esm))
    assert not out.exists()
    assert extract(tiny_checkpoint, FASTA).exit_code == 0
    tp53 = canonical_sequences(read_fasta(FASTA), load_gene_identity())[load_gene_identity().resolve("TP53").ensembl_id]
    np.testing.assert_allclose(EmbeddingStore.open(out).vectors()[0], direct_mean(reference_model, tp53.sequence),
                               atol=2e-5, rtol=1e-4)
