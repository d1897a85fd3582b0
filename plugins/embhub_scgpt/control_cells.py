"""The control cells of a raw-count ``.h5ad`` file, restricted to the genes scGPT's vocabulary names.

The reading itself (control filter, seeded ``max_cells`` sample, counts summed per token) is shared with the
other cell models in :mod:`embhub.datasets.control_cells`; here a gene's token is the vocabulary index
:mod:`embhub_scgpt.vocabulary` gives it, so a gene gets the same token as in ``mode: gene_token``.
"""

from __future__ import annotations

from pathlib import Path

from embhub.datasets.control_cells import CellsModel, ControlCells, cell_rank, read_control_cells as read_cells

SCGPT_CELLS = CellsModel(genes="the scGPT vocabulary", docs="docs/providers/scgpt.md")
CELLS_HINT = SCGPT_CELLS.hint

__all__ = ["CELLS_HINT", "SCGPT_CELLS", "ControlCells", "cell_rank", "read_control_cells"]


def read_control_cells(path: Path, token_of_gene: dict[str, int], **selection) -> ControlCells:
    """The control cells of ``path``; ``token_of_gene`` maps Ensembl ids to vocabulary indexes."""
    return read_cells(path, token_of_gene, SCGPT_CELLS, **selection)
