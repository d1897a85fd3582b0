"""sci-Plex3 drug screen (Srivatsan et al. 2020; A549, K562, MCF7; GEO GSM4150378), 10 µM, plate-matched.

Real layout: ``*UMI.count.matrix`` triplets (gene, cell, count; 1-based), ``*gene.annotations.txt`` (Ensembl
id, symbol; no header), ``*cell.annotations.txt`` (cell barcode first; no header) and ``*pData.txt`` (per cell:
``cell_type``, ``product_name``, ``dose`` in nM, ``plate_oligo``; matched to the cells by the ``cell`` column
or by row order). Files may be gzipped. An optional BioMart export with a ``Gene name`` column (the study's
``mart_export_protein_coding.txt``) restricts the panel to protein-coding genes.

Protocol: control ``Vehicle``; dose 10,000 nM kept; responses normalised over all genes then restricted to the
panel; DEG on the panel, per plate (> 20 cells of the drug on the plate over all doses), majority vote.

Keys: sciPlex files carry no structures, so without more the drugs are keyed by name (the study's key), with
a ``drug_name`` alias. A drug table among the raw files (``.csv``/``.tsv``/``.parquet``: name + ``smiles``
and/or ``pubchem_cid``) keys them by InChIKey (or CID) instead, the name kept as label
(:mod:`embhub_datasets.sciplex3_drugs`). The cell table is read whole (pData is a text table and the
triplets are in no cell order); sciPlex3 has ~650k cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from embhub.datasets.recipe import Dataset
from embhub.errors import InputError
from embhub_datasets.sciplex3_drugs import DRUG_TABLE_SUFFIXES

if TYPE_CHECKING:
    from embhub.datasets.recipe import CellSource

CONTROL = "Vehicle"
DOSE_NM = 10000.0
ROLES = {
    "count.matrix": "matrix",
    "gene.annotations": "genes",
    "cell.annotations": "cells",
    "pdata": "pdata",
    "mart": "mart",
}


def assign_roles(raw: Sequence[Path]) -> dict[str, Path]:
    roles: dict[str, Path] = {}
    for path in raw:
        lowered = path.name.lower()
        role = next((r for key, r in ROLES.items() if key in lowered), None)
        if role is None and path.suffix.lower() in DRUG_TABLE_SUFFIXES:
            role = "drugs"
        if role is None:
            raise InputError(
                f"{path}: not a sciPlex3 file (expected *UMI.count.matrix, *gene.annotations.txt, *cell.annotations.txt, "
                "*pData.txt, or a drug table .csv/.tsv/.parquet)"
            )
        if role in roles:
            raise InputError(f"{path}: a second sciPlex3 {role} file (after {roles[role]}); give one")
        roles[role] = path
    for role in ("matrix", "genes", "cells", "pdata"):
        if role not in roles:
            raise InputError(
                f"sciplex3 needs its {role} file ({[k for k, r in ROLES.items() if r == role][0]}); give all four GEO files"
            )
    return roles


class Sciplex3(Dataset):
    name = "sciplex3"
    entity = "drug"
    key_namespace = "drug_name"
    description = "sci-Plex3 drug screen (A549, K562, MCF7), 10 µM, plate-matched controls"
    citation = (
        "Srivatsan et al. (2020) Massively multiplex chemical transcriptomics at single-cell resolution, Science 367:45"
    )
    raw_files = (
        "GEO GSM4150378: UMI.count.matrix, gene.annotations, cell.annotations, pData "
        "[+ mart protein-coding list, drug table (name, smiles/pubchem_cid) for InChIKey keys]"
    )
    control = "batch"
    deg = "plate_vote"
    deg_min_cells = 20
    library = "all"
    deg_library = "panel"
    ceiling_library = "panel"
    ceiling_inner = 20
    folds_by_label = True

    def read(self, raw: Sequence[Path], layer: str | None = None) -> CellSource:
        import numpy as np
        import pandas as pd

        from embhub.datasets.cells import TripletMatrix
        from embhub.datasets.recipe import CellFile, CellSource, CellTable, require_columns
        from embhub_datasets.sciplex3_drugs import name_keys, read_drug_table, table_keys

        roles = assign_roles(raw)
        genes = pd.read_csv(roles["genes"], sep="\t", header=None).iloc[:, :2]
        genes.columns = ["gene_id", "symbol"]
        barcodes = pd.read_csv(roles["cells"], sep="\t", header=None).iloc[:, 0].astype(str).to_numpy()
        pdata = pd.read_csv(roles["pdata"], sep="\t")
        require_columns(pdata, ("cell_type", "product_name", "dose", "plate_oligo"), roles["pdata"])
        if "cell" in pdata:
            pdata = pdata.set_index(pdata["cell"].astype(str))
            missing = ~pd.Index(barcodes).isin(pdata.index)
            if missing.any():
                raise InputError(
                    f"{roles['pdata']}: {int(missing.sum())} cells of the matrix have no pData row (first {barcodes[missing][0]})"
                )
            pdata = pdata.loc[barcodes]
        elif len(pdata) != len(barcodes):
            raise InputError(
                f"{roles['pdata']}: {len(pdata)} rows for {len(barcodes)} cells and no 'cell' column to match them"
            )
        panel = np.arange(len(genes))
        notes = []
        if "mart" in roles:
            coding = set(pd.read_csv(roles["mart"], sep=None, engine="python")["Gene name"].astype(str))
            panel = np.flatnonzero(genes["symbol"].astype(str).isin(coding).to_numpy())
            notes.append(f"gene panel: {len(panel)} protein-coding genes (BioMart list)")
        else:
            notes.append("gene panel: all genes (no BioMart protein-coding list given; the study used it)")
        drug = pdata["product_name"].astype(str).str.strip().to_numpy()
        dose = pd.to_numeric(pdata["dose"], errors="coerce").to_numpy()
        is_control = drug == CONTROL
        other_dose = ~is_control & (dose != DOSE_NM)
        screened = np.unique(drug[~is_control & ~other_dose])
        keys = table_keys(screened, read_drug_table(roles["drugs"])) if "drugs" in roles else name_keys(screened)
        pert_id, aliases = keys.per_cell(drug, is_control)
        cells = pd.DataFrame(
            {
                **aliases,
                "cell_line": pdata["cell_type"].astype(str).to_numpy(),
                "batch": pdata["plate_oligo"].astype(str).to_numpy(),
                "pert_id": pert_id,
                "pert_label": drug,
                "is_control": is_control,
                "compound": drug,
                "keep": ~other_dose,
                "excluded": np.where(other_dose, f"cells at doses other than {DOSE_NM:g} nM", ""),
                "counted": np.ones(len(drug), bool),
            }
        )
        matrix = TripletMatrix(roles["matrix"], n_cells=len(barcodes), n_genes=len(genes))
        return CellSource(
            [CellFile(matrix, CellTable(cells), panel)],
            genes["gene_id"].astype(str).to_numpy()[panel],
            genes["symbol"].astype(str).to_numpy()[panel],
            notes=notes + keys.notes,
            key_namespace=keys.namespace,
        )
