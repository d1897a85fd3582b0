"""The ChemBERTa path: a RoBERTa checkpoint with its own byte-level BPE tokenizer, saved in Hugging Face format.

The checkpoint is random and tiny (built here); the expected vectors come from ``AutoTokenizer`` and
``AutoModel`` called directly, one molecule at a time, so padding and batching in the plugin are
checked as well as pooling and layer choice.
"""

import numpy as np
import pytest
from rdkit import Chem

from embhub.provider import Item
from embhub.store import EmbeddingStore
from embhub_smiles_transformer import SmilesTransformer
from tests.support.cli import run_cli

TRAINING_SMILES = [
    "CC(=O)Oc1ccccc1C(=O)O",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "O=C(CCCCCCC(=O)Nc1ccccc1)NO",
    "OC(=O)CCCc1ccc(N(CCCl)CCCl)cc1",
    "C[C@@H](N)C(=O)O",
    "Brc1ccccc1",
    "FC(F)(F)c1ccc(O)cc1",
]
MOLECULES = {
    "aspirin": "OC(=O)c1ccccc1OC(C)=O",
    "ibuprofen": "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "alanine": "C[C@@H](N)C(=O)O",
    "methane": "C",
    "chlorambucil": "OC(=O)CCCc1ccc(N(CCCl)CCCl)cc1",
}
MAX_TOKENS = 40


@pytest.fixture(scope="module")
def chemberta_like(tmp_path_factory):
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    directory = tmp_path_factory.mktemp("tiny-chemberta")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TRAINING_SMILES, vocab_size=300, min_frequency=1, special_tokens=specials)
    bpe.save_model(str(directory))
    tokenizer = RobertaTokenizer.from_pretrained(directory, model_max_length=MAX_TOKENS)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=MAX_TOKENS + 2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    RobertaModel(config, add_pooling_layer=False).eval().save_pretrained(directory)
    return directory


def expected_vectors(directory, smiles_by_name, pooling, layer):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    special = set(tokenizer.all_special_ids)
    vectors = {}
    for name, smiles in smiles_by_name.items():
        ids = tokenizer(Chem.MolToSmiles(Chem.MolFromSmiles(smiles)))["input_ids"]
        with torch.no_grad():
            states = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0]
        keep = torch.tensor([i not in special for i in ids])
        vectors[name] = (states[0] if pooling == "cls" else states[keep].mean(0)).numpy()
    return vectors


@pytest.mark.parametrize("pooling,layer", [("mean", -1), ("cls", -1), ("mean", 1)])
def test_vectors_equal_direct_forward_through_own_tokenizer(chemberta_like, pooling, layer):
    provider = SmilesTransformer(
        SmilesTransformer.Parameters(checkpoint=str(chemberta_like), pooling=pooling, layer=layer, forward_batch_size=2,
                                     device="cpu")
    )
    result = provider.embed([Item(name, smiles) for name, smiles in MOLECULES.items()])
    assert result.input_ids == list(MOLECULES) and not result.failures
    expected = expected_vectors(chemberta_like, MOLECULES, pooling, layer)
    for row, name in enumerate(result.input_ids):
        np.testing.assert_allclose(result.vectors[row], expected[name], atol=1e-5)
    assert provider.provenance()["tokenizer"] == "CheckpointTokenizer"
    assert provider.dim == 32


def test_extraction_through_cli_reports_overlong_and_invalid_smiles(tmp_path, chemberta_like):
    long_chain = "C" + "C(F)(Cl)" * 20 + "C"
    table = tmp_path / "drugs.csv"
    table.write_text("id,smiles\naspirin,CC(=O)Oc1ccccc1C(=O)O\nlong," + long_chain + "\nbroken,c1ccc\n")
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"models:\n  tiny:\n    provider: smiles-transformer\n    checkpoint: {chemberta_like}\n"
                        "    parameters: {device: cpu}\n")
    out = tmp_path / "tiny.zarr"
    outcome = run_cli("extract", "-m", "tiny", "-i", table, "-o", out, "--registry", registry)
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    assert list(store.input_ids) == ["aspirin"]
    failures = {f["input_id"]: f["reason"] for f in store.failures()}
    assert f"more than the model's limit of {MAX_TOKENS}" in failures["long"]
    assert "invalid SMILES 'c1ccc'" in failures["broken"]
    expected = expected_vectors(chemberta_like, {"aspirin": "CC(=O)Oc1ccccc1C(=O)O"}, "mean", -1)["aspirin"]
    np.testing.assert_allclose(store.vectors()[0], expected, atol=1e-5)
    names = {f.split("/")[-1] for f in (entry["path"] for entry in store.manifest["checkpoint"]["files"])}
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json"} <= names


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_half_precision_vectors_follow_the_cpu_fp32_ones(chemberta_like):
    items = [Item(name, smiles) for name, smiles in MOLECULES.items()]
    cpu = SmilesTransformer(SmilesTransformer.Parameters(checkpoint=str(chemberta_like), device="cpu")).embed(items)
    gpu = SmilesTransformer(SmilesTransformer.Parameters(checkpoint=str(chemberta_like), device="cuda"))
    half = gpu.embed(items)
    assert half.input_ids == cpu.input_ids == list(MOLECULES)
    assert gpu.provenance()["torch_dtype"] in ("bfloat16", "float16")
    a, b = half.vectors, cpu.vectors
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.999
