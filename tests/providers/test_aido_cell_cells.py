"""AIDO.Cell ``mode: control_cells`` on the tiny real-format checkpoint of test_aido_cell.py (hidden 8, 2 layers,
the real 19,266-row position table) and real counts.

The cells are 3 cells of celltypist's ``sample_cell_by_gene.csv`` (``tests/data/scgpt/celltypist_sample_counts.csv``,
real UMI counts by symbol, shared with the scGPT tests; every column but MALAT1 is an index gene); 2 are labelled
``non-targeting``. Each cell is 19,266 tokens, so the expected vectors cost ~20 s per cell: few cells are used,
and each cell's expected output is computed once per checkpoint. The checkpoint's random weights are scaled by
0.4 so that float32 rounding in the provider's 19,266-token attention stays within 1e-5 of the float64 reference.
Expected vectors come from a plain per-cell forward written here with ``torch.nn.functional`` on the saved
tensors, in float64 and unbatched, following ModelGenerator's steps (align to the index by the TSV's names,
log1p(count / index total · 10⁴), two depth values max(log10 total, 5), cap 20, bfloat16 input; value embedding,
absolute positions, pre-norm layers with unmasked attention and SwiGLU, final norm), then the mean per gene.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
anndata = pytest.importorskip("anndata")

import pandas as pd  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from embhub.identity.genes import load_gene_identity  # noqa: E402
from embhub.provider import Item  # noqa: E402
from embhub.store import EmbeddingStore  # noqa: E402
from embhub_aido_cell import AidoCellEmbeddings  # noqa: E402
from tests.providers.test_aido_cell import (  # noqa: E402
    HEADS, HIDDEN, INDEX, LAYERS, cellfoundation_config, cellfoundation_state, index_positions, write_checkpoint,
)
from tests.support.cells import write_raw_cells  # noqa: E402
from tests.support.cli import assert_one_line_error, run_cli  # noqa: E402

pytestmark = pytest.mark.skipif(INDEX is None, reason="needs GenBio's gene index (modelgenerator, installed --no-deps)")

COUNTS = Path(__file__).parents[1] / "data" / "scgpt" / "celltypist_sample_counts.csv"
CELLS, CONTROLS = 3, 2
WEIGHT_SCALE = 0.4
GENES = ["GAPDH", "KRAS", "TP53", "MYC", "A1BG", "ZZZ3", "ACTB"]


def counts_table() -> pd.DataFrame:
    return pd.read_csv(COUNTS, index_col="cell").iloc[:CELLS]


def write_cells(path: Path, table: pd.DataFrame | None = None, *, ensembl_index: bool = False) -> Path:
    """The first 2 cells (by name) non-targeting, the other TP53."""
    table = counts_table() if table is None else table
    return write_raw_cells(path, table, lambda name: int(name.split("_")[1]) <= CONTROLS, ensembl_index=ensembl_index)


def scaled_state(seed: int) -> dict[str, np.ndarray]:
    return {k: v * WEIGHT_SCALE for k, v in cellfoundation_state(np.random.default_rng(seed)).items()}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """LayerNorm, as the positional tests' checkpoint."""
    return write_checkpoint(tmp_path_factory.mktemp("aido-cells"), scaled_state(10))


@pytest.fixture(scope="module")
def rms_checkpoint(tmp_path_factory) -> Path:
    """RMSNorm (CellFoundationConfig's default norm): the norms have a weight and no bias."""
    state = {k: v for k, v in scaled_state(11).items() if not k.endswith("ln.bias")}
    config = {**cellfoundation_config(), "normalization_type": "RMSNorm"}
    return write_checkpoint(tmp_path_factory.mktemp("aido-cells-rms"), state, config)


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> Path:
    return write_cells(tmp_path_factory.mktemp("cells") / "controls.h5ad")


def provider_for(directory: Path, cells: Path, **parameters) -> AidoCellEmbeddings:
    parameters = {"device": "cpu", "precision": "fp32", **parameters}
    return AidoCellEmbeddings(
        AidoCellEmbeddings.Parameters(checkpoint=str(directory), mode="control_cells", cells=str(cells), **parameters)
    )


# ---- the independent computation -------------------------------------------------------------------------------


def model_input(row: pd.Series) -> torch.Tensor:
    """One cell's 19,266 input values, aligned by the index TSV's own names."""
    positions = index_positions()
    counts = torch.zeros(19264, dtype=torch.float64)
    for symbol, count in row.items():
        if symbol in positions:
            counts[positions[symbol]] += float(count)
    total = counts.sum()
    depth = torch.clamp(torch.log10(total), min=5.0)
    values = torch.cat([torch.log1p(counts / total * 1e4), depth.view(1), depth.view(1)])
    values[values > 20] = 20
    return values.to(torch.bfloat16).double()


def attention(x: torch.Tensor, w: dict, prefix: str, block: int = 256) -> torch.Tensor:
    """Unmasked multi-head self-attention over all tokens, by query blocks (scores of all 19,266² pairs at once
    would not fit in memory)."""
    q, k, v = (F.linear(x, w[f"{prefix}.{n}.weight"], w[f"{prefix}.{n}.bias"]) for n in ("query", "key", "value"))
    d = HIDDEN // HEADS
    q, k, v = (t.view(-1, HEADS, d).transpose(0, 1) for t in (q, k, v))
    out = torch.cat([
        torch.softmax(q[:, i : i + block] @ k.transpose(1, 2) / d**0.5, dim=-1) @ v for i in range(0, q.shape[1], block)
    ], dim=1)
    return out.transpose(0, 1).reshape(-1, HIDDEN)


def forward_one_cell(w: dict, values: torch.Tensor, norm_type: str) -> torch.Tensor:
    def norm(x, p):
        if norm_type == "LayerNorm":
            return F.layer_norm(x, (HIDDEN,), w[f"{p}.weight"], w[f"{p}.bias"], 1e-5)
        return w[f"{p}.weight"] * x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5)

    h = F.leaky_relu(F.linear(values[:, None], w["gene_embedding.linear1.weight"], w["gene_embedding.linear1.bias"]), 0.1)
    mix = torch.softmax(h + F.linear(h, w["gene_embedding.linear2.weight"], w["gene_embedding.linear2.bias"]), dim=-1)
    x = mix @ w["gene_embedding.lookup_table.weight"] + w["position_embedding.weight"]
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        a = attention(norm(x, f"{p}.attention.ln"), w, f"{p}.attention.self")
        x = x + F.linear(a, w[f"{p}.attention.output.dense.weight"], w[f"{p}.attention.output.dense.bias"])
        y = norm(x, f"{p}.ln")
        gate = F.silu(F.linear(y, w[f"{p}.mlp.gate_proj.weight"], w[f"{p}.mlp.gate_proj.bias"]))
        up = F.linear(y, w[f"{p}.mlp.up_proj.weight"], w[f"{p}.mlp.up_proj.bias"])
        x = x + F.linear(gate * up, w[f"{p}.mlp.down_proj.weight"], w[f"{p}.mlp.down_proj.bias"])
    return norm(x, "encoder.ln")


CELL_OUTPUTS: dict[tuple[str, str], torch.Tensor] = {}


def cell_output(directory: Path, name: str) -> torch.Tensor:
    """(19,264, hidden) output of one cell at the index positions, computed once per checkpoint and cell."""
    key = (str(directory), name)
    if key not in CELL_OUTPUTS:
        w = {k: v.double() for k, v in load_file(str(directory / "model.safetensors")).items()}
        norm_type = "LayerNorm" if "encoder.ln.bias" in w else "RMSNorm"
        CELL_OUTPUTS[key] = forward_one_cell(w, model_input(counts_table().loc[name]), norm_type)[:19264]
    return CELL_OUTPUTS[key]


def expected_means(directory: Path, cell_names: list[str]) -> np.ndarray:
    """(19,264, hidden): each index position's output averaged over ``cell_names``."""
    return torch.stack([cell_output(directory, name) for name in cell_names]).mean(dim=0).numpy()


CONTROL_NAMES = [f"Cell_{i}" for i in range(1, CONTROLS + 1)]


# ---- tests -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["LayerNorm", "RMSNorm"])
def test_vectors_equal_an_independent_float64_forward_averaged_over_the_control_cells(request, norm, cells):
    checkpoint = request.getfixturevalue("checkpoint" if norm == "LayerNorm" else "rms_checkpoint")
    result = provider_for(checkpoint, cells).embed([Item(s, s) for s in GENES])
    assert result.failures == []
    ident = load_gene_identity()
    assert result.keys == [ident.resolve(s).ensembl_id for s in GENES]
    positions = index_positions()
    assert result.labels["index_position"] == [str(positions[s]) for s in GENES]
    expected = expected_means(checkpoint, CONTROL_NAMES)[[positions[s] for s in GENES]]
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (len(GENES), HIDDEN)
    np.testing.assert_allclose(result.vectors, expected, rtol=1e-5, atol=1e-5)
    table = counts_table().loc[CONTROL_NAMES]
    assert result.labels["cells_expressing"] == [str(int((table[s] > 0).sum())) if s in table else "0" for s in GENES]


def test_model_input_equals_the_independent_preprocessing_including_the_depth_tokens():
    """The two read-depth tokens reach the gene outputs only through attention (2 of 19,266 keys), too weakly for
    the vector tests to see a wrong depth; so the input is checked directly, for real cells (depth floor 5) and the
    same cells scaled past 10⁵ counts (depth log10 total) and to values above the cap of 20."""
    from embhub_aido_cell.cell_inputs import model_values

    positions = index_positions()
    table = counts_table()
    for scale in (1, 1000, 1e19):
        scaled = table * scale
        aligned = np.zeros((len(scaled), 19264))
        for column in scaled.columns:
            if column in positions:
                aligned[:, positions[column]] += scaled[column].to_numpy()
        expected = np.stack([model_input(row).numpy() for _, row in scaled.iterrows()])
        np.testing.assert_array_equal(model_values(aligned), expected)
        assert (expected[:, -2:] > 5).all() == (scale > 1) and (expected[:, -2:] == 20).all() == (scale > 1e18)


def test_genes_without_counts_in_any_cell_still_have_their_in_context_vector(checkpoint, cells):
    """A1BG and ZZZ3 are in no column of the file: they enter every cell as 0, so their vectors exist and
    differ from the positional rows (the context changed them)."""
    result = provider_for(checkpoint, cells).embed([Item("A1BG", "A1BG"), Item("ZZZ3", "ZZZ3")])
    assert result.failures == [] and result.labels["cells_expressing"] == ["0", "0"]
    table = load_file(str(checkpoint / "model.safetensors"))["position_embedding.weight"].numpy()
    assert not np.allclose(result.vectors, table[[0, 19263]], atol=1e-3)


def test_batching_and_cell_order_do_not_change_the_vectors(checkpoint, cells, tmp_path):
    one = provider_for(checkpoint, cells, cells_per_batch=1).embed([Item(s, s) for s in GENES]).vectors
    reordered = write_cells(tmp_path / "reordered.h5ad", counts_table().iloc[::-1])
    many = provider_for(checkpoint, reordered, cells_per_batch=2).embed([Item(s, s) for s in GENES]).vectors
    np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-6)


def test_every_cell_and_a_seeded_sample(checkpoint, cells):
    everyone = provider_for(checkpoint, cells, control_column="").embed([Item("TP53", "TP53")])
    names = counts_table().index.tolist()
    np.testing.assert_allclose(everyone.vectors[0], expected_means(checkpoint, names)[index_positions()["TP53"]],
                               rtol=1e-5, atol=1e-5)
    provider = provider_for(checkpoint, cells, max_cells=1, seed=7)
    sample = provider.embed([Item("TP53", "TP53")])
    rank = lambda name: int.from_bytes(hashlib.blake2b(f"7\0{name}".encode(), digest_size=8).digest(), "little")  # noqa: E731
    chosen = sorted(CONTROL_NAMES, key=rank)[:1]
    np.testing.assert_allclose(sample.vectors[0], expected_means(checkpoint, chosen)[index_positions()["TP53"]],
                               rtol=1e-5, atol=1e-5)
    facts = provider.provenance()
    assert facts["cells_used"] == 1 and facts["cells_matching_filter"] == CONTROLS
    assert facts["cells_sample"] == "max_cells 1, seed 7" and facts["cells_filter"] == "obs['gene'] == 'non-targeting'"
    assert facts["cells_sha256"] == hashlib.sha256(cells.read_bytes()).hexdigest()
    assert facts["cells_file_genes"] == 37 and facts["cells_file_genes_in_index"] == 36


def test_genes_outside_the_index_are_failures(checkpoint, cells):
    ident = load_gene_identity()
    result = provider_for(checkpoint, cells).embed([Item("a", "TP53"), Item("b", "MALAT1"), Item("c", "NOT_A_GENE_XYZ")])
    assert result.input_ids == ["a"]
    reasons = {f.input_id: f.reason for f in result.failures}
    assert reasons["b"].startswith(f"gene 'MALAT1' ({ident.resolve('MALAT1').ensembl_id} ")
    assert "not in AIDO.Cell's 19,264-gene input index" in reasons["b"]
    assert reasons["c"].startswith("unknown gene id 'NOT_A_GENE_XYZ'")


def test_a_cells_file_keyed_by_ensembl_ids_gives_the_same_vectors(checkpoint, cells, tmp_path):
    by_symbol = provider_for(checkpoint, cells).embed([Item(s, s) for s in GENES]).vectors
    by_ensembl = write_cells(tmp_path / "ensembl.h5ad", ensembl_index=True)
    np.testing.assert_allclose(provider_for(checkpoint, by_ensembl).embed([Item(s, s) for s in GENES]).vectors,
                               by_symbol, rtol=1e-6, atol=1e-6)


def extract(checkpoint: Path, cells: Path | str, out: Path, *settings: str, genes: str = "gene\nTP53\nKRAS\n"):
    genes_file = out.parent / f"{out.stem}-genes.csv"
    genes_file.write_text(genes)
    options = [argument for setting in settings for argument in ("--set", setting)]
    return run_cli("extract", "--model", "aido-cell-3m-controls", "--set", f"checkpoint={checkpoint}",
                   "--set", f"cells={cells}", "--set", "device=cpu", "--set", "precision=fp32", *options,
                   "--input", genes_file, "--out", out)


def test_extract_through_the_cli_writes_a_store_keyed_by_ensembl_ids(checkpoint, cells, tmp_path):
    out = tmp_path / "controls.zarr"
    outcome = extract(checkpoint, cells, out, genes="gene\nTP53\nKRAS\nMALAT1\n")
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    ident = load_gene_identity()
    assert list(store.ids) == [ident.resolve(s).ensembl_id for s in ("TP53", "KRAS")]
    assert store.key_namespace == "ensembl_gene_id" and store.dim == HIDDEN
    positions = index_positions()
    expected = expected_means(checkpoint, CONTROL_NAMES)[[positions["TP53"], positions["KRAS"]]]
    np.testing.assert_allclose(store.vectors(), expected, rtol=1e-5, atol=1e-5)
    provenance = store.manifest["provenance"]
    assert provenance["mode"] == "control_cells" and provenance["cells_used"] == CONTROLS
    assert provenance["cells_sha256"] == hashlib.sha256(cells.read_bytes()).hexdigest()
    assert "log1p" in provenance["preprocessing"] and provenance["device"] == "cpu"
    hashed = {Path(f["path"]).name for f in store.manifest["checkpoint"]["files"]}
    assert {"config.json", "model.safetensors", cells.name} <= hashed


def test_resume_after_interruption_equals_an_uninterrupted_run(checkpoint, cells, tmp_path, monkeypatch):
    from embhub.registry import ModelSpec
    from tests.core.test_resume import whole_and_resumed

    items = [Item(s, s, row) for row, s in enumerate(["TP53", "KRAS", "MALAT1", "GAPDH", "MYC"], 1)]
    spec = ModelSpec("aido", "aido-cell", {"mode": "control_cells", "cells": str(cells)}, checkpoint=str(checkpoint))
    a, b = whole_and_resumed(spec, lambda: provider_for(checkpoint, cells), items, tmp_path, monkeypatch, batch_size=2)
    assert list(a.ids) == list(b.ids) and len(a.ids) == 4
    np.testing.assert_array_equal(a.vectors(), b.vectors())


def test_a_resume_with_a_changed_cells_file_is_refused(checkpoint, tmp_path):
    cells = write_cells(tmp_path / "cells.h5ad")
    out = tmp_path / "store.zarr"
    assert extract(checkpoint, cells, out).exit_code == 0
    write_cells(cells, counts_table().iloc[[1, 0, 2]])
    assert_one_line_error(extract(checkpoint, cells, out), f"store {out} was extracted with other contents of {cells}",
                          "pass --overwrite")


def bad_cells(tmp_path: Path) -> dict[str, tuple[Path, list[str]]]:
    cases = {}
    missing = tmp_path / "missing.h5ad"
    cases["missing"] = (missing, [f"cells file '{missing}' does not exist", "set cells=PATH to a raw-count .h5ad"])
    text = tmp_path / "cells.csv"
    text.write_text(COUNTS.read_text())
    cases["not-h5ad"] = (text, [f"{text} is not a readable .h5ad file"])
    table = counts_table()
    no_controls = tmp_path / "no_controls.h5ad"
    write_cells(no_controls, table.iloc[CONTROLS:])
    cases["no-controls"] = (no_controls, [f"cells file {no_controls}: no cell has obs 'gene' == 'non-targeting'",
                                          "set control_column / control_value"])
    foreign = tmp_path / "foreign.h5ad"
    write_cells(foreign, table.rename(columns=lambda c: f"gene_{c}"))
    cases["no-index-genes"] = (foreign, [f"cells file {foreign}: no gene of its var's index", "AIDO.Cell's 19,264-gene input index",
                                         "gene symbols or Ensembl ids"])
    only_outside = tmp_path / "only_malat1.h5ad"
    write_cells(only_outside, table[["MALAT1", "TP53"]].assign(TP53=0))
    cases["no-index-counts"] = (only_outside, [f"cells file {only_outside}: none of its 2 chosen cells has a count in AIDO.Cell's gene index"])
    return cases


@pytest.mark.parametrize("case", ["missing", "not-h5ad", "no-controls", "no-index-genes", "no-index-counts"])
def test_a_bad_cells_file_is_one_line_naming_the_file_and_the_fix(checkpoint, tmp_path, case):
    path, fragments = bad_cells(tmp_path)[case]
    out = tmp_path / "x.zarr"
    assert_one_line_error(extract(checkpoint, path, out), *fragments)
    assert not out.exists()


def test_control_cells_without_cells_is_one_line(checkpoint, tmp_path):
    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\n")
    outcome = run_cli("extract", "--model", "aido-cell-3m-controls", "--set", f"checkpoint={checkpoint}",
                      "--input", genes, "--out", tmp_path / "x.zarr")
    assert_one_line_error(outcome, "in mode control_cells needs the control cells: set cells", "docs/providers/aido-cell.md")


def test_a_checkpoint_missing_a_layer_tensor_is_one_line_before_a_store_is_started(cells, tmp_path):
    state = cellfoundation_state(np.random.default_rng(4))
    del state["encoder.layer.1.mlp.up_proj.weight"]
    directory = write_checkpoint(tmp_path / "no-mlp", state)
    out = tmp_path / "x.zarr"
    assert_one_line_error(extract(directory, cells, out), "lacks 1 CellFoundationModel tensor",
                          "encoder.layer.1.mlp.up_proj.weight", "full AIDO.Cell checkpoint")
    assert not out.exists()


def test_registered_controls_models_list_offline():
    outcome = run_cli("models")
    assert outcome.exit_code == 0, outcome
    for name in ("aido-cell-3m-controls", "aido-cell-10m-controls", "aido-cell-100m-controls"):
        assert name in outcome.stdout
