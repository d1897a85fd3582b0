"""Each control cell as scGPT reads it: ``<cls>`` then its expressed genes, each with its expression bin.

This follows scGPT's own cell-embedding path (``tasks/cell_emb.py`` with its ``DataCollator`` and
``preprocess.binning``):

1. counts are normalised to 10,000 per cell (library over every gene of the file) and ``log1p``-ed;
2. only expressed genes (count > 0) of the vocabulary enter the sequence (``include_zero_gene`` false);
3. their values are binned per cell into ``n_bins`` levels: the edges are the ``n_bins - 1`` quantiles of the
   cell's expressed values, a value takes ``digitize`` against them, and a value tied with edges takes a
   uniformly random bin between its left and right ``digitize`` (scGPT's ``_digitize(side="both")``);
   quantile binning depends only on each cell's ranks, so the bins equal those of scGPT's collator on raw
   counts as well;
4. ``<cls>`` comes first with the value ``pad_value``; when ``<cls>`` plus the expressed genes exceed
   ``max_length``, ``max_length - 1`` genes are kept by a uniform sample without replacement (scGPT's
   ``sampling=True, keep_first_n_tokens=1``).

scGPT draws the tie-breaking and sampling numbers from a global RNG; here each cell has its own generator,
``numpy.random.default_rng(cell_rank(seed, cell name))``, used first for the tie-breaking draws
(``random(n)`` over the expressed genes ordered by token index) and then for the sample
(``permutation(n)[:max_length - 1]``), so a cell's sequence depends neither on batching nor on its position
in the file. Genes are ordered by token index (scGPT has no positional encoding, so order changes nothing
but reproducibility).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embhub.datasets.cells import log_normalise
from embhub_scgpt.control_cells import ControlCells, cell_rank


@dataclass(frozen=True)
class CellSequence:
    """One cell's input: vocabulary indexes (``<cls>`` first) and the matching values (``pad_value`` first)."""

    name: str
    tokens: np.ndarray
    values: np.ndarray
    expressed: int
    """Vocabulary genes expressed in the cell, before the length cap."""


def bin_values(values: np.ndarray, n_bins: int, rng: np.random.Generator) -> np.ndarray:
    """scGPT's per-cell binning of positive ``values`` into ``1 … n_bins - 1``, ties spread by ``rng``."""
    if not len(values):
        return np.zeros(0, np.int64)
    edges = np.quantile(values, np.linspace(0, 1, n_bins - 1))
    left = np.digitize(values, edges)
    right = np.digitize(values, edges, right=True)
    spread = rng.random(len(values))
    return np.ceil(spread * (right - left) + left).astype(np.int64)


def cell_sequences(
    cells: ControlCells, *, cls_token: int, pad_value: float, n_bins: int, max_length: int, seed: int
) -> list[CellSequence]:
    """Every cell's sequence, in the order of ``cells``."""
    normalised = log_normalise(cells.counts, np.arange(cells.counts.shape[1]), sizes=cells.library_sizes)
    normalised.sort_indices()
    sequences = []
    for row, name in enumerate(cells.names):
        start, stop = normalised.indptr[row], normalised.indptr[row + 1]
        columns, values = normalised.indices[start:stop], normalised.data[start:stop]
        expressed = values > 0
        columns, values = columns[expressed], values[expressed]
        rng = np.random.default_rng(cell_rank(seed, name))
        bins = bin_values(values, n_bins, rng)
        genes = cells.tokens[columns]
        if len(genes) + 1 > max_length:
            kept = np.sort(rng.permutation(len(genes))[: max_length - 1])
            genes, bins = genes[kept], bins[kept]
        sequences.append(
            CellSequence(
                name=name,
                tokens=np.concatenate([[cls_token], genes]).astype(np.int64),
                values=np.concatenate([[pad_value], bins]).astype(np.float32),
                expressed=int(len(columns)),
            )
        )
    return sequences
