"""``mode: control_cells``: AIDO.Cell run over a cell line's control cells, each gene's output averaged.

Every cell enters the model as its whole 19,264-gene profile (:mod:`embhub_aido_cell.cell_inputs`), so every
index gene has a hidden state in every cell, expressed or not; a gene's vector is its last-layer hidden state
at its index position, averaged over all the chosen cells — as the study's ``AIDOcell_…_essential_<cell line>``
embeddings cover all ≈19,000 index genes. The cells are read by :mod:`embhub.datasets.control_cells` (shared
with scGPT), the model is :mod:`embhub_aido_cell.transformer`.

The cell pass runs once per provider, on the first batch of genes; later batches look genes up. The pass has
no randomness beyond the seeded cell sample, so a resumed extraction recomputes the same vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from embhub.datasets.control_cells import CellsModel
from embhub.errors import InputError

AIDO_CELLS = CellsModel(genes="AIDO.Cell's 19,264-gene input index", docs="docs/providers/aido-cell.md")
CELLS_HINT = AIDO_CELLS.hint


class ControlCellVectors:
    """The chosen cells of one cells file and, once computed, every index gene's mean hidden state."""

    def __init__(self, checkpoint, index, parameters: Any):
        from embhub.datasets.control_cells import read_control_cells
        from embhub_aido_cell.transformer import model_config

        self.checkpoint, self.index, self.parameters = checkpoint, index, parameters
        self.config = model_config(checkpoint.config, checkpoint.directory / "config.json")
        self.weights = checkpoint.weight_files()
        self.cells = read_control_cells(
            Path(parameters.cells),
            {gene.ensembl_id: gene.position for gene in index.by_ensembl.values()},
            AIDO_CELLS,
            control_column=parameters.control_column,
            control_value=parameters.control_value,
            max_cells=parameters.max_cells,
            seed=parameters.seed,
        )
        index_totals = np.asarray(self.cells.counts.sum(axis=1)).ravel()
        self.used = np.flatnonzero(index_totals > 0)
        if not len(self.used):
            raise InputError(
                f"cells file {self.cells.path}: none of its {len(self.cells.names)} chosen cells has a count in "
                f"AIDO.Cell's gene index; is X raw counts of human genes? {CELLS_HINT}"
            )
        self.expressed_in = np.zeros(index.size, int)
        self.expressed_in[self.cells.tokens] = np.asarray((self.cells.counts[self.used] > 0).sum(axis=0)).ravel()
        self._model = None
        self._means: np.ndarray | None = None
        self._run_facts: dict[str, Any] = {}

    def model(self):
        """The model with the checkpoint's weights, loaded once (its tensors are checked against the config)."""
        if self._model is None:
            from embhub_aido_cell.transformer import build_model

            self._model = build_model(self.config, self.weights, self.index.size + 2)
        return self._model

    def aligned_counts(self, rows: np.ndarray) -> np.ndarray:
        """The cells ``rows`` (of the chosen cells) as dense counts over the whole index, in index order."""
        dense = np.zeros((len(rows), self.index.size))
        dense[:, self.cells.tokens] = self.cells.counts[rows].toarray()
        return dense

    def means(self) -> np.ndarray:
        """``(19,264, hidden_size)`` float32: each index position's mean last-layer hidden state over the cells."""
        if self._means is None:
            import torch

            from embhub.accel import pick_device, pick_dtype
            from embhub_aido_cell.cell_inputs import model_values

            device = pick_device(self.parameters.device)
            dtype = pick_dtype(device, self.parameters.precision)
            model = self.model().to(device=device, dtype=dtype)
            total = np.zeros((self.index.size, model.position_embedding.weight.shape[1]))
            step = self.parameters.cells_per_batch
            with torch.inference_mode():
                for start in range(0, len(self.used), step):
                    values = model_values(self.aligned_counts(self.used[start : start + step]))
                    hidden = model(torch.from_numpy(values).to(device=device, dtype=dtype))
                    total += hidden[:, : self.index.size].double().sum(dim=0).cpu().numpy()
            self._means = (total / len(self.used)).astype(np.float32)
            self._run_facts = {
                "device": str(device),
                "precision": str(dtype).removeprefix("torch."),
                "torch": torch.__version__,
            }
        return self._means

    def facts(self) -> dict[str, Any]:
        from embhub.checksums import sha256_file

        p, cells = self.parameters, self.cells
        return {
            "cells_file": str(cells.path),
            "cells_sha256": sha256_file(cells.path),
            "cells_filter": f"obs['{p.control_column}'] == '{p.control_value}'" if p.control_column else "every cell",
            "cells_matching_filter": cells.matching_cells,
            "cells_sample": f"max_cells {p.max_cells}, seed {p.seed}" if p.max_cells else "all matching cells",
            "cells_chosen": len(cells.names),
            "cells_used": len(self.used),
            "cells_without_index_counts": len(cells.names) - len(self.used),
            "cells_file_genes": cells.file_genes,
            "cells_file_genes_in_index": cells.file_genes_matched,
            "index_genes_with_counts": int(np.count_nonzero(self.expressed_in)),
            "preprocessing": (
                "counts aligned to the 19,264-gene index (absent genes 0, several columns of one gene summed); "
                "log1p(count / index total * 1e4); two depth tokens max(log10 index total, 5); values capped at 20 "
                "and rounded to bfloat16, as ModelGenerator's GenBioCellFoundation"
            ),
            "attention": "every token attends to all 19,266 (no mask), scaled_dot_product_attention",
            "normalization": self.config["normalization_type"],
            "vector": "mean over the control cells of the last-layer hidden state (after encoder.ln) at the gene's index position",
            "cells_per_batch": p.cells_per_batch,
            **self._run_facts,
        }
