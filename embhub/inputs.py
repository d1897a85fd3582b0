"""Reading the list of things to embed: a CSV/TSV table with an id and a value column, or a plain list.

A plain list has one value per line (blank lines and ``#`` comments skipped); an optional second
whitespace-separated field is the id, as in ``.smi`` files. Either may be gzip-compressed (``.csv.gz``,
``.smi.gz``, …), as public compound and gene tables often are. Ids must be unique: a duplicate is an
error naming both rows, never a silently dropped row.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence, TextIO

from embhub.errors import InputError
from embhub.provider import Item

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
ID_COLUMNS = ("id", "input_id", "name", "drug", "gene", "compound")


def read_items(
    path: str | Path,
    value_columns: Sequence[str] = ("value",),
    id_column: str | None = None,
    value_column: str | None = None,
) -> list[Item]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"input file {path} does not exist")
    compressed = path.suffix.lower() == ".gz"
    delimiter = TABLE_SUFFIXES.get((path.with_suffix("") if compressed else path).suffix.lower())
    try:
        if delimiter:
            items = _read_table(path, compressed, delimiter, value_columns, id_column, value_column)
        elif id_column or value_column:
            raise InputError(
                f"{path} is read as a plain list, which has no columns for --id-column/--value-column; "
                f"name a table {', '.join(TABLE_SUFFIXES)} (or with .gz)"
            )
        else:
            items = _read_list(path, compressed)
    except UnicodeDecodeError:
        raise InputError(f"input file {path} is not UTF-8 text"
                         + ("" if compressed else " (a compressed file needs the .gz suffix)")) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise InputError(f"input file {path} is not a complete gzip file ({error}); re-download or decompress it") from None
    except OSError as error:
        raise InputError(f"cannot read input file {path} ({error.strerror}); give a readable CSV/TSV table or list") from None
    if not items:
        raise InputError(f"input file {path} holds no items; give at least one")
    check_unique_ids(items, str(path))
    return items


def items_from_values(values: Sequence[str]) -> list[Item]:
    items = [Item(input_id=v, value=v, row=i + 1) for i, v in enumerate(values)]
    if not items:
        raise InputError("no items given; give at least one")
    check_unique_ids(items, "the given values")
    return items


def check_unique_ids(items: Sequence[Item], source: str) -> None:
    first_row: dict[str, int | None] = {}
    for item in items:
        if item.input_id in first_row:
            raise InputError(
                f"{source}: id '{item.input_id}' appears on rows {first_row[item.input_id]} and {item.row}; "
                "ids must be unique (rename or remove one)"
            )
        first_row[item.input_id] = item.row


@contextmanager
def data_file_text(path: Path, what: str) -> Iterator[TextIO]:
    """A data file a model reads (FASTA, network, table) as UTF-8 text, gunzipped when its bytes are gzip
    whatever its name; a file that is not UTF-8 or a damaged gzip is one :class:`InputError` naming it.

    ``what`` names the file in messages (``protein FASTA``). Errors raised while the caller reads inside
    the ``with`` block are turned into that line too.
    """
    with path.open("rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if compressed else raw
        try:
            with io.TextIOWrapper(stream, encoding="utf-8-sig", newline="") as handle:
                yield handle
        except UnicodeDecodeError:
            raise InputError(f"{what} {path} is not UTF-8 text; save it as UTF-8") from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise InputError(f"{what} {path} is not a complete gzip file ({error}); re-download or decompress it") from None


def _open_text(path: Path, compressed: bool):
    """UTF-8 text; a leading byte-order mark (spreadsheets' "CSV UTF-8") is dropped, not read into the first field."""
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _read_list(path: Path, compressed: bool) -> list[Item]:
    items = []
    with _open_text(path, compressed) as handle:
        content = handle.read()
    for number, line in enumerate(content.splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.split(maxsplit=1)
        value = fields[0]
        input_id = fields[1].strip() if len(fields) > 1 else value
        items.append(Item(input_id=input_id, value=value, row=number))
    return items


def _read_table(
    path: Path, compressed: bool, delimiter: str, value_columns: Sequence[str], id_column: str | None,
    value_column: str | None,
) -> list[Item]:
    with _open_text(path, compressed) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return []
        header = [h.strip() for h in header]
        value_index = _column(path, header, value_column, value_columns, "value")
        if id_column is None:
            candidates = [h for h in header if h.lower() in ID_COLUMNS and header.index(h) != value_index]
            id_index = header.index(candidates[0]) if candidates else value_index
        else:
            id_index = _column(path, header, id_column, (), "id")
        items = []
        for number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(value_index, id_index):
                raise InputError(f"{path}: row {number} has {len(row)} fields, the header has {len(header)}")
            value = row[value_index].strip()
            input_id = row[id_index].strip() or value
            if not input_id:
                raise InputError(
                    f"{path}: row {number} has an empty '{header[value_index]}' cell and no id; fill it in or delete the row"
                )
            items.append(Item(input_id=input_id, value=value, row=number))
        return items


def _column(path: Path, header: list[str], chosen: str | None, candidates: Sequence[str], what: str) -> int:
    lowered = [h.lower() for h in header]
    if chosen is not None:
        if chosen.lower() not in lowered:
            raise InputError(f"{path}: no column '{chosen}' (columns: {', '.join(header)})")
        return lowered.index(chosen.lower())
    for candidate in candidates:
        if candidate.lower() in lowered:
            return lowered.index(candidate.lower())
    raise InputError(
        f"{path}: no {what} column found (looked for {', '.join(candidates)}; columns: {', '.join(header)}); "
        f"name it with --{what}-column"
    )
