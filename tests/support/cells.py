"""Raw-count control-cell files in the layout the cell-model providers read (Replogle-style obs ``gene``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp

from embhub.identity.genes import load_gene_identity


def write_raw_cells(path: Path, table: pd.DataFrame, is_control: Callable[[str], bool], *, ensembl_index: bool = False) -> Path:
    """An h5ad of ``table``'s counts (cells × gene symbols, CSR) with obs ``gene``: ``non-targeting`` for the cells
    ``is_control(name)`` picks, ``TP53`` for the others; var indexed by symbol, or by Ensembl id with ``ensembl_index``."""
    labels = ["non-targeting" if is_control(name) else "TP53" for name in table.index]
    var = pd.DataFrame(index=table.columns.astype(str))
    if ensembl_index:
        ident = load_gene_identity()
        var = pd.DataFrame({"gene_name": table.columns}, index=[ident.resolve(s).ensembl_id for s in table.columns])
    adata = anndata.AnnData(
        X=sp.csr_matrix(table.to_numpy(dtype=np.float32)), obs=pd.DataFrame({"gene": labels}, index=table.index), var=var
    )
    adata.write_h5ad(path)
    return path
