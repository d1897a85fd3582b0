"""The control cells of a raw-count ``.h5ad`` file, restricted to the genes a cell model takes as input.

The study contextualised its cell foundation models (scGPT, AIDO.Cell…) on the control cells of each
perturbation screen (Replogle's ``non-targeting`` cells). This module reads such a file for any of them: it
keeps the cells whose ``obs[control_column]`` equals ``control_value`` (all cells when no column is named),
caps them at ``max_cells`` by a seeded sample that does not depend on the file's cell order, and sums each
cell's counts per model token (a vocabulary index, an input-index position: whatever integer the model
gives a gene).

A ``var`` column is matched to a token through its Ensembl id: the ``var`` column ``gene_id``, ``gene_ids`` or
``ensembl_id`` when present (Ensembl ids), else ``var``'s index (Ensembl ids or symbols); each id is resolved by
the gene identity layer, and the gene takes the token the caller's ``token_of_gene`` gives it, so a gene gets
the same token here as in the model's other modes. Several columns of one gene add their counts.

The count matrix is streamed block by block (:mod:`embhub.datasets.cells`); only the chosen cells' rows over
the matched genes are kept, with each cell's library size over every gene of the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embhub.errors import InputError

ENSEMBL_VAR_COLUMNS = ("gene_id", "gene_ids", "ensembl_id")


@dataclass(frozen=True)
class CellsModel:
    """Who reads the cells, for the errors: the model's gene set (``"the scGPT vocabulary"``) and its docs page."""

    genes: str
    docs: str

    @property
    def hint(self) -> str:
        return f"set cells=PATH to a raw-count .h5ad of control cells (see {self.docs})"

    def cells_file(self, given: str, model: str) -> Path:
        """The ``cells`` parameter of ``model`` as a path; one line when it is unset or names no file."""
        if not given:
            raise InputError(
                f"model '{model}' in mode control_cells needs the control cells: set cells (--set cells=FILE.h5ad, "
                f"raw counts); see {self.docs}"
            )
        path = Path(given).expanduser()
        if not path.is_file():
            raise InputError(f"cells file '{path}' does not exist; {self.hint}")
        return path


@dataclass(frozen=True)
class ControlCells:
    """The chosen cells: ``counts`` (cells × ``tokens``) summed per model token, in float64."""

    path: Path
    names: list[str]
    counts: Any
    library_sizes: np.ndarray
    tokens: np.ndarray
    """Model token of each column of ``counts``."""
    matching_cells: int
    """Cells that passed the filter, before the ``max_cells`` cap."""
    file_genes: int
    file_genes_matched: int


def cell_rank(seed: int, name: str) -> int:
    """A stable pseudo-random integer of a cell's name: orders the ``max_cells`` sample and seeds the cell's RNG."""
    digest = hashlib.blake2b(f"{seed}\0{name}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def read_control_cells(
    path: Path,
    token_of_gene: dict[str, int],
    model: CellsModel,
    *,
    control_column: str,
    control_value: str,
    max_cells: int,
    seed: int,
) -> ControlCells:
    """The control cells of ``path``; ``token_of_gene`` maps Ensembl ids to the model's tokens."""
    import scipy.sparse as sp

    from embhub.datasets.cells import CountMatrix, check_counts, read_var

    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"cells file '{path}' does not exist; {model.hint}")
    var = read_var(path)
    columns, tokens = _match_var(var, path, token_of_gene, model)
    names = _obs_names(path, model)
    chosen = _choose_cells(path, names, control_column, control_value, model)
    matching = len(chosen)
    if max_cells > 0 and matching > max_cells:
        chosen = np.sort(sorted(chosen, key=lambda row: cell_rank(seed, names[row]))[:max_cells])
    used_tokens = np.unique(tokens)
    to_token = sp.csr_matrix(
        (np.ones(len(columns)), (columns, np.searchsorted(used_tokens, tokens))),
        shape=(len(var), len(used_tokens)),
    )
    wanted = np.zeros(len(names), bool)
    wanted[chosen] = True
    parts, sizes = [], []
    for start, block in CountMatrix(path).blocks():
        rows = np.flatnonzero(wanted[start : start + block.shape[0]])
        if len(rows):
            picked = block[rows]
            check_counts(picked, path, start + int(rows[0]))
            parts.append(picked @ to_token)
            sizes.append(np.asarray(picked.sum(axis=1)).ravel())
    return ControlCells(
        path=path,
        names=[names[row] for row in chosen],
        counts=sp.vstack(parts).tocsr(),
        library_sizes=np.concatenate(sizes),
        tokens=used_tokens,
        matching_cells=matching,
        file_genes=to_token.shape[0],
        file_genes_matched=len(columns),
    )


def _match_var(var, path: Path, token_of_gene: dict[str, int], model: CellsModel) -> tuple[np.ndarray, np.ndarray]:
    """Columns of the file whose gene has a model token, and that token."""
    from embhub.identity.genes import load_gene_identity

    column = next((c for c in ENSEMBL_VAR_COLUMNS if c in var), None)
    ids = (var[column] if column else var.index).astype(str).tolist()
    ident = load_gene_identity()
    columns, tokens = [], []
    for position, gene_id in enumerate(ids):
        resolution = ident.resolve(gene_id)
        token = token_of_gene.get(resolution.ensembl_id) if resolution.resolved else None
        if token is not None:
            columns.append(position)
            tokens.append(token)
    if not columns:
        where = f"var column '{column}'" if column else "var's index"
        examples = ", ".join(ids[:3]) or "no genes"
        raise InputError(
            f"cells file {path}: no gene of its {where} ({examples}, …) is in {model.genes}; var must hold "
            f"gene symbols or Ensembl ids (index, or a column {'/'.join(ENSEMBL_VAR_COLUMNS)}) of human genes"
        )
    return np.asarray(columns), np.asarray(tokens)


def _obs_names(path: Path, model: CellsModel) -> list[str]:
    from embhub.datasets.cells import _open, _values

    with _open(path) as handle:
        if "obs" not in handle:
            raise InputError(f"cells file {path} has no obs table; is it an .h5ad file? {model.hint}")
        obs = handle["obs"]
        index = obs.attrs.get("_index", "_index")
        index = index.decode() if isinstance(index, bytes) else str(index)
        return [str(name) for name in _values(obs[index], slice(None))]


def _choose_cells(path: Path, names: list[str], column: str, value: str, model: CellsModel) -> np.ndarray:
    """Rows whose ``obs[column]`` is ``value`` (as text); every row when ``column`` is empty."""
    from embhub.datasets.cells import ObsColumns

    if not column:
        if not names:
            raise InputError(f"cells file {path} holds no cells; {model.hint}")
        return np.arange(len(names))
    obs = ObsColumns(path)
    if column not in obs.names:
        raise InputError(
            f"cells file {path}: obs has no column '{column}' (columns: {', '.join(obs.names[:12])}); set "
            "control_column to the column that marks its control cells, or control_column= to use every cell"
        )
    chosen, seen = [], set()
    for start, block in obs.blocks([column]):
        values = np.asarray(block[column].astype(str))
        chosen.append(start + np.flatnonzero(values == value))
        if len(seen) < 5:
            seen.update(values[:100].tolist())
    rows = np.concatenate(chosen) if chosen else np.array([], int)
    if not len(rows):
        shown = ", ".join(sorted(seen)[:5])
        raise InputError(
            f"cells file {path}: no cell has obs '{column}' == '{value}' (values include {shown}); set "
            "control_column / control_value to the column and value that mark its control cells"
        )
    return rows
