"""Tahoe-100M drug screen (50 cancer cell lines, 379 drugs), prepared plate by plate as in the study.

Real layout: per-plate (or per-cell-line) h5ad files with raw counts; obs ``drug``, ``plate``, ``cell_line``
(or ``cell_name``), ``drugname_drugconc`` (``"[('Drug', 5.0, 'uM')]"``), ``pubchem_cid``, ``canonical_smiles``
and ``pass_filter``; var indexed by gene symbol. An optional plain-text file of gene symbols (the study's
``tahoe_coding_non_mt_genes.txt``) restricts the panel; otherwise every gene of the files is kept.

The release's metadata parquets may be given among the raw files, as the study joined them
(:mod:`embhub_datasets.tahoe_metadata`): ``gene_metadata.parquet`` gives each panel symbol its Ensembl id, and
``drug_metadata.parquet`` gives each drug name its PubChem CID and SMILES (these win over obs
``pubchem_cid`` / ``canonical_smiles``, which are then optional) and the per-drug annotations (targets,
``moa-*``, approval) stored with the prepared perturbations. Drugs are keyed by CID, with SMILES and InChIKey
aliases. The study's ``tahoe_splits_drug.csv`` among the raw files sets the outer folds (per drug name).

Protocol: cells with ``pass_filter == "full"``; dose 5 µM; control ``DMSO_TF``; five low-quality cell lines and
three drugs dropped; responses against the same plate's control, averaged over plates; DEG per plate
(> 20 cells of the drug on the plate), majority vote; ceiling 10 × 20 plate-matched draws.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from embhub.datasets.recipe import Dataset
from embhub.errors import InputError
from embhub.identity.drugs import inchikey_of

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from embhub.datasets.recipe import CellSource
    from embhub_datasets.tahoe_metadata import DrugRecord

CONTROL_DRUG = "DMSO_TF"
DOSE_UM = 5.0
LOW_QUALITY_LINES = ("CVCL_1571", "CVCL_1531", "CVCL_1715", "CVCL_1577", "CVCL_1716")
NAMED_LINES_NOTE = "cell lines by obs cell_name"
DROPPED_DRUGS = ("Trametinib (DMSO_TF solvate)", "Sacubitril/Valsartan", "Verteporfin")


def parse_dose(value: str) -> float:
    """The concentration of ``"[('Drug', 5.0, 'uM')]"``; NaN when it cannot be read."""
    try:
        parsed = ast.literal_eval(str(value))
        return float(parsed[0][1])
    except (ValueError, SyntaxError, IndexError, TypeError):
        return float("nan")


def gene_ids_for(symbols: np.ndarray, var: pd.DataFrame) -> np.ndarray:
    """Ensembl ids from var (``gene_id``/``ensembl_id``) or the identity layer; the symbol when unresolved."""
    import numpy as np

    for column in ("gene_id", "ensembl_id", "ensembl_gene_id"):
        if column in var:
            return var[column].astype(str).to_numpy()
    from embhub.identity.genes import load_gene_identity

    identity = load_gene_identity()
    return np.array([identity.resolve(s).ensembl_id or s for s in symbols])


class Tahoe(Dataset):
    name = "tahoe"
    entity = "drug"
    key_namespace = "pubchem_cid"
    description = "Tahoe-100M single-cell drug screen, 5 µM, plate-matched controls"
    citation = "Zhang et al. (2025) Tahoe-100M: a giga-scale single-cell perturbation atlas, bioRxiv 2025.02.20.639398"
    raw_files = (
        "per-plate h5ad files (obs drug, plate, cell_line, drugname_drugconc, pubchem_cid) "
        "[+ gene list .txt, gene_metadata.parquet, drug_metadata.parquet, tahoe_splits_drug.csv]"
    )
    control = "batch"
    deg = "plate_vote"
    deg_min_cells = 20
    library = "all"
    deg_library = "panel"
    ceiling_library = "panel"
    ceiling_inner = 20

    def read(self, raw: Sequence[Path], layer: str | None = None) -> CellSource:
        import numpy as np
        import pandas as pd

        from embhub.datasets.cells import CountMatrix, ObsColumns, read_var
        from embhub.datasets.recipe import CellFile, CellSource, StreamedCells, require_columns
        from embhub_datasets.tahoe_metadata import TahoeMetadata, read_drug_splits

        panel_symbols = None
        metadata = TahoeMetadata()
        h5ads = []
        splits, splits_path = None, None
        for path in raw:
            if path.suffix == ".txt":
                panel_symbols = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            elif path.suffix == ".parquet":
                metadata.add(path)
            elif path.suffix == ".csv":
                if splits is not None:
                    raise InputError(f"two Tahoe splits files given ({splits_path.name}, {path.name}); pass one")
                splits, splits_path = read_drug_splits(path), path
            else:
                h5ads.append(path)
        if not h5ads:
            raise InputError("tahoe needs at least one per-plate .h5ad file")
        tables = [(path, ObsColumns(path), read_var(path)) for path in h5ads]
        common = set(tables[0][2].index.astype(str))
        for _, _, var in tables[1:]:
            common &= set(var.index.astype(str))
        if panel_symbols is not None:
            common &= set(panel_symbols)
        symbols = np.array([s for s in tables[0][2].index.astype(str) if s in common])
        notes = [
            f"gene panel: {len(symbols)} genes"
            + (" from the given gene list" if panel_symbols else " (all genes common to the files)")
        ]
        if metadata.ensembl_ids:
            gene_ids = np.array([metadata.ensembl_ids.get(s, s) for s in symbols])
            unresolved = int(sum(s not in metadata.ensembl_ids for s in symbols))
            notes.append(
                "gene ids: from gene_metadata.parquet"
                + (f" ({unresolved} symbols absent there keep their symbol as id)" if unresolved else "")
            )
        else:
            gene_ids = gene_ids_for(symbols, tables[0][2].loc[symbols])
        if metadata.drugs:
            notes.append(f"drugs: CID and SMILES from drug metadata ({len(metadata.drugs)} drugs)")
        files = []
        to_cells = TahoeCells(metadata.drugs)
        for path, obs, var in tables:
            names = obs.names
            line_column = "cell_line" if "cell_line" in names else "cell_name"
            if line_column == "cell_name" and not any(note.startswith(NAMED_LINES_NOTE) for note in notes):
                notes.append(
                    f"{NAMED_LINES_NOTE} ({path.name}): the study's five low-quality lines are dropped by Cellosaurus "
                    f"id ({', '.join(LOW_QUALITY_LINES)}), so lines named otherwise were kept; choose lines with "
                    "evaluate's --cell-line"
                )
            required = ["drug", "plate", line_column, "drugname_drugconc"]
            if not metadata.drugs:
                required.append("pubchem_cid")
            require_columns(names, required, path)
            optional = ("pass_filter", "pubchem_cid", "canonical_smiles")
            columns = [*required, *(c for c in optional if c in names and c not in required)]
            cells = StreamedCells(obs, columns, lambda block, column=line_column: to_cells(block, column))
            panel = pd.Index(var.index.astype(str)).get_indexer(symbols)
            files.append(CellFile(CountMatrix(path, layer), cells, panel))
        annotations = {
            record.cid: record.annotations for record in metadata.drugs.values() if record.cid and record.annotations
        }
        if splits is not None:
            notes.append(f"folds: the study's drug splits from {splits_path.name} ({len(splits)} drugs)")
        return CellSource(
            files, gene_ids, symbols, notes=notes, pert_annotations=annotations,
            given_folds=splits, folds_source=splits_path.name if splits_path else "",
        )


class TahoeCells:
    """Turns blocks of Tahoe obs into standard cell columns; doses and InChIKeys are parsed once per value."""

    def __init__(self, drugs: dict[str, DrugRecord] | None = None) -> None:
        self._drugs = drugs or {}
        self._doses: dict[str, float] = {}
        self._inchikeys: dict[str, str] = {}

    def __call__(self, obs: pd.DataFrame, line_column: str) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        from embhub.datasets.recipe import first_reason

        drug = obs["drug"].astype(str).str.strip().to_numpy()
        dose = self._lookup(obs["drugname_drugconc"], self._doses, parse_dose)
        is_control = drug == CONTROL_DRUG
        pert_id = self._cids(obs, drug)
        pert_id[is_control] = ""
        line = obs[line_column].astype(str).to_numpy()
        passed = (
            obs["pass_filter"].astype(str).to_numpy() == "full" if "pass_filter" in obs else np.ones(len(obs), bool)
        )
        no_cid = ~is_control & (pert_id == "")
        not_counted = {
            "cells failing pass_filter": ~passed,
            "cells of the five low-quality cell lines": np.isin(line, LOW_QUALITY_LINES),
            "cells of the three dropped drugs": np.isin(drug, DROPPED_DRUGS),
        }
        keep, excluded = first_reason(
            {
                **not_counted,
                f"cells at doses other than {DOSE_UM} µM": ~is_control & (dose != DOSE_UM),
                "cells of drugs without a PubChem CID": no_cid,
            },
            len(obs),
        )
        counted = ~np.logical_or.reduce([*not_counted.values(), no_cid])
        aliases = {}
        smiles = self._smiles(obs, drug)
        if smiles is not None:
            aliases = {"alias_smiles": smiles, "alias_inchikey": self._lookup(smiles, self._inchikeys, inchikey_of)}
        return pd.DataFrame(
            {
                **aliases,
                "cell_line": line,
                "batch": obs["plate"].astype(str).to_numpy(),
                "pert_id": pert_id,
                "pert_label": drug,
                "is_control": is_control,
                "compound": drug,
                "keep": keep,
                "excluded": excluded,
                "counted": counted,
            }
        )

    def _cids(self, obs: pd.DataFrame, drug: np.ndarray) -> np.ndarray:
        """CID strings per cell: the drug metadata's, else obs ``pubchem_cid`` ("" when neither has one)."""
        import numpy as np
        import pandas as pd

        cids = self._by_drug(drug, "cid")
        if "pubchem_cid" in obs:
            numbers = pd.to_numeric(pd.Series(obs["pubchem_cid"]), errors="coerce")
            values, inverse = np.unique(numbers, return_inverse=True)
            from_obs = np.array(["" if np.isnan(v) else str(int(v)) for v in values], dtype=object)[inverse]
            cids = np.where(cids == "", from_obs, cids)
        return cids

    def _smiles(self, obs: pd.DataFrame, drug: np.ndarray) -> np.ndarray | None:
        """SMILES per cell: the drug metadata's, else obs ``canonical_smiles``; None when neither exists."""
        import numpy as np

        from_obs = obs["canonical_smiles"].astype(str).to_numpy() if "canonical_smiles" in obs else None
        if not self._drugs:
            return from_obs
        smiles = self._by_drug(drug, "smiles")
        return smiles if from_obs is None else np.where(smiles == "", from_obs, smiles)

    def _by_drug(self, drug: np.ndarray, attribute: str) -> np.ndarray:
        import numpy as np

        names, inverse = np.unique(drug, return_inverse=True)
        values = [getattr(self._drugs[n], attribute) if n in self._drugs else "" for n in names]
        return np.array(values, dtype=object)[inverse]

    @staticmethod
    def _lookup(values, cache: dict, parse) -> np.ndarray:
        import numpy as np

        values = np.asarray(values, dtype=object).astype(str)
        for value in set(values) - cache.keys():
            cache[value] = parse(value)
        return np.array([cache[value] for value in values])
