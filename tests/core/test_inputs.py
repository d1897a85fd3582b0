"""Input tables and lists, plain or gzip-compressed, read into the same items; broken files are one line."""

import gzip

import pytest

from embhub.errors import InputError
from embhub.inputs import read_items
from tests.support.cli import assert_one_line_error, run_cli

TABLE = "drug,smiles\naspirin,CC(=O)Oc1ccccc1C(=O)O\n\ncaffeine,Cn1cnc2c1c(=O)n(C)c(=O)n2C\n"
LIST = "# sciplex subset\nCC(=O)Oc1ccccc1C(=O)O aspirin\nCn1cnc2c1c(=O)n(C)c(=O)n2C caffeine\n"
EXPECTED = [("aspirin", "CC(=O)Oc1ccccc1C(=O)O"), ("caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C")]


def _pairs(items):
    return [(item.input_id, item.value) for item in items]


@pytest.mark.parametrize("name, text", [("drugs.csv", TABLE), ("drugs.tsv", TABLE.replace(",", "\t")), ("drugs.smi", LIST)])
def test_plain_and_gzip_inputs_give_the_same_items(tmp_path, name, text):
    plain = tmp_path / name
    plain.write_text(text, encoding="utf-8")
    packed = tmp_path / f"{name}.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    read_plain = read_items(plain, ("smiles",))
    assert _pairs(read_plain) == EXPECTED
    read_packed = read_items(packed, ("smiles",))
    assert _pairs(read_packed) == EXPECTED
    assert [item.row for item in read_packed] == [item.row for item in read_plain]


def test_a_compressed_table_without_the_gz_suffix_is_one_line_naming_the_fix(tmp_path):
    path = tmp_path / "drugs.csv"
    path.write_bytes(gzip.compress(TABLE.encode("utf-8")))
    with pytest.raises(InputError, match=r"drugs\.csv is not UTF-8 text \(a compressed file needs the \.gz suffix\)"):
        read_items(path, ("smiles",))


@pytest.mark.parametrize("damage", ["truncated", "not-gzip"])
def test_a_broken_gzip_input_is_one_line(tmp_path, damage):
    packed = gzip.compress((TABLE * 50).encode("utf-8"))
    path = tmp_path / "drugs.csv.gz"
    path.write_bytes(packed[: len(packed) // 2] if damage == "truncated" else TABLE.encode("utf-8"))
    with pytest.raises(InputError, match=r"drugs\.csv\.gz is not a complete gzip file .*re-download or decompress it"):
        read_items(path, ("smiles",))


@pytest.mark.parametrize("name, text", [("drugs.csv", TABLE), ("drugs.tsv", TABLE.replace(",", "\t")), ("drugs.smi", LIST)])
def test_a_byte_order_mark_as_spreadsheets_write_it_is_not_part_of_the_first_field(tmp_path, name, text):
    """Excel's "CSV UTF-8" starts the file with U+FEFF; it must not hide the id column or stick to the first item."""
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    assert _pairs(read_items(path, ("smiles",))) == EXPECTED
    packed = tmp_path / f"{name}.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert _pairs(read_items(packed, ("smiles",))) == EXPECTED


def test_a_folder_given_as_input_is_one_line(tmp_path):
    folder = tmp_path / "drugs"
    folder.mkdir()
    with pytest.raises(InputError, match=r"cannot read input file .*drugs \(Is a directory\); give a readable"):
        read_items(folder, ("smiles",))
    assert_one_line_error(run_cli("ids", "check", "--input", folder), "cannot read input file")


@pytest.mark.parametrize("option", ["id_column", "value_column"])
def test_a_column_named_for_a_plain_list_is_an_error_not_ignored(tmp_path, option):
    """A table saved as .txt is read as a list: every line would become one item 'a,TP53' that fails."""
    path = tmp_path / "genes.txt"
    path.write_text("id,gene\na,TP53\n")
    with pytest.raises(InputError, match=r"genes\.txt is read as a plain list, .*name a table \.csv, \.tsv, \.tab"):
        read_items(path, ("gene",), **{option: "gene"})


def test_table_rows_with_neither_a_value_nor_an_id_are_one_line_naming_the_first(tmp_path):
    """Two such rows were refused as 'id '' appears on rows 3 and 5; ids must be unique', which names no fix."""
    table = tmp_path / "genes.csv"
    table.write_text("gene,guide\nTP53,g1\n,g2\nKRAS,g3\n,g4\n")
    outcome = run_cli("extract", "--model", "random-gene-100", "--input", table, "--out", tmp_path / "x.zarr")
    assert_one_line_error(outcome, "genes.csv", "row 3", "'gene'", "empty")
    with_ids = tmp_path / "with_ids.csv"
    with_ids.write_text("id,gene\na,TP53\nb,\nc,\n")
    assert [(item.input_id, item.value) for item in read_items(with_ids, ("gene",))] == [("a", "TP53"), ("b", ""), ("c", "")]
