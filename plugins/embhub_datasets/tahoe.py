"""Tahoe-100M drug screen (50 cancer cell lines, 379 drugs), prepared plate by plate as in the study.

Real layout: per-plate (or per-cell-line) h5ad files with raw counts; obs ``drug``, ``plate``, ``cell_line``
(or ``cell_name``), ``drugname_drugconc`` (``"[('Drug', 5.0, 'uM')]"``), ``pubchem_cid``, ``canonical_smiles``
and ``pass_filter``; var indexed by gene symbol. An optional plain-text file of gene symbols (the study's
``tahoe_coding_non_mt_genes.txt``) restricts the panel; otherwise every gene of the files is kept.

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

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from embhub.datasets.recipe import CellSource

CONTROL_DRUG = "DMSO_TF"
DOSE_UM = 5.0
LOW_QUALITY_LINES = ("CVCL_1571", "CVCL_1531", "CVCL_1715", "CVCL_1577", "CVCL_1716")
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


def inchikeys_of(smiles: np.ndarray) -> np.ndarray:
    """InChIKey of each SMILES via the drug identity layer ("" when rdkit is missing or parsing fails)."""
    import numpy as np

    try:
        from embhub.identity.drugs import parse_smiles
    except ImportError:
        return np.full(len(smiles), "", dtype=object)
    keys = {}
    for value in set(smiles):
        try:
            keys[value] = parse_smiles(value).inchikey
        except (ValueError, ImportError):
            keys[value] = ""
    return np.array([keys[value] for value in smiles], dtype=object)


class Tahoe(Dataset):
    name = "tahoe"
    entity = "drug"
    key_namespace = "pubchem_cid"
    description = "Tahoe-100M single-cell drug screen, 5 µM, plate-matched controls"
    citation = "Zhang et al. (2025) Tahoe-100M: a giga-scale single-cell perturbation atlas, bioRxiv 2025.02.20.639398"
    raw_files = "per-plate h5ad files (obs drug, plate, cell_line, drugname_drugconc, pubchem_cid) [+ gene list .txt]"
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

        from embhub.datasets.cells import CountMatrix, read_obs_var
        from embhub.datasets.recipe import CellFile, CellSource

        panel_symbols = None
        h5ads = []
        for path in raw:
            if path.suffix == ".txt":
                panel_symbols = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            else:
                h5ads.append(path)
        if not h5ads:
            raise InputError("tahoe needs at least one per-plate .h5ad file")
        tables = [(path, *read_obs_var(path)) for path in h5ads]
        common = set(tables[0][2].index.astype(str))
        for _, _, var in tables[1:]:
            common &= set(var.index.astype(str))
        if panel_symbols is not None:
            common &= set(panel_symbols)
        symbols = np.array([s for s in tables[0][2].index.astype(str) if s in common])
        gene_ids = gene_ids_for(symbols, tables[0][2].loc[symbols])
        exclusions: dict[str, int] = {}
        files = []
        for path, obs, var in tables:
            files.append(
                CellFile(
                    CountMatrix(path, layer),
                    self._cells(path, obs, exclusions),
                    pd.Index(var.index.astype(str)).get_indexer(symbols),
                )
            )
        notes = [
            f"gene panel: {len(symbols)} genes"
            + (" from the given gene list" if panel_symbols else " (all genes common to the files)")
        ]
        return CellSource(files, gene_ids, symbols, exclusions=exclusions, notes=notes)

    def _cells(self, path: Path, obs: pd.DataFrame, exclusions: dict[str, int]) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        from embhub.datasets.recipe import require_columns

        line_column = "cell_line" if "cell_line" in obs else "cell_name"
        require_columns(obs, ("drug", "plate", line_column, "drugname_drugconc", "pubchem_cid"), path)
        drug = obs["drug"].astype(str).str.strip().to_numpy()
        dose = np.array([parse_dose(v) for v in obs["drugname_drugconc"].astype(str)])
        is_control = drug == CONTROL_DRUG
        cid = pd.to_numeric(obs["pubchem_cid"], errors="coerce").to_numpy()
        pert_id = np.array(["" if (c or np.isnan(v)) else str(int(v)) for c, v in zip(is_control, cid)])
        line = obs[line_column].astype(str).to_numpy()
        reasons = {
            "cells failing pass_filter": (
                obs["pass_filter"].astype(str).to_numpy() != "full"
                if "pass_filter" in obs
                else np.zeros(len(obs), bool)
            ),
            "cells of the five low-quality cell lines": np.isin(line, LOW_QUALITY_LINES),
            "cells of the three dropped drugs": np.isin(drug, DROPPED_DRUGS),
            f"cells at doses other than {DOSE_UM} µM": ~is_control & (dose != DOSE_UM),
            "cells of drugs without a PubChem CID": ~is_control & (pert_id == ""),
        }
        keep = np.ones(len(obs), bool)
        counted = np.ones(len(obs), bool)
        for reason, mask in reasons.items():
            if "doses" not in reason:
                counted &= ~mask
            newly = keep & mask
            if newly.any():
                exclusions[reason] = exclusions.get(reason, 0) + int(newly.sum())
            keep &= ~mask
        aliases = {}
        if "canonical_smiles" in obs:
            smiles = obs["canonical_smiles"].astype(str).to_numpy()
            aliases = {"alias_smiles": smiles, "alias_inchikey": inchikeys_of(smiles)}
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
                "counted": counted,
            }
        )
