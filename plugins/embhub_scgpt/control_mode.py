"""``mode: control_cells`` end to end: read the control cells, tokenise them, run the model once, keep the means.

The cell pass runs once per provider (on the first batch of genes); later batches look genes up. A resumed
extraction repeats the pass in its new process and, every random choice being seeded per cell, gets the same
vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from embhub.errors import InputError
from embhub_scgpt.checkpoint import ARGS_FILE, DOWNLOAD_HINT, ScgptFolder

DEFAULT_MAX_SEQ_LEN = 1200
DEFAULT_N_BINS = 51
DEFAULT_PAD_VALUE = -2
CLS_TOKEN = "<cls>"


class ControlCellVectors:
    """The cells, their sequences and every gene's mean hidden state, for one checkpoint and cells file."""

    def __init__(self, folder: ScgptFolder, token_of_gene: dict[str, int], parameters: Any):
        from embhub_scgpt.cell_tokens import cell_sequences
        from embhub_scgpt.control_cells import read_control_cells

        self.folder, self.parameters = folder, parameters
        self.settings = sequence_settings(folder, parameters.max_length)
        self.cells = read_control_cells(
            Path(parameters.cells),
            token_of_gene,
            control_column=parameters.control_column,
            control_value=parameters.control_value,
            max_cells=parameters.max_cells,
            seed=parameters.seed,
        )
        self.sequences = cell_sequences(
            self.cells,
            cls_token=folder.vocab[CLS_TOKEN],
            pad_value=self.settings["pad_value"],
            n_bins=self.settings["n_bins"],
            max_length=self.settings["max_length"],
            seed=parameters.seed,
        )
        self.expressed_in = np.asarray((self.cells.counts > 0).sum(axis=0)).ravel()
        self._means = None
        self._run_facts: dict[str, Any] = {}

    def means(self):
        """:class:`~embhub_scgpt.cell_context.GeneMeans`, computed on first use."""
        if self._means is None:
            from embhub.accel import pick_device, pick_dtype
            from embhub_scgpt.cell_context import CellContextEncoder
            from embhub_scgpt.checkpoint import attention_naming, load_state
            from embhub_scgpt.transformer import load_transformer

            device = pick_device(self.parameters.device)
            dtype = pick_dtype(device, self.parameters.precision)
            state = load_state(self.folder)
            encoder = CellContextEncoder(
                load_transformer(self.folder, state),
                pad_token=self.folder.vocab[self.folder.pad_token],
                pad_value=self.settings["pad_value"],
                device=device,
                dtype=dtype,
            )
            self._means = encoder.gene_means(self.sequences, self.parameters.tokens_per_batch)
            import torch

            self._run_facts = {
                "device": str(device),
                "precision": str(dtype).removeprefix("torch."),
                "torch": torch.__version__,
                "attention_weights": {"Wqkv": "Wqkv (flash-attention)", "in_proj": "in_proj (torch attention)"}.get(
                    attention_naming(state), "none found"
                ),
            }
        return self._means

    def seen_tokens(self) -> set[int]:
        """Vocabulary indexes of the genes some cell's sequence holds."""
        return {int(token) for cell in self.sequences for token in cell.tokens[1:]}

    def why_absent(self, token: int) -> str:
        """Why a gene with a vocabulary token has no vector (to follow the gene's name in a failure)."""
        cells, n = self.cells, len(self.cells.names)
        column = np.searchsorted(cells.tokens, token)
        if column >= len(cells.tokens) or cells.tokens[column] != token:
            return f"is not among the genes of the cells file {cells.path}"
        expressed = int(self.expressed_in[column])
        if expressed == 0:
            return f"is not expressed in the {n} control cells of {cells.path}"
        return (
            f"is expressed in {expressed} of the {n} control cells of {cells.path} but the max_length "
            f"{self.settings['max_length']} sample dropped it from each; raise max_length or max_cells"
        )

    def facts(self) -> dict[str, Any]:
        p, cells = self.parameters, self.cells
        lengths = np.array([len(cell.tokens) for cell in self.sequences])
        return {
            "cells_file": str(cells.path),
            "cells_filter": f"obs['{p.control_column}'] == '{p.control_value}'" if p.control_column else "every cell",
            "cells_matching_filter": cells.matching_cells,
            "cells_used": len(cells.names),
            "cells_sample": f"max_cells {p.max_cells}, seed {p.seed}" if p.max_cells else "all matching cells",
            "cells_file_genes": cells.file_genes,
            "cells_file_genes_in_vocab": cells.file_genes_matched,
            "max_length": self.settings["max_length"],
            "truncated_cells": int(sum(cell.expressed + 1 > len(cell.tokens) for cell in self.sequences)),
            "mean_sequence_length": float(lengths.mean()) if len(lengths) else 0.0,
            "binning": (
                f"normalise to 1e4 per cell, log1p, {self.settings['n_bins']} per-cell quantile bins of the "
                f"expressed genes (ties spread at random, seeded per cell); <cls> value {self.settings['pad_value']}"
            ),
            "vector": "mean over the control cells holding the gene of scGPT's last-layer hidden state at the gene",
            "seed": p.seed,
            **self._run_facts,
        }


def sequence_settings(folder: ScgptFolder, max_length: int) -> dict[str, Any]:
    """``n_bins``, ``pad_value`` and the sequence length cap from ``args.json`` (scGPT's defaults where absent)."""
    args, path = folder.args, folder.directory / ARGS_FILE
    if CLS_TOKEN not in folder.vocab:
        raise InputError(f"{folder.directory / 'vocab.json'} has no '{CLS_TOKEN}' token, which control_cells needs; {DOWNLOAD_HINT}")
    n_bins = args.get("n_bins", DEFAULT_N_BINS)
    if not isinstance(n_bins, int) or n_bins < 3:
        raise InputError(f"{path}: n_bins {n_bins!r} is not an integer ≥ 3; {DOWNLOAD_HINT}")
    pad_value = args.get("pad_value", DEFAULT_PAD_VALUE)
    if not isinstance(pad_value, (int, float)) or isinstance(pad_value, bool):
        raise InputError(f"{path}: pad_value {pad_value!r} is not a number; {DOWNLOAD_HINT}")
    style = args.get("input_style", "binned")
    if style != "binned":
        raise InputError(
            f"{path} has input_style '{style}'; control_cells reproduces only 'binned' (the released pretrained "
            "models' input); use mode gene_token for this checkpoint"
        )
    length = max_length or args.get("max_seq_len", DEFAULT_MAX_SEQ_LEN)
    return {"n_bins": n_bins, "pad_value": float(pad_value), "max_length": int(length)}
