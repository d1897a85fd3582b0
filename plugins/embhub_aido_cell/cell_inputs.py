"""A cell's raw counts over AIDO.Cell's 19,264-gene index → the 19,266 values the model reads, as ModelGenerator
prepares them (``GenBioCellFoundation.forward``, after ``align_genes`` has put the counts in index order with
0 for index genes the data lacks):

- ``total`` = the cell's summed counts over the index genes (genes outside the index are not counted);
- each gene's value is ``log1p(count / total · 10⁴)``;
- two read-depth values follow, both ``max(log10(total), 5)`` (ModelGenerator's raw-count and input-count
  depths, which are the same number when the input is the raw profile);
- every value is capped at 20, then rounded to bfloat16, the dtype ModelGenerator casts the input to before
  the model sees it.

A cell without any count over the index genes has no defined values (0/0) and is left out by the caller.
"""

from __future__ import annotations

import numpy as np

TARGET_SUM = 1e4
MIN_LOG10_DEPTH = 5.0
VALUE_CAP = 20.0


def model_values(counts: np.ndarray) -> np.ndarray:
    """``(cells, genes)`` raw counts in index order → ``(cells, genes + 2)`` float32 model input."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    depth = np.maximum(np.log10(totals), MIN_LOG10_DEPTH)
    values = np.concatenate([np.log1p(counts / totals * TARGET_SUM), depth, depth], axis=1)
    return round_to_bfloat16(np.minimum(values, VALUE_CAP).astype(np.float32))


def round_to_bfloat16(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), kept as float32; values are finite."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)
