"""Gene vectors contextualised on cells: each gene's last-layer hidden state averaged over the cells it is in.

This is the study's ``scGPT_<dataset>_<cell line>_controls`` embedding: every control cell goes through the
transformer once (:mod:`embhub_scgpt.transformer`), and a gene's vector is the mean, over the cells whose
sequence holds the gene, of the transformer's output at the gene's position. Cells are padded into batches of
at most ``tokens_per_batch`` tokens (cells × longest sequence), longest cells first; padding positions are
masked as keys and never averaged, so batching does not change the vectors beyond float rounding. Sums are
kept in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from embhub_scgpt.cell_tokens import CellSequence


@dataclass(frozen=True)
class GeneMeans:
    """Vocabulary index → row of ``vectors`` (float32 means) and the number of cells averaged."""

    row: dict[int, int]
    vectors: np.ndarray
    cells: np.ndarray


def token_batches(sequences: Sequence[CellSequence], tokens_per_batch: int) -> list[list[CellSequence]]:
    """Cells grouped longest first (ties by name) so that cells × longest length ≤ ``tokens_per_batch``."""
    ordered = sorted(sequences, key=lambda cell: (-len(cell.tokens), cell.name))
    batches: list[list[CellSequence]] = []
    for cell in ordered:
        if batches and (len(batches[-1]) + 1) * len(batches[-1][0].tokens) <= tokens_per_batch:
            batches[-1].append(cell)
        else:
            batches.append([cell])
    return batches


class CellContextEncoder:
    """A loaded scGPT transformer on the chosen device and precision."""

    def __init__(self, model: Any, *, pad_token: int, pad_value: float, device: Any, dtype: Any):
        self.model = model.to(device=device, dtype=dtype)
        self.pad_token, self.pad_value = pad_token, pad_value
        self.device, self.dtype = device, dtype

    def gene_means(self, sequences: Sequence[CellSequence], tokens_per_batch: int) -> GeneMeans:
        import torch

        genes = np.unique(np.concatenate([cell.tokens[1:] for cell in sequences] or [np.zeros(0, np.int64)]))
        row = {int(token): index for index, token in enumerate(genes)}
        lookup = torch.full((int(genes.max()) + 1 if len(genes) else 1,), -1, dtype=torch.long, device=self.device)
        lookup[torch.as_tensor(genes, device=self.device)] = torch.arange(len(genes), device=self.device)
        width = self.model.encoder.embedding.embedding_dim
        sums = torch.zeros(len(genes), width, dtype=torch.float64, device=self.device)
        cells = torch.zeros(len(genes), dtype=torch.float64, device=self.device)
        with torch.inference_mode():
            for batch in token_batches(sequences, tokens_per_batch):
                tokens, values = self._padded(batch)
                keep = tokens != self.pad_token
                hidden = self.model(tokens, values, keep)
                gene_positions = keep.clone()
                gene_positions[:, 0] = False
                rows = lookup[tokens[gene_positions]]
                sums.index_add_(0, rows, hidden[gene_positions].double())
                cells.index_add_(0, rows, torch.ones_like(rows, dtype=torch.float64))
        means = (sums / cells.clamp(min=1)[:, None]).float().cpu().numpy()
        return GeneMeans(row, means, cells.cpu().numpy().astype(np.int64))

    def _padded(self, batch: Sequence[CellSequence]):
        import torch

        length = max(len(cell.tokens) for cell in batch)
        tokens = np.full((len(batch), length), self.pad_token, np.int64)
        values = np.full((len(batch), length), self.pad_value, np.float32)
        for index, cell in enumerate(batch):
            tokens[index, : len(cell.tokens)] = cell.tokens
            values[index, : len(cell.values)] = cell.values
        return (
            torch.as_tensor(tokens, device=self.device),
            torch.as_tensor(values, device=self.device, dtype=self.dtype),
        )
