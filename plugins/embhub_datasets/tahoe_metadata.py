"""Tahoe-100M's metadata tables (``metadata/`` of the tahoebio/Tahoe-100M release), as the study joined them.

``gene_metadata.parquet``: ``gene_symbol`` (the h5ad var index) and ``ensembl_id``, renamed ``symbol`` and
``ensembl_gene_id``. ``drug_metadata.parquet``: one row per ``drug`` name with ``pubchem_cid``,
``canonical_smiles``, ``targets``, ``moa-broad``, ``moa-fine``, ``human-approved``, ``clinical-trials`` and
``gpt-notes-approval``. Files are recognised by their columns, whatever their names.

The study's drug splits (``tahoe_splits_drug.csv``: ``drug``, ``fold_0`` … ``fold_4``, the fold where a drug
is ``"test"``) give the outer folds, shared by every cell line, so a raw preparation scores on the study's folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from embhub.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

GENE_COLUMNS = {"gene_symbol": "symbol", "ensembl_id": "ensembl_gene_id"}
DRUG_KEY_COLUMNS = ("drug", "pubchem_cid", "canonical_smiles")
DRUG_ANNOTATIONS = ("targets", "moa-broad", "moa-fine", "human-approved", "clinical-trials", "gpt-notes-approval")


@dataclass
class DrugRecord:
    cid: str
    smiles: str
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class TahoeMetadata:
    """Ensembl id per gene symbol, and CID, SMILES and annotations per drug name (empty when not given)."""

    ensembl_ids: dict[str, str] = field(default_factory=dict)
    drugs: dict[str, DrugRecord] = field(default_factory=dict)

    def add(self, path: Path) -> None:
        table = read_parquet(path)
        if set(GENE_COLUMNS) <= set(table.columns):
            genes = table.rename(columns=GENE_COLUMNS).dropna(subset=["symbol", "ensembl_gene_id"])
            self.ensembl_ids.update(zip(genes["symbol"].astype(str), genes["ensembl_gene_id"].astype(str)))
        elif set(DRUG_KEY_COLUMNS) <= set(table.columns):
            self.drugs.update(drug_records(table))
        else:
            raise InputError(
                f"{path}: neither Tahoe gene metadata (columns {', '.join(GENE_COLUMNS)}) nor drug metadata "
                f"(columns {', '.join(DRUG_KEY_COLUMNS)}); columns are {', '.join(map(str, table.columns[:10]))}"
            )


def read_parquet(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except ImportError:
        raise InputError(f"reading {path} needs pyarrow: pip install pyarrow") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable parquet file ({exc})") from None


def drug_records(table: pd.DataFrame) -> dict[str, DrugRecord]:
    """One record per stripped drug name (its first row); drugs without a numeric CID get ``cid`` ""."""
    import pandas as pd

    records: dict[str, DrugRecord] = {}
    cids = pd.to_numeric(table["pubchem_cid"], errors="coerce")
    annotations = [c for c in DRUG_ANNOTATIONS if c in table.columns]
    for row, cid in zip(table.itertuples(index=False, name=None), cids):
        values = dict(zip(table.columns, row))
        name = str(values["drug"]).strip()
        if name in records:
            continue
        records[name] = DrugRecord(
            "" if pd.isna(cid) else str(int(cid)),
            _text(values["canonical_smiles"]),
            {c: _text(values[c]) for c in annotations},
        )
    return records


def _text(value) -> str:
    """Annotation cells as text: lists (``targets``) joined by ``|``, missing values as ""."""
    import numpy as np
    import pandas as pd

    if isinstance(value, (list, tuple, np.ndarray)):
        return "|".join(str(v) for v in value)
    if value is None or (np.isscalar(value) and pd.isna(value)):
        return ""
    return str(value)


def read_drug_splits(path: Path) -> dict[str, int]:
    """Fold per drug name from the study's splits CSV: the one ``fold_k`` column that says ``test``."""
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable CSV file ({exc})") from None
    fold_columns = [c for c in table.columns if str(c).startswith("fold_")]
    if "drug" not in table.columns or not fold_columns or not all(c[5:].isdigit() for c in fold_columns):
        raise InputError(
            f"{path}: a Tahoe splits file needs columns drug, fold_0, fold_1, … (columns are "
            f"{', '.join(map(str, table.columns[:10]))})"
        )
    folds: dict[str, int] = {}
    for row in table.itertuples(index=False):
        values = row._asdict()
        name = str(values["drug"]).strip()
        test = [int(c[5:]) for c in fold_columns if str(values[c]).strip().lower() == "test"]
        if len(test) != 1:
            raise InputError(f"{path}: drug '{name}' is 'test' in {len(test)} fold columns; each drug needs exactly one")
        if folds.get(name, test[0]) != test[0]:
            raise InputError(f"{path}: drug '{name}' appears twice with different test folds")
        folds[name] = test[0]
    return folds
