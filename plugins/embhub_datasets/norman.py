"""Norman et al. 2019 CRISPRa screen in K562 (single perturbations), as the study prepared it.

Real layouts: the scPerturb ``NormanWeissman2019_filtered.h5ad`` (raw counts; obs ``perturbation`` —
``control`` or symbols joined by ``_`` —, ``nperts``, ``gemgroup``; var indexed by symbol with
``ensemble_id``) and the GEARS ``perturb_processed.h5ad`` (obs ``condition`` such as ``KLF1+ctrl`` / ``ctrl``;
var indexed by Ensembl id; log-normalised, so used only for the gene panel). Give both; the panel is the
scPerturb genes whose Ensembl id is in the GEARS file (5,045 in the study). Cells with ``nperts > 1`` are
left out. Responses are batch-matched per GEM group; the ceiling uses the Essential (global-control) bootstrap
as the study did.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from embhub.datasets.recipe import Dataset
from embhub.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from embhub.datasets.recipe import CellSource

HAND_MAPPED = {"C19orf26": "ENSG00000099625", "KIAA1804": "ENSG00000143674", "C3orf72": "ENSG00000206262"}
CELL_LINE = "K-562"


class Norman(Dataset):
    name = "norman"
    entity = "gene"
    key_namespace = "ensembl_gene_id"
    description = "Norman 2019 CRISPRa Perturb-seq in K562, single-gene perturbations"
    citation = (
        "Norman et al. (2019) Exploring genetic interaction manifolds constructed from rich single-cell "
        "phenotypes, Science 365:786"
    )
    raw_files = "scPerturb NormanWeissman2019_filtered.h5ad + GEARS perturb_processed.h5ad (gene panel)"
    control = "batch"
    ceiling_control = "global"
    deg = "pooled"
    deg_min_cells = 30
    one_file_per_cell_line = True

    def read(self, raw: Sequence[Path], layer: str | None = None) -> CellSource:
        import numpy as np

        from embhub.datasets.cells import CountMatrix, ObsColumns, read_var
        from embhub.datasets.recipe import CellFile, CellSource, StreamedCells, require_columns

        scperturb, gears = None, None
        for path in raw:
            obs = ObsColumns(path)
            names = obs.names
            if "perturbation" in names:
                if scperturb is not None:
                    raise InputError(f"two scPerturb files given ({scperturb[0].name}, {path.name}); norman reads one")
                scperturb = (path, obs, names)
            elif "condition" in names:
                if gears is not None:
                    raise InputError(f"two GEARS files given ({gears.name}, {path.name}); norman reads one")
                gears = path
            else:
                raise InputError(f"{path}: obs has neither 'perturbation' (scPerturb) nor 'condition' (GEARS)")
        if scperturb is None:
            raise InputError(
                "norman needs the scPerturb NormanWeissman2019_filtered.h5ad (raw counts, gemgroup); the GEARS "
                "file holds log-normalised values and serves only as the gene panel"
            )
        path, obs, names = scperturb
        require_columns(names, ("perturbation", "gemgroup"), path)
        var = read_var(path)
        require_columns(var, ("ensemble_id",), path, what="var")
        ensembl = var["ensemble_id"].astype(object).where(var["ensemble_id"].notna(), "").astype(str).str.strip().to_numpy()
        has_id = ensembl != ""
        notes = []
        if not has_id.all():
            notes.append(f"{int((~has_id).sum())} scPerturb genes without an Ensembl id left out of the gene panel")
        if gears is not None:
            in_gears = np.isin(ensembl, read_var(gears).index.astype(str).to_numpy()) & has_id
            panel = np.flatnonzero(in_gears)
            notes.append(f"gene panel: {len(panel)} scPerturb genes whose Ensembl id is in the GEARS file")
        else:
            panel = np.flatnonzero(has_id)
            notes.append("gene panel: all scPerturb genes with an Ensembl id (no GEARS file given; the study used the GEARS subset)")
        symbol_to_id = {symbol: gene for symbol, gene in zip(var.index.astype(str), ensembl) if gene}
        symbol_to_id.update(HAND_MAPPED)
        columns = ["perturbation", "gemgroup", *(["nperts"] if "nperts" in names else [])]
        cells = StreamedCells(obs, columns, lambda block: norman_cells(block, symbol_to_id))
        return CellSource(
            [CellFile(CountMatrix(path, layer), cells, panel)],
            ensembl[panel],
            var.index.astype(str).to_numpy()[panel],
            notes=notes,
        )


def norman_cells(obs: pd.DataFrame, symbol_to_id: dict[str, str]) -> pd.DataFrame:
    """Standard cell columns of one block of scPerturb obs: singles and controls kept, combinations excluded."""
    import numpy as np
    import pandas as pd

    from embhub.datasets.recipe import first_reason

    perturbation = obs["perturbation"].astype(str).to_numpy()
    n_perts = (
        obs["nperts"].to_numpy()
        if "nperts" in obs
        else np.array([0 if p == "control" else p.count("_") + 1 for p in perturbation])
    )
    is_control = n_perts == 0
    pert_id = np.array([symbol_to_id.get(p, "") if not c else "" for p, c in zip(perturbation, is_control)])
    single = n_perts <= 1
    keep, excluded = first_reason(
        {
            "cells with more than one perturbation": ~single,
            "cells whose target symbol has no Ensembl id": ~is_control & (pert_id == ""),
        },
        len(obs),
    )
    return pd.DataFrame(
        {
            "cell_line": CELL_LINE,
            "batch": obs["gemgroup"].astype(str).to_numpy(),
            "pert_id": pert_id,
            "pert_label": np.where(is_control, "control", perturbation),
            "is_control": is_control,
            "keep": keep,
            "excluded": excluded,
        }
    )
