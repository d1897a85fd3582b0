"""The drug → target-gene table: reading it, checking it, and finding a drug in it.

A table is a TSV or CSV with one row per (drug, target) pair and the columns

- ``drug``: the drug's name or the user's id (repeated for each of its targets);
- ``target``: a gene symbol or Ensembl gene id (several may also be given ``;``-separated);
- ``smiles`` (optional): the drug's structure, which makes its key an InChIKey;
- ``source`` (optional, but every shipped row has one): where the drug–target fact comes from.

Other columns are ignored. A drug found in the table keeps the order in which its targets first appear.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from embhub.errors import InputError
from embhub.identity.drugs import InvalidMolecule, drug_name_variants, looks_like_inchikey, parse_smiles
from embhub.inputs import data_file_text

DATA = Path(__file__).with_name("data")
BUNDLED_TABLES = {"sciplex3": DATA / "sciplex3_targets.tsv"}
"""Tables shipped with the plugin, by the name the ``targets`` parameter accepts."""
NAME_KEY_PREFIX = "drug_name:"
"""Key of a drug whose table row gives no SMILES: this prefix + its case-folded name."""


@dataclass
class DrugTargets:
    """One drug of the table: its name, optional structure, targets in table order, and sources."""

    name: str
    smiles: str = ""
    targets: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    canonical_smiles: str = ""
    inchikey: str = ""

    @property
    def key(self) -> str:
        """The store key: the InChIKey when the structure is known, else ``drug_name:<name>``."""
        return self.inchikey or NAME_KEY_PREFIX + " ".join(self.name.split()).casefold()


@dataclass
class TargetTable:
    path: Path
    drugs: dict[str, DrugTargets]
    sha256: str

    def find(self, value: str) -> DrugTargets | None:
        """The drug that ``value`` names: by name (exact, then without code/salt), InChIKey or SMILES."""
        by_variant = self._name_index()
        for variant in drug_name_variants(value):
            if variant in by_variant:
                return by_variant[variant]
        text = value.strip()
        by_key = {drug.inchikey: drug for drug in self.drugs.values() if drug.inchikey}
        if looks_like_inchikey(text):
            return by_key.get(text)
        try:
            return by_key.get(parse_smiles(text).inchikey)
        except InvalidMolecule:
            return None

    def _name_index(self) -> dict[str, DrugTargets]:
        """Each drug under each of its name variants; a variant two drugs share names neither."""
        if getattr(self, "_index", None) is None:
            owners: dict[str, list[DrugTargets]] = {}
            for drug in self.drugs.values():
                for variant in drug_name_variants(drug.name):
                    owners.setdefault(variant, []).append(drug)
            self._index = {variant: found[0] for variant, found in owners.items() if len(found) == 1}
        return self._index


def table_path(targets: str) -> Path:
    """A bundled table's name (``sciplex3``) or a path to the user's table."""
    if targets in BUNDLED_TABLES:
        return BUNDLED_TABLES[targets]
    path = Path(targets).expanduser()
    if not path.is_file():
        known = ", ".join(BUNDLED_TABLES)
        raise InputError(f"drug-target table '{targets}' is neither a bundled table ({known}) nor an existing file")
    return path


def read_target_table(path: Path) -> TargetTable:
    """Read and check a drug → target table; a malformed row is an :class:`InputError` naming its line."""
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    raw = path.read_bytes()
    drugs: dict[str, DrugTargets] = {}
    line = 0

    def uncommented(handle):
        nonlocal line
        for line, text in enumerate(handle, start=1):
            if not text.startswith("#"):
                yield text

    with data_file_text(path, "drug-target table") as handle:
        reader = csv.DictReader(uncommented(handle), delimiter=delimiter)
        columns = {name.strip().lower(): name for name in reader.fieldnames or []}
        for needed in ("drug", "target"):
            if needed not in columns:
                raise InputError(
                    f"drug-target table {path} has no '{needed}' column (it has: {', '.join(columns.values()) or 'none'}; "
                    "needs drug and target, optionally smiles and source)"
                )
        for row in reader:
            name = (row.get(columns["drug"]) or "").strip()
            targets = [t.strip() for t in (row.get(columns["target"]) or "").split(";") if t.strip()]
            if not name or not targets:
                raise InputError(f"drug-target table {path}, line {line}: every row needs a drug and a target")
            smiles = (row.get(columns.get("smiles", ""), "") or "").strip()
            source = (row.get(columns.get("source", ""), "") or "").strip()
            drug = drugs.setdefault(name, DrugTargets(name=name))
            if smiles and drug.smiles and smiles != drug.smiles:
                raise InputError(f"drug-target table {path}, line {line}: drug '{name}' is given two different SMILES")
            drug.smiles = drug.smiles or smiles
            drug.targets.extend(t for t in targets if t not in drug.targets)
            if source and source not in drug.sources:
                drug.sources.append(source)
    if not drugs:
        raise InputError(f"drug-target table {path} holds no rows")
    for drug in drugs.values():
        if drug.smiles:
            try:
                molecule = parse_smiles(drug.smiles)
            except InvalidMolecule as exc:
                raise InputError(f"drug-target table {path}: drug '{drug.name}': {exc}") from None
            drug.canonical_smiles, drug.inchikey = molecule.canonical_smiles, molecule.inchikey
    return TargetTable(path=path, drugs=drugs, sha256=hashlib.sha256(raw).hexdigest())
