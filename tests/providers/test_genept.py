"""GenePT provider: real gene texts (shipped NCBI Gene + GO table) embedded by the real all-MiniLM-L6-v2.

Expected vectors come from sentence-transformers called directly on texts the test rebuilds from the
shipped tables with pandas; the biology check uses gene groups from independent data (STRING
interactions from the mossn package, and symbol families of the identity table)."""

from __future__ import annotations

import gzip
import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sentence_transformers")

from embhub.identity.genes import load_gene_identity  # noqa: E402
from embhub.provider import Item  # noqa: E402
from embhub.store import EmbeddingStore  # noqa: E402
from embhub_genept import GenePTEmbeddings  # noqa: E402
from embhub_genept.text_encoder import bundled_minilm_dir  # noqa: E402
from tests.support.cli import run_cli  # noqa: E402

DATA = Path(importlib.util.find_spec("embhub_genept").submodule_search_locations[0]) / "data"


@pytest.fixture(scope="module")
def sentence_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(bundled_minilm_dir()), device="cpu")


@pytest.fixture(scope="module")
def shipped_tables():
    genes = pd.read_csv(DATA / "gene_text.tsv.gz", sep="\t", dtype=str, keep_default_na=False)
    terms = pd.read_csv(DATA / "go_terms.tsv.gz", sep="\t", dtype=str, keep_default_na=False)
    return genes.set_index("entrez"), dict(zip(terms.go_id, terms.term))


def expected_text(symbol: str, tables, max_terms: int = 10) -> str:
    """The documented template, rebuilt from the shipped table: 'SYM: name. Biological process: a; b. …'."""
    genes, terms = tables
    entrez = load_gene_identity().entrez_of(load_gene_identity().resolve(symbol).ensembl_id)
    row = genes.loc[entrez]
    text = f"{row.symbol}: {row['name']}."
    for column, title in [("go_bp", "Biological process"), ("go_mf", "Molecular function"), ("go_cc", "Cellular component")]:
        ids = row[column].split("|")[:max_terms] if row[column] else []
        if ids:
            text += f" {title}: " + "; ".join(terms[i] for i in ids) + "."
    return text


def provider(**parameters) -> GenePTEmbeddings:
    return GenePTEmbeddings(GenePTEmbeddings.Parameters(device="cpu", **parameters))


def test_vectors_are_the_encoder_applied_to_the_documented_gene_text(sentence_model, shipped_tables):
    symbols = ["TP53", "KRAS", "PSMA1"]
    result = provider().embed([Item(s, s) for s in symbols])
    texts = [expected_text(s, shipped_tables) for s in symbols]
    assert "Biological process: " in texts[0] and texts[0].startswith("TP53: tumor protein p53.")
    np.testing.assert_allclose(result.vectors, sentence_model.encode(texts), atol=1e-5)
    ident = load_gene_identity()
    assert result.keys == [ident.resolve(s).ensembl_id for s in symbols]
    assert result.labels == {"symbol": symbols, "text_source": ["ncbi_gene_go"] * 3}


def test_normalize_gives_unit_vectors_in_the_same_direction():
    items = [Item("a", "MYC"), Item("b", "ENSG00000141510")]
    plain = provider().embed(items).vectors
    unit = provider(normalize=True).embed(items).vectors
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(unit, plain / np.linalg.norm(plain, axis=1, keepdims=True), atol=1e-5)


def test_ncbi_summaries_replace_the_offline_text_and_missing_ones_are_failures(tmp_path, sentence_model, shipped_tables):
    summaries = tmp_path / "summaries.tsv"
    summaries.write_text(
        "GeneID\tSymbol\tSummary\n"
        "7157\tTP53\tThis gene encodes a tumor suppressor protein containing transcriptional activation domains.\n"
        "\tGAPDH\tThis gene encodes a member of the glyceraldehyde-3-phosphate dehydrogenase protein family.\n"
    )
    items = [Item("p53", "TP53"), Item("gapdh", "GAPDH"), Item("myc", "MYC"), Item("bad", "NOT_A_GENE_XYZ")]
    only = provider(ncbi_summaries=str(summaries)).embed(items)
    assert only.input_ids == ["p53", "gapdh"]
    reasons = {f.input_id: f.reason for f in only.failures}
    assert reasons["myc"].startswith("no summary for gene 'MYC'") and "fallback_to_go" in reasons["myc"]
    assert reasons["bad"].startswith("unknown gene id 'NOT_A_GENE_XYZ'")
    expected = sentence_model.encode([
        "TP53: tumor protein p53. This gene encodes a tumor suppressor protein containing transcriptional activation domains.",
        "GAPDH: glyceraldehyde-3-phosphate dehydrogenase. This gene encodes a member of the "
        "glyceraldehyde-3-phosphate dehydrogenase protein family.",
    ])
    np.testing.assert_allclose(only.vectors, expected, atol=1e-5)

    with_fallback = provider(ncbi_summaries=str(summaries), fallback_to_go=True).embed(items[:3])
    assert with_fallback.labels["text_source"] == ["ncbi_summary", "ncbi_summary", "ncbi_gene_go"]
    np.testing.assert_allclose(with_fallback.vectors[2], sentence_model.encode(expected_text("MYC", shipped_tables)), atol=1e-5)


def test_genes_without_any_text_are_reported():
    ident = load_gene_identity()
    with gzip.open(DATA / "gene_text.tsv.gz", "rt") as handle:
        table = pd.read_csv(handle, sep="\t", dtype=str, keep_default_na=False)
    known_entrez, known_symbols = set(table.entrez), set(table.symbol)
    known_ensembl = {e for cell in table.ensembl for e in cell.split("|") if e}
    textless = next(
        g for g in sorted(ident.genes)
        if not set(ident.entrez_of_all(g)) & known_entrez and g not in known_ensembl and ident.symbol_of(g) not in known_symbols
    )
    result = provider().embed([Item("x", textless), Item("y", "TP53")])
    assert result.input_ids == ["y"]
    assert result.failures[0].input_id == "x" and "no description for gene" in result.failures[0].reason


def string_edges(n_edges: int) -> pd.DataFrame:
    """A seeded random sample of human STRING edges (combined score ≥ 0.9) shipped by the mossn package."""
    spec = importlib.util.find_spec("mossn")
    if spec is None:
        pytest.skip("mossn (test dependency with the STRING network) is not installed")
    edges = pd.read_csv(Path(spec.submodule_search_locations[0]) / "data" / "string_links.csv")
    return edges.sample(n_edges, random_state=0)[["protein1", "protein2"]]


def symbol_families(n_families: int, members: int) -> list[list[str]]:
    """Seeded random gene families: protein-coding symbols of the identity table that share an alphabetic
    prefix followed only by a number (PSMA1…PSMA7), families of 4–15 genes."""
    ident = load_gene_identity()
    families: dict[str, list[str]] = {}
    for gene in ident.genes:
        symbol = ident.symbol_of(gene)
        match = re.fullmatch(r"([A-Z]{3,})(\d+)", symbol or "")
        if match and ident.biotype_of(gene) == "protein_coding":
            families.setdefault(match.group(1), []).append(symbol)
    eligible = sorted(prefix for prefix, symbols in families.items() if 4 <= len(symbols) <= 15)
    rng = np.random.default_rng(0)
    chosen = rng.choice(eligible, n_families, replace=False)
    return [sorted(rng.choice(sorted(families[p]), members, replace=False)) for p in chosen]


def partner_ranks(vectors: np.ndarray, index: dict[str, int], pairs) -> np.ndarray:
    """For each (a, b): b's rank (1 = nearest) among all other genes by cosine similarity to a."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    ranks = []
    for a, b in pairs:
        if a in index and b in index:
            row = similarity[index[a]]
            ranks.append(int((row > row[index[b]]).sum()) + 1)
    return np.array(ranks)


@pytest.mark.slow
def test_interaction_partners_and_paralogs_are_nearer_than_random():
    edges = string_edges(50)
    families = symbol_families(15, 3)
    genes = sorted(set(edges.protein1) | set(edges.protein2) | {s for family in families for s in family})
    result = provider().embed([Item(g, g) for g in genes])
    assert len(result.failures) <= len(genes) // 20, result.failures
    index = {g: i for i, g in enumerate(result.input_ids)}
    n = len(index)
    random_median = n / 2

    string_ranks = partner_ranks(result.vectors, index, zip(edges.protein1, edges.protein2))
    family_pairs = [(a, b) for family in families for a in family for b in family if a != b]
    family_ranks = partner_ranks(result.vectors, index, family_pairs)
    assert len(string_ranks) >= 45 and len(family_ranks) >= 80
    assert np.median(string_ranks) < random_median / 4, (np.median(string_ranks), n)
    assert np.median(family_ranks) < random_median / 8, (np.median(family_ranks), n)

    rng = np.random.default_rng(1)
    shuffled = partner_ranks(rng.normal(size=result.vectors.shape), index, zip(edges.protein1, edges.protein2))
    assert np.median(shuffled) > random_median / 2, "the rank statistic itself is biased"


def test_extract_with_the_registry_model_writes_a_labelled_gene_store(tmp_path):
    genes = tmp_path / "genes.csv"
    genes.write_text("gene\nTP53\nMDM2\nENSG00000133703\nNOT_A_GENE_XYZ\n")
    out = tmp_path / "genept.zarr"
    outcome = run_cli("extract", "--model", "genept-minilm", "--input", genes, "--out", out)
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    ident = load_gene_identity()
    assert list(store.ids) == [ident.resolve(g).ensembl_id for g in ("TP53", "MDM2", "KRAS")]
    assert list(store.labels("symbol")) == ["TP53", "MDM2", "KRAS"]
    assert store.dim == 384 and store.manifest["counts"] == {"done": 3, "failed": 1}
    provenance = store.manifest["provenance"]
    assert provenance["gene_id_release"] == ident.release
    assert provenance["text_sources"][0]["template"] == "{symbol}: {name}.{go_sections}"
    assert provenance["encoder"] == str(bundled_minilm_dir())
    hashed = {Path(f["path"]).name for f in store.manifest["checkpoint"]["files"]}
    assert {"model.safetensors", "tokenizer.json"} <= hashed


def test_a_summary_table_saved_by_a_spreadsheet_keeps_its_first_column(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark, which must not rename the first column."""
    from embhub_genept.gene_text import read_summaries

    summaries = tmp_path / "summaries.csv"
    summaries.write_bytes(b"\xef\xbb\xbfGeneID,Summary\r\n7157,This gene encodes a tumor suppressor.\r\n")
    rows = read_summaries(summaries)
    assert [(r.entrez, r.summary) for r in rows] == [("7157", "This gene encodes a tumor suppressor.")]


def test_a_gzipped_summary_table_is_read_and_a_non_utf8_one_is_one_line(tmp_path, sentence_model):
    """NCBI tables usually arrive gzipped: read them like the input lists, FASTA and STRING files."""
    from tests.support.cli import assert_one_line_error

    summary = "This gene encodes a tumor suppressor protein containing transcriptional activation domains."
    table = tmp_path / "summaries.tsv.gz"
    with gzip.open(table, "wt", encoding="utf-8") as handle:
        handle.write(f"GeneID\tSymbol\tSummary\n7157\tTP53\t{summary}\n")
    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\nMYC\n")
    outcome = run_cli("extract", "--model", "genept-minilm-ncbi", "--set", f"ncbi_summaries={table}",
                      "--set", "fallback_to_go=false", "--input", genes, "--out", tmp_path / "s.zarr")
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(tmp_path / "s.zarr")
    assert list(store.labels("symbol")) == ["TP53"] and [f["input_id"] for f in store.failures()] == ["MYC"]
    np.testing.assert_allclose(store.vectors()[0], sentence_model.encode(f"TP53: tumor protein p53. {summary}"), atol=1e-5)

    latin1 = tmp_path / "summaries_latin1.tsv"
    latin1.write_bytes("GeneID\tSummary\n7157\tBinds Zn\xb2\u207a ions.\n".encode("latin-1", errors="replace"))
    outcome = run_cli("extract", "--model", "genept-minilm-ncbi", "--set", f"ncbi_summaries={latin1}",
                      "--input", genes, "--out", tmp_path / "bad.zarr")
    assert_one_line_error(outcome, str(latin1), "UTF-8")


def test_a_bad_encoder_or_summary_table_fails_before_a_store_exists(tmp_path, sentence_model, shipped_tables):
    """Otherwise the corrected command meets an empty store of other parameters and is told to --overwrite."""
    from tests.support.cli import assert_one_line_error

    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\n")
    out = tmp_path / "genept.zarr"
    missing = tmp_path / "no-such-encoder"
    outcome = run_cli("extract", "--model", "genept-minilm", "--set", f"encoder={missing}", "--input", genes, "--out", out)
    assert_one_line_error(outcome, str(missing))
    assert not out.exists()
    latin1 = tmp_path / "summaries.tsv"
    latin1.write_bytes(b"GeneID\tSummary\n7157\tBinds Zn\xb2 ions.\n")
    outcome = run_cli("extract", "--model", "genept-minilm-ncbi", "--set", f"ncbi_summaries={latin1}", "--input", genes,
                      "--out", out)
    assert_one_line_error(outcome, str(latin1), "UTF-8")
    assert not out.exists()
    outcome = run_cli("extract", "--model", "genept-minilm", "--input", genes, "--out", out)
    assert outcome.exit_code == 0, outcome
    store = EmbeddingStore.open(out)
    np.testing.assert_allclose(store.vectors()[0], sentence_model.encode(expected_text("TP53", shipped_tables)), atol=1e-5)
