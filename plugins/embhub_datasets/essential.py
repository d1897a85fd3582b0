"""Essential-gene CRISPRi screens (Replogle et al. 2022 K562 / RPE1; Nadig et al. 2025 HepG2 / Jurkat).

Real layout (the study's merged ``raw_data.h5ad``, or one file per cell line): raw counts in X; obs ``gene``
(target symbol, ``non-targeting`` for controls), ``gene_id`` (Ensembl id), ``gem_group`` (the batch),
``cell_line`` and ``is_control``; var indexed by Ensembl id with ``gene_name`` (or indexed by symbol with
``gene_id``). Several files are joined on their common genes. The original per-cell-line figshare/GEO files
lack ``cell_line`` and ``is_control``: the cell line is then read from the file name (``K562_essential_raw_…``)
and controls are the ``non-targeting`` cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from embhub.datasets.recipe import Dataset
from embhub.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from embhub.datasets.recipe import CellSource

OBS_COLUMNS = ("gene", "gene_id", "gem_group")
CONTROL_LABEL = "non-targeting"
CELL_LINE_IN_FILENAME = {"k562": "K-562", "rpe1": "hTERT-RPE1", "hepg2": "Hep-G2", "jurkat": "Jurkat"}


def cell_line_from_name(path: Path) -> str:
    """The cell line named in a per-cell-line file's name (``K562_essential_raw…``), for files without it in obs."""
    lowered = path.name.lower().replace("-", "").replace("_", "")
    found = [line for token, line in CELL_LINE_IN_FILENAME.items() if token in lowered]
    if len(found) != 1:
        raise InputError(
            f"{path}: obs has no column 'cell_line' and the file name names no single cell line "
            f"({', '.join(CELL_LINE_IN_FILENAME)}); add obs['cell_line'] or rename the file"
        )
    return found[0]


def gene_panel(var: pd.DataFrame, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Ensembl ids and symbols of a var table indexed by Ensembl id (``gene_name``) or by symbol (``gene_id``)."""
    index = var.index.astype(str).to_numpy()
    if len(index) and all(i.startswith("ENSG") for i in index[:50]):
        symbols = var["gene_name"].astype(str).to_numpy() if "gene_name" in var else index
        return index, symbols
    for column in ("gene_id", "ensembl_id", "ensemble_id"):
        if column in var:
            return var[column].astype(str).to_numpy(), index
    raise InputError(f"{path}: var is neither indexed by Ensembl ids nor has a 'gene_id' column")


def as_bool(values: pd.Series) -> np.ndarray:
    if values.dtype == bool:
        return values.to_numpy()
    return values.astype(str).str.lower().isin({"true", "1", "yes"}).to_numpy()


class Essential(Dataset):
    name = "essential"
    entity = "gene"
    key_namespace = "ensembl_gene_id"
    description = "Essential-gene CRISPRi Perturb-seq (Replogle 2022 K562/RPE1, Nadig 2025 HepG2/Jurkat)"
    citation = (
        "Replogle et al. (2022) Mapping information-rich genotype-phenotype landscapes with genome-scale "
        "Perturb-seq, Cell 185:2559; Nadig et al. (2025) Transcriptome-wide analysis of differential expression "
        "in perturbation atlases, Nat. Genet."
    )
    raw_files = "one merged raw-count h5ad (obs gene, gene_id, gem_group, cell_line, is_control) or one per cell line"
    control = "global"
    deg = "pooled"
    deg_min_cells = 30
    library = "panel"
    one_file_per_cell_line = True

    def read(self, raw: Sequence[Path], layer: str | None = None) -> CellSource:
        import pandas as pd

        from embhub.datasets.cells import CountMatrix, ObsColumns, read_var
        from embhub.datasets.recipe import CellFile, CellSource, StreamedCells, require_columns

        tables = []
        for path in raw:
            obs = ObsColumns(path)
            names = obs.names
            require_columns(names, OBS_COLUMNS, path)
            line = None if "cell_line" in names else cell_line_from_name(path)
            tables.append((path, obs, names, line, *gene_panel(read_var(path), path)))
        common = set(tables[0][4])
        for table in tables[1:]:
            common &= set(table[4])
        first_ids, first_symbols = tables[0][4], tables[0][5]
        panel = [i for i, g in enumerate(first_ids) if g in common]
        gene_ids, gene_symbols = first_ids[panel], first_symbols[panel]
        files = []
        for path, obs, names, line, ids, _ in tables:
            columns = [*OBS_COLUMNS, *(c for c in ("cell_line", "is_control") if c in names)]
            cells = StreamedCells(obs, columns, lambda block, line=line: essential_cells(block, line))
            files.append(CellFile(CountMatrix(path, layer), cells, pd.Index(ids).get_indexer(gene_ids)))
        notes = []
        if len(tables) > 1:
            notes.append(f"gene panel: {len(gene_ids)} genes common to {len(tables)} files")
        return CellSource(files, gene_ids, gene_symbols, notes=notes)


def essential_cells(obs: pd.DataFrame, cell_line: str | None) -> pd.DataFrame:
    """Standard cell columns of one block of Replogle obs (``cell_line`` given when obs lacks it)."""
    import numpy as np
    import pandas as pd

    is_control = (
        as_bool(obs["is_control"]) if "is_control" in obs else (obs["gene"].astype(str) == CONTROL_LABEL).to_numpy()
    )
    return pd.DataFrame(
        {
            "cell_line": obs["cell_line"].astype(str).to_numpy() if cell_line is None else cell_line,
            "batch": obs["gem_group"].astype(str).to_numpy(),
            "pert_id": np.where(is_control, "", obs["gene_id"].astype(str).to_numpy()),
            "pert_label": np.where(is_control, "non-targeting", obs["gene"].astype(str).to_numpy()),
            "is_control": is_control,
        }
    )
