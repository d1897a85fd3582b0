"""`embhub ids check` and `embhub ids map`, driven as a user does."""

import csv

from tests.support.cli import assert_one_line_error, run_cli


def test_check_reports_resolved_ambiguous_and_unknown(tmp_path):
    path = tmp_path / "genes.csv"
    path.write_text("id,gene\nx1,TP53\nx2,MLL\nx3,CAP\nx4,NOTAGENE\nx5,ENSG00000012048\n")
    out = run_cli("ids", "check", "--input", path)
    assert out.exit_code == 0, out
    lines = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.stdout.splitlines() if line.count("│") == 4}
    assert lines["resolved"] == "3" and lines["ambiguous"] == "1" and lines["unknown"] == "1"
    assert lines["by previous_symbol"] == "1"
    assert "ambiguous gene id 'CAP' (" in out.stdout
    assert "unknown gene id 'NOTAGENE'" in out.stdout


def test_check_strict_fails_when_any_id_does_not_resolve():
    assert run_cli("ids", "check", "TP53", "BRCA1", "--strict").exit_code == 0
    assert run_cli("ids", "check", "TP53", "NOTAGENE", "--strict").exit_code == 1


def test_map_writes_one_row_per_id(tmp_path):
    out_path = tmp_path / "map.tsv"
    out = run_cli("ids", "map", "p53", "CAP", "zzgene", "--out", out_path)
    assert out.exit_code == 0, out
    rows = list(csv.DictReader(out_path.open(), delimiter="\t"))
    assert [(r["query"], r["status"], r["ensembl_gene_id"], r["symbol"]) for r in rows] == [
        ("p53", "resolved", "ENSG00000141510", "TP53"),
        ("CAP", "ambiguous", "", ""),
        ("zzgene", "unknown", "", ""),
    ]
    assert len(rows[1]["candidates"].split("|")) == 6
    assert rows[2]["reason"].startswith("unknown gene id 'zzgene'")


def test_no_ids_is_a_one_line_error():
    assert_one_line_error(run_cli("ids", "check"), "no gene ids given")
