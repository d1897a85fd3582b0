"""AIDO.Cell provider on a tiny random checkpoint written in the on-hub format (config.json + model.safetensors
with CellFoundationModel's parameter names, widths scaled down) and the real 19,264-gene index, so positions map
to real genes. Expected vectors are rows of the saved tensor read back with the safetensors library."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from embhub.errors import InputError
from embhub.identity.genes import load_gene_identity
from embhub.provider import Item
from embhub.store import EmbeddingStore
from embhub_aido_cell import AidoCellEmbeddings
from tests.support.cli import assert_one_line_error, run_cli

def genbio_index_file() -> Path | None:
    """The index inside an installed modelgenerator (the Makefile installs it for the tests, without its deps)."""
    spec = importlib.util.find_spec("modelgenerator")
    if spec is None:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "cell" / "gene_lists" / "OS_scRNA_gene_index.19264.tsv"


INDEX = genbio_index_file()
pytestmark = pytest.mark.skipif(
    INDEX is None, reason="needs GenBio's gene index: pip install --no-deps modelgenerator==0.1.3.post0"
)
HIDDEN, LAYERS, HEADS, FFN, BINS = 8, 2, 2, 16, 10
ROWS = 19264 + 2


def index_positions() -> dict[str, int]:
    """Gene name → position, read from the shipped TSV with plain text tools (not the plugin's reader)."""
    lines = INDEX.read_text().splitlines()
    return {name: int(position) for name, position in (line.split("\t") for line in lines[1:])}


def cellfoundation_state(rng: np.random.Generator, rows: int = ROWS, hidden: int = HIDDEN) -> dict[str, np.ndarray]:
    """Every tensor of CellFoundationModel (LayerNorm, swiglu, absolute positions) with random values."""
    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    state = {
        "gene_embedding.linear1.weight": r(BINS, 1), "gene_embedding.linear1.bias": r(BINS),
        "gene_embedding.linear2.weight": r(BINS, BINS), "gene_embedding.linear2.bias": r(BINS),
        "gene_embedding.lookup_table.weight": r(BINS, hidden),
        "gene_embedding.mask_embedding.weight": r(1, hidden), "gene_embedding.pad_embedding.weight": r(1, hidden),
        "position_embedding.weight": r(rows, hidden),
        "encoder.ln.weight": r(hidden), "encoder.ln.bias": r(hidden),
    }
    for i in range(LAYERS):
        layer = f"encoder.layer.{i}"
        for name in ("query", "key", "value"):
            state[f"{layer}.attention.self.{name}.weight"] = r(hidden, hidden)
            state[f"{layer}.attention.self.{name}.bias"] = r(hidden)
        state.update({
            f"{layer}.attention.ln.weight": r(hidden), f"{layer}.attention.ln.bias": r(hidden),
            f"{layer}.attention.output.dense.weight": r(hidden, hidden), f"{layer}.attention.output.dense.bias": r(hidden),
            f"{layer}.ln.weight": r(hidden), f"{layer}.ln.bias": r(hidden),
            f"{layer}.mlp.up_proj.weight": r(FFN, hidden), f"{layer}.mlp.up_proj.bias": r(FFN),
            f"{layer}.mlp.gate_proj.weight": r(FFN, hidden), f"{layer}.mlp.gate_proj.bias": r(FFN),
            f"{layer}.mlp.down_proj.weight": r(hidden, FFN), f"{layer}.mlp.down_proj.bias": r(hidden),
        })
    return state


def cellfoundation_config(hidden: int = HIDDEN) -> dict:
    return {
        "model_type": "cellfoundation", "architectures": ["CellFoundationModel"], "hidden_size": hidden,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": FFN, "hidden_act": "swiglu",
        "max_position_embeddings": ROWS - 2, "position_embedding_type": "absolute", "normalization_type": "LayerNorm",
        "layer_norm_eps": 1e-5, "bin_num": BINS, "bin_alpha": 1.0, "pad_token_id": -2, "mask_token_id": -1,
        "add_linear_bias": True, "_use_flash_attention_2": True, "torch_dtype": "float32",
    }


def write_checkpoint(directory: Path, state: dict[str, np.ndarray], config: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config or cellfoundation_config()))
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("tiny-aido-cell"), cellfoundation_state(np.random.default_rng(0)))


def provider_for(checkpoint: Path) -> AidoCellEmbeddings:
    return AidoCellEmbeddings(AidoCellEmbeddings.Parameters(checkpoint=str(checkpoint)))


SYMBOLS = ["TP53", "KRAS", "GAPDH", "MYC", "A1BG", "ZZZ3", "CDK4", "STAT1"]


def test_vectors_are_the_rows_of_the_position_table_at_each_genes_index_position(tiny_checkpoint):
    result = provider_for(tiny_checkpoint).embed([Item(s, s) for s in SYMBOLS])
    assert result.failures == []
    ident = load_gene_identity()
    assert result.keys == [ident.resolve(s).ensembl_id for s in SYMBOLS]
    assert all(key.startswith("ENSG") for key in result.keys)
    assert result.labels["symbol"] == SYMBOLS
    positions = index_positions()
    assert result.labels["index_position"] == [str(positions[s]) for s in SYMBOLS]
    assert positions["A1BG"] == 0 and positions["ZZZ3"] == 19263
    table = load_file(str(tiny_checkpoint / "model.safetensors"))["position_embedding.weight"]
    np.testing.assert_array_equal(result.vectors, table[[positions[s] for s in SYMBOLS]])
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (len(SYMBOLS), HIDDEN)


def test_any_gene_id_the_identity_layer_resolves_reaches_the_same_row(tiny_checkpoint):
    ident = load_gene_identity()
    tp53 = ident.resolve("TP53").ensembl_id
    result = provider_for(tiny_checkpoint).embed([Item("a", "TP53"), Item("b", tp53), Item("c", "tp53"), Item("d", "7157")])
    assert result.failures == [] and result.keys == [tp53] * 4
    assert (result.vectors == result.vectors[0]).all()


def test_an_index_name_that_is_a_previous_symbol_is_keyed_by_the_current_gene(tiny_checkpoint):
    """The index dates from before some HGNC renames: an index name resolved as a previous symbol keys the
    current Ensembl gene, labelled with today's symbol and the index's name."""
    ident = load_gene_identity()
    positions = index_positions()
    renamed = next(name for name in positions if ident.resolve(name).matched_by == "previous_symbol")
    current = ident.resolve(renamed)
    result = provider_for(tiny_checkpoint).embed([Item("x", current.symbol)])
    assert result.keys == [current.ensembl_id]
    assert result.labels["index_symbol"] == [renamed] and result.labels["symbol"] == [current.symbol]
    table = load_file(str(tiny_checkpoint / "model.safetensors"))["position_embedding.weight"]
    np.testing.assert_array_equal(result.vectors[0], table[positions[renamed]])


def test_unknown_genes_and_genes_outside_the_index_are_failures_naming_the_gene(tiny_checkpoint):
    ident = load_gene_identity()
    positions = index_positions()
    outside = next(
        s for s in ("MT-ND1", "MALAT1", "XIST", "SNHG1", "H19") if s not in positions and ident.resolve(s).resolved
    )
    result = provider_for(tiny_checkpoint).embed([Item("a", "TP53"), Item("b", outside), Item("c", "NOT_A_GENE_XYZ")])
    assert result.input_ids == ["a"]
    reasons = {f.input_id: f.reason for f in result.failures}
    assert reasons["b"].startswith(f"gene '{outside}' ({ident.resolve(outside).ensembl_id} ")
    assert "not in AIDO.Cell's 19,264-gene input index" in reasons["b"]
    assert reasons["c"].startswith("unknown gene id 'NOT_A_GENE_XYZ'")
    assert len(result.vectors) == 1


def test_bf16_weights_are_widened_exactly(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as save_torch

    state = {k: torch.from_numpy(v) for k, v in cellfoundation_state(np.random.default_rng(1)).items()}
    state["position_embedding.weight"] = state["position_embedding.weight"].to(torch.bfloat16)
    directory = tmp_path / "bf16"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(cellfoundation_config()))
    save_torch(state, str(directory / "model.safetensors"))
    result = provider_for(directory).embed([Item(s, s) for s in SYMBOLS])
    positions = index_positions()
    expected = state["position_embedding.weight"].float().numpy()[[positions[s] for s in SYMBOLS]]
    np.testing.assert_array_equal(result.vectors, expected)


def test_a_checkpoint_saved_from_a_head_model_has_bert_prefixed_names(tmp_path):
    state = {f"bert.{k}": v for k, v in cellfoundation_state(np.random.default_rng(2)).items()}
    directory = write_checkpoint(tmp_path / "prefixed", state)
    vector = provider_for(directory).embed([Item("TP53", "TP53")]).vectors[0]
    np.testing.assert_array_equal(vector, state["bert.position_embedding.weight"][index_positions()["TP53"]])


def test_extract_through_the_cli_writes_a_store_keyed_by_ensembl_ids(tiny_checkpoint, tmp_path):
    genes = tmp_path / "genes.csv"
    genes.write_text("gene\nTP53\nKRAS\nGAPDH\nNOT_A_GENE_XYZ\n")
    out = tmp_path / "aido.zarr"
    outcome = run_cli("extract", "--model", "aido-cell-3m-positional", "--set", f"checkpoint={tiny_checkpoint}",
                      "--input", genes, "--out", out)
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    ident = load_gene_identity()
    assert list(store.ids) == [ident.resolve(s).ensembl_id for s in ("TP53", "KRAS", "GAPDH")]
    assert store.key_namespace == "ensembl_gene_id" and store.dim == HIDDEN
    assert list(store.labels("symbol")) == ["TP53", "KRAS", "GAPDH"]
    table = load_file(str(tiny_checkpoint / "model.safetensors"))["position_embedding.weight"]
    positions = index_positions()
    np.testing.assert_array_equal(store.vectors(), table[[positions[s] for s in ("TP53", "KRAS", "GAPDH")]])
    provenance = store.manifest["provenance"]
    assert provenance["tensor"] == "position_embedding.weight" and provenance["gene_index_size"] == 19264
    assert provenance["gene_id_release"] == ident.release
    hashed = {Path(f["path"]).name for f in store.manifest["checkpoint"]["files"]}
    assert {"config.json", "model.safetensors"} <= hashed


def test_extract_without_input_embeds_every_keyed_index_gene(tiny_checkpoint, tmp_path):
    out = tmp_path / "all.zarr"
    outcome = run_cli("extract", "--model", "aido-cell-3m-positional", "--set", f"checkpoint={tiny_checkpoint}",
                      "--out", out)
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    ident = load_gene_identity()
    positions = index_positions()
    expected = {}
    for name, position in positions.items():
        resolution = ident.resolve(name)
        if resolution.resolved:
            expected.setdefault(resolution.ensembl_id, []).append((name != resolution.symbol, position))
    assert len(store.ids) == len(expected) > 19000
    chosen = {key: min(candidates)[1] for key, candidates in expected.items()}
    table = load_file(str(tiny_checkpoint / "model.safetensors"))["position_embedding.weight"]
    np.testing.assert_array_equal(store.vectors(), table[[chosen[key] for key in store.ids]])
    assert store.manifest["provenance"]["gene_index_keyed"] == len(expected)


def test_resume_after_interruption_equals_an_uninterrupted_run(tiny_checkpoint, tmp_path, monkeypatch):
    from embhub.registry import ModelSpec
    from tests.core.test_resume import whole_and_resumed

    items = [Item(s, s, row) for row, s in enumerate([*SYMBOLS, "NOT_A_GENE_XYZ", "BRCA1"], 1)]
    spec = ModelSpec("aido", "aido-cell", checkpoint=str(tiny_checkpoint))
    a, b = whole_and_resumed(spec, lambda: provider_for(tiny_checkpoint), items, tmp_path, monkeypatch, batch_size=3)
    assert list(a.ids) == list(b.ids) and len(a.ids) == 9
    np.testing.assert_array_equal(a.vectors(), b.vectors())
    assert list(a.labels("index_position")) == list(b.labels("index_position"))


def registry_run(tmp_path: Path, checkpoint: Path, *settings: str, input_genes=("TP53", "KRAS"), out: Path | None = None):
    genes = tmp_path / "genes.txt"
    genes.write_text("".join(f"{gene}\n" for gene in input_genes))
    options = [argument for setting in settings for argument in ("--set", setting)]
    return run_cli("extract", "--model", "aido-cell-3m-positional", "--set", f"checkpoint={checkpoint}", *options,
                   "--input", genes, "--out", out or tmp_path / "x.zarr")


def broken_checkpoints(tmp_path: Path):
    """(directory, fragments its one-line error must contain) for each way a checkpoint can be wrong."""
    rng = np.random.default_rng(3)
    good = cellfoundation_state(rng)
    cases = {}

    d = write_checkpoint(tmp_path / "no-config", good)
    (d / "config.json").unlink()
    cases["no-config"] = (d, [f"{d / 'config.json'} does not exist", "download the checkpoint again"])

    d = write_checkpoint(tmp_path / "bad-config", good)
    (d / "config.json").write_text("{hidden_size: 8")
    cases["bad-config"] = (d, [f"{d / 'config.json'} is not valid JSON", "download the checkpoint again"])

    d = write_checkpoint(tmp_path / "no-weights", good)
    (d / "model.safetensors").unlink()
    cases["no-weights"] = (d, [f"{d / 'model.safetensors'} does not exist", "download the checkpoint again"])

    d = write_checkpoint(tmp_path / "bad-weights", good)
    (d / "model.safetensors").write_bytes(b"<html>rate limited</html>")
    cases["bad-weights"] = (d, [f"{d / 'model.safetensors'} is not a safetensors file", "download it again"])

    d = write_checkpoint(tmp_path / "truncated", good)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    cases["truncated"] = (d, [f"{d / 'model.safetensors'} is truncated or corrupt", "download it again"])

    d = write_checkpoint(tmp_path / "no-table", {k: v for k, v in good.items() if k != "position_embedding.weight"})
    cases["no-table"] = (d, [f"{d / 'model.safetensors'} has no 'position_embedding.weight' tensor",
                             "not an AIDO.Cell (CellFoundationModel) checkpoint"])

    d = write_checkpoint(tmp_path / "wrong-rows", {**good, "position_embedding.weight": good["position_embedding.weight"][:-5]})
    cases["wrong-rows"] = (d, ["has shape (19261, 8)", "19,264 genes and 2 read-depth positions (19,266 rows)",
                               "use a checkpoint trained on that index"])

    d = write_checkpoint(tmp_path / "genes-only", {**good, "position_embedding.weight": good["position_embedding.weight"][:-2]})
    cases["genes-only"] = (d, ["has shape (19264, 8)", "(19,266 rows)"])

    d = write_checkpoint(tmp_path / "wrong-width", good, cellfoundation_config(hidden=16))
    cases["wrong-width"] = (d, ["is 8 wide but", "hidden_size 16", "different checkpoints"])
    return cases


@pytest.mark.parametrize("case", ["no-config", "bad-config", "no-weights", "bad-weights", "truncated", "no-table",
                                  "wrong-rows", "genes-only", "wrong-width"])
def test_a_broken_checkpoint_is_one_line_naming_the_file_and_the_fix(tmp_path, case):
    directory, fragments = broken_checkpoints(tmp_path)[case]
    assert_one_line_error(registry_run(tmp_path, directory), *fragments)


def test_a_hub_name_without_network_is_one_line(tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*arguments, **options):
        raise huggingface_hub.errors.LocalEntryNotFoundError(
            "Cannot find the requested files in the disk cache and outgoing traffic has been disabled.")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\n")
    outcome = run_cli("extract", "--model", "aido-cell-3m-positional", "--input", genes, "--out", tmp_path / "x.zarr")
    assert_one_line_error(outcome, "checkpoint 'genbio-ai/AIDO.Cell-3M' is neither a local directory nor reachable",
                          "Cannot find the requested files", "pass that directory")


def test_a_checkpoint_directory_that_does_not_exist_is_named_as_a_path(tmp_path):
    missing = tmp_path / "AIDO.Cell-3M"
    assert_one_line_error(registry_run(tmp_path, missing), f"checkpoint '{missing}' is not a directory here", "fix the path")


def test_an_unknown_mode_is_refused(tiny_checkpoint):
    with pytest.raises(ValueError, match="mode must be one of positional, control_cells, got 'cells_mean'"):
        AidoCellEmbeddings.Parameters(checkpoint=str(tiny_checkpoint), mode="cells_mean")


def test_genbios_index_keys_most_genes():
    from embhub_aido_cell.gene_index import key_gene_index, locate_gene_index

    assert locate_gene_index() == INDEX
    keyed = key_gene_index(load_gene_identity(), INDEX)
    assert keyed.size == 19264 == len(index_positions())
    assert len(keyed.by_ensembl) + len(keyed.unresolved) + len(keyed.duplicates) == 19264
    assert len(keyed.by_ensembl) > 19000
    assert keyed.by_ensembl[load_gene_identity().resolve("TP53").ensembl_id].position == index_positions()["TP53"]


def test_registered_models_list_offline(tmp_path):
    outcome = run_cli("models")
    assert outcome.exit_code == 0, outcome
    for name in ("aido-cell-3m-positional", "aido-cell-10m-positional", "aido-cell-100m-positional"):
        assert name in outcome.stdout


def test_a_broken_checkpoint_is_an_input_error_not_a_per_item_failure(tmp_path):
    """The core turns InputError into one line; a broken checkpoint must not become one failure per gene."""
    directory, _ = broken_checkpoints(tmp_path)["no-table"]
    with pytest.raises(InputError):
        provider_for(directory).embed([Item("TP53", "TP53")])


def test_when_two_index_positions_resolve_to_one_gene_the_approved_symbol_wins():
    """Index position 0 (A1BG) resolves as an alias and position 1 (A1CF) as the approved symbol of one gene:
    position 1 keys it, position 0 is a duplicate. Without an approved-symbol match the lower position wins."""
    from embhub.identity.genes import GeneResolution
    from embhub_aido_cell.gene_index import key_gene_index

    class TwoNamesOneGene:
        def __init__(self, approved: str):
            self.approved = approved

        def resolve(self, name):
            if name in ("A1BG", "A1CF"):
                return GeneResolution(name, "resolved", "ENSG00000000001", self.approved,
                                      matched_by="symbol" if name == self.approved else "alias")
            return GeneResolution(name, "unknown")

    keyed = key_gene_index(TwoNamesOneGene(approved="A1CF"), INDEX)
    assert keyed.by_ensembl["ENSG00000000001"].position == 1 and keyed.duplicates == ["A1BG"]
    keyed = key_gene_index(TwoNamesOneGene(approved="OTHER"), INDEX)
    assert keyed.by_ensembl["ENSG00000000001"].position == 0 and keyed.duplicates == ["A1CF"]
    assert len(keyed.unresolved) == 19262


def test_a_missing_or_foreign_gene_index_is_one_line_saying_where_it_comes_from(tiny_checkpoint, tmp_path, monkeypatch):
    """embhub does not bundle GenBio's non-commercial index: without modelgenerator or a gene_index path the
    user is told where it comes from; a path to another file is named."""
    missing = tmp_path / "index.tsv"
    assert_one_line_error(registry_run(tmp_path, tiny_checkpoint, f"gene_index={missing}"), f"gene_index {missing} does not exist")
    missing.write_text("gene\tposition\nTP53\t0\n")
    assert_one_line_error(registry_run(tmp_path, tiny_checkpoint, f"gene_index={missing}", out=tmp_path / "y.zarr"),
                          f"{missing} is not AIDO.Cell's OS_scRNA_gene_index.19264.tsv")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "modelgenerator" else find_spec(name, *a))
    assert_one_line_error(registry_run(tmp_path, tiny_checkpoint, out=tmp_path / "z.zarr"), "ships with GenBio's modelgenerator package",
                          "pip install --no-deps modelgenerator", "gene_index=PATH")


def test_a_gene_index_given_by_path_keys_the_same_genes_and_is_hashed(tiny_checkpoint, tmp_path):
    copy = tmp_path / "my_index.tsv"
    copy.write_bytes(INDEX.read_bytes())
    out = tmp_path / "by_path.zarr"
    assert registry_run(tmp_path, tiny_checkpoint, f"gene_index={copy}", input_genes=("TP53",), out=out).exit_code == 0
    store = EmbeddingStore.open(out)
    assert list(store.labels("index_position")) == [str(index_positions()["TP53"])]
    assert str(copy) in {entry["path"] for entry in store.manifest["checkpoint"]["files"]}


def test_models_listing_says_the_gene_index_package_is_missing_unless_a_path_is_given(tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "modelgenerator" else find_spec(name, *a))
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "models:\n  from-package:\n    provider: aido-cell\n    checkpoint: genbio-ai/AIDO.Cell-3M\n"
        f"  by-path:\n    provider: aido-cell\n    checkpoint: genbio-ai/AIDO.Cell-3M\n    parameters: {{gene_index: '{INDEX}'}}\n"
    )
    outcome = run_cli("models", "--registry", registry)
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in outcome.stdout.splitlines() if line.count("│") > 3]
    installed = {row[0]: row[4] for row in cells}
    assert installed["from-package"].startswith("no") and "modelgenerator" in installed["from-package"]
    assert installed["by-path"] == "yes"
