"""Canonical keys for sciPlex3's drugs, from a drug table the user gives among the raw files.

sciPlex3's files name each drug (``product_name``) but give no structure, so the study keyed drugs by name.
A drug table (CSV, TSV or parquet) with a name column (``product_name``, ``drug``, ``name`` or
``pref_name``) and ``smiles`` and/or ``pubchem_cid`` turns each screen drug into a canonical key:

- with a ``smiles`` column, the drug's InChIKey (rdkit, through :mod:`embhub.identity.drugs`);
- with only ``pubchem_cid``, its PubChem CID.

A screen name meets a table row by its normalised name, else by a name variant (``SAHA (Vorinostat)`` meets
``Vorinostat``; see :func:`~embhub.identity.drugs.drug_name_variants`). A screen drug with no row, an invalid
SMILES, or two drugs sharing one key is an :class:`~embhub.errors.InputError`. A row that names the drug but
leaves its structure empty is the explicit way to keep a drug's name: its key is then ``drug_name:<name>``
and the prepared dataset's notes list it. Every drug gets a ``drug_name`` alias (``drug_name:<name>``, the
key drug-target stores give structure-less drugs), and ``smiles`` / ``inchikey`` / ``pubchem_cid`` aliases
where known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from embhub.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DRUG_TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet")
NAME_COLUMNS = ("product_name", "drug", "name", "pref_name")
SMILES_COLUMNS = ("smiles", "canonical_smiles")
CID_COLUMNS = ("pubchem_cid", "cid")


@dataclass
class DrugRow:
    name: str
    smiles: str = ""
    cid: str = ""
    conflict: int = 0
    """The table row giving this name a different structure (0: none); an error only if the screen uses it."""


@dataclass
class DrugTable:
    """The user's drug table: rows by normalised name, and which structure columns it has."""

    path: Path
    rows: dict[str, DrugRow]
    has_smiles: bool
    _by_variant: dict[str, DrugRow] | None = field(default=None, init=False, repr=False)

    def find(self, name: str) -> DrugRow | None:
        """The row of ``name``: its normalised name, else the first name variant one row alone owns."""
        from embhub.identity.drugs import drug_name_variants

        for variant in drug_name_variants(name):
            if variant in self._variants():
                return self._variants()[variant]
        return None

    def _variants(self) -> dict[str, DrugRow]:
        if self._by_variant is None:
            from embhub.identity.drugs import drug_name_variants

            owners: dict[str, list[DrugRow]] = {}
            for row in self.rows.values():
                for variant in drug_name_variants(row.name):
                    owners.setdefault(variant, []).append(row)
            self._by_variant = {v: found[0] for v, found in owners.items() if len(found) == 1}
            self._by_variant.update(self.rows)
        return self._by_variant


def read_drug_table(path: Path) -> DrugTable:
    import pandas as pd

    from embhub.identity.drugs import normalise_drug_name

    if path.suffix.lower() == ".parquet":
        from embhub_datasets.tahoe_metadata import read_parquet

        frame = read_parquet(path)
    else:
        frame = pd.read_csv(path, sep="," if path.suffix.lower() == ".csv" else "\t", dtype=str, comment="#")
    columns = {str(c).strip().lower(): c for c in frame.columns}
    name_column = next((columns[c] for c in NAME_COLUMNS if c in columns), None)
    smiles_column = next((columns[c] for c in SMILES_COLUMNS if c in columns), None)
    cid_column = next((columns[c] for c in CID_COLUMNS if c in columns), None)
    if name_column is None or (smiles_column is None and cid_column is None):
        raise InputError(
            f"{path}: a sciPlex3 drug table needs a name column (product_name, drug or name) and a 'smiles' "
            f"or 'pubchem_cid' column; columns are {', '.join(map(str, frame.columns[:10]))}"
        )
    rows: dict[str, DrugRow] = {}
    for line, values in enumerate(frame.itertuples(index=False), start=2):
        record = dict(zip(frame.columns, values))
        name = _text(record[name_column])
        if not name:
            continue
        smiles = _text(record[smiles_column]) if smiles_column is not None else ""
        row = DrugRow(name, smiles, _cid(_text(record[cid_column]) if cid_column is not None else "", path, name))
        known = rows.setdefault(normalise_drug_name(name), row)
        if (known.smiles, known.cid) != (row.smiles, row.cid) and not known.conflict:
            known.conflict = line
    return DrugTable(path, rows, smiles_column is not None)


@dataclass
class DrugKeys:
    """The key of each screen drug (by its sciPlex name) and its aliases, per alias namespace."""

    namespace: str
    keys: dict[str, str]
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def per_cell(self, drug: np.ndarray, is_control: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``pert_id`` per cell ("" for controls) and the ``alias_<namespace>`` cell columns."""
        import numpy as np

        names, inverse = np.unique(drug, return_inverse=True)
        pert_id = np.array([self.keys.get(n, n) for n in names], dtype=object)[inverse]
        pert_id[is_control] = ""
        columns = {}
        for namespace, values in self.aliases.items():
            column = np.array([values.get(n, "") for n in names], dtype=object)[inverse]
            column[is_control] = ""
            columns[f"alias_{namespace}"] = column
        return pert_id, columns


def name_keys(names: Iterable[str]) -> DrugKeys:
    """The study's keys: each drug by its sciPlex name, with its ``drug_name:`` alias."""
    from embhub.identity.drugs import drug_name_key

    names = list(names)
    return DrugKeys("drug_name", {n: n for n in names}, {"drug_name": {n: drug_name_key(n) for n in names}})


def table_keys(names: Iterable[str], table: DrugTable) -> DrugKeys:
    """Keys from the user's drug table: InChIKeys (it has SMILES) or CIDs; see the module docstring."""
    from embhub.identity.drugs import InvalidMolecule, drug_name_key, parse_smiles

    names = sorted(names)
    missing = [n for n in names if table.find(n) is None]
    if missing:
        raise InputError(
            f"{table.path}: {len(missing)} drug(s) of the sciPlex3 screen are not in the drug table "
            f"(first: {', '.join(repr(n) for n in missing[:3])}); add a row for each "
            "(a row with an empty structure keeps the drug's name as its key)"
        )
    namespace = "inchikey" if table.has_smiles else "pubchem_cid"
    keys: dict[str, str] = {}
    aliases: dict[str, dict[str, str]] = {"drug_name": {}, "smiles": {}, "inchikey": {}, "pubchem_cid": {}}
    by_name, by_variant = [], []
    for name in names:
        row = table.find(name)
        if row.conflict:
            raise InputError(
                f"{table.path}, row {row.conflict}: drug '{row.name}' is listed twice with different structures; keep one"
            )
        aliases["drug_name"][name] = drug_name_key(name)
        if row.cid:
            aliases["pubchem_cid"][name] = row.cid
        if row.smiles:
            try:
                molecule = parse_smiles(row.smiles)
            except InvalidMolecule as exc:
                raise InputError(f"{table.path}: drug '{row.name}': {exc}; fix its SMILES or leave it empty") from None
            aliases["smiles"][name] = molecule.canonical_smiles
            aliases["inchikey"][name] = molecule.inchikey
        key = aliases["inchikey"].get(name, "") if namespace == "inchikey" else row.cid
        if not key:
            key = drug_name_key(name)
            by_name.append(name)
        keys[name] = key
        if row.name != name:
            by_variant.append(f"'{name}' → '{row.name}'")
    _refuse_shared_keys(keys, table.path)
    notes = [f"drugs: keyed by {namespace} from drug table {table.path.name} ({len(names) - len(by_name)} of {len(names)})"]
    if by_name:
        notes.append(f"drugs without a structure in the table keep a name key (drug_name:…): {', '.join(by_name)}")
    if by_variant:
        notes.append(f"drug table rows matched by name variant: {', '.join(by_variant)}")
    return DrugKeys(namespace, keys, {ns: values for ns, values in aliases.items() if values}, notes)


def _refuse_shared_keys(keys: dict[str, str], path: Path) -> None:
    owner: dict[str, str] = {}
    for name, key in keys.items():
        if key in owner:
            raise InputError(
                f"{path}: drugs '{owner[key]}' and '{name}' get the same key {key}; "
                "give each its own structure (they would be merged into one perturbation)"
            )
        owner[key] = name


def _text(value) -> str:
    import pandas as pd

    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value).strip()


def _cid(text: str, path: Path, name: str) -> str:
    """A CID as digits ("" when absent); ``2244.0`` from a float column becomes ``2244``."""
    if not text:
        return ""
    try:
        return str(int(float(text)))
    except ValueError:
        raise InputError(f"{path}: pubchem_cid '{text}' of drug '{name}' is not a number; give an integer CID") from None
