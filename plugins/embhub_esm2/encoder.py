"""Mean-pooled ESM-2 protein embeddings with length-sorted, token-budgeted batches.

Pooling: the protein vector is the mean of the last hidden layer over its residues; the ``<cls>`` and
``<eos>`` tokens ESM adds, and padding, are excluded.

Long proteins: ESM-2 was trained on crops of 1,024 tokens (1,022 residues plus ``<cls>``/``<eos>``). A
protein longer than ``window`` residues is cut into ``ceil(length / window)`` contiguous, non-overlapping
windows whose lengths differ by at most one; each window is run on its own (with its own ``<cls>``/``<eos>``) and the
protein vector is the mean over all residues of all windows, i.e. the windows' means averaged with
weights equal to their residue counts.

Residue letters outside the tokenizer's alphabet (e.g. ``J``) are read as ``X``, ESM's unknown residue,
so every residue is exactly one token.

Batching: windows are sorted by length, longest first, and packed greedily so that
``batch_size × (longest window + 2)`` stays within ``max_tokens``; padding is masked, and ESM-2's rotary
position encoding makes a padded sequence's states equal to its unpadded ones up to float rounding,
so neither batching nor input order changes the vectors beyond that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embhub.errors import InputError

ESM2_TRAINING_WINDOW = 1022
"""Residues per ESM-2 training crop (1,024 tokens less ``<cls>`` and ``<eos>``; Lin et al. 2023)."""


@dataclass(frozen=True)
class Window:
    protein: int
    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start


def split_windows(length: int, window: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of ``ceil(length / window)`` contiguous windows covering ``[0, length)``.

    Window lengths differ by at most one; the longer ones come first (as ``numpy.array_split``).
    """
    if window < 1:
        raise InputError(f"window must be at least 1 residue, got {window}")
    count = max(1, math.ceil(length / window))
    base, extra = divmod(length, count)
    bounds, start = [], 0
    for index in range(count):
        stop = start + base + (index < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def plan_batches(windows: Sequence[Window], max_tokens: int) -> list[list[int]]:
    """Indices into ``windows``, longest first, grouped so each batch's padded token count ≤ ``max_tokens``.

    A window that alone exceeds the budget gets a batch of its own.
    """
    order = sorted(range(len(windows)), key=lambda i: (-windows[i].length, i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = windows[current[0]].length if current else windows[index].length
        if current and (len(current) + 1) * (longest + 2) > max_tokens:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


class EsmEncoder:
    """An ESM model and tokenizer loaded from a local directory, on the chosen device and precision."""

    def __init__(self, checkpoint: Path, *, device: str = "auto", precision: str = "auto"):
        import torch
        from transformers import AutoTokenizer, EsmModel

        from embhub.accel import pick_device, pick_dtype

        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, precision)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
            self.model = EsmModel.from_pretrained(str(checkpoint), dtype=self.dtype, add_pooling_layer=False)
        except (OSError, ValueError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"cannot load an ESM model from {checkpoint} ({first_line}); check the checkpoint") from exc
        self.model.to(self.device).eval()
        self.alphabet = frozenset(token for token in self.tokenizer.get_vocab() if len(token) == 1)
        self._torch = torch

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def embed(self, sequences: Sequence[str], *, window: int = ESM2_TRAINING_WINDOW, max_tokens: int = 16384) -> np.ndarray:
        """Mean-pooled vectors, shape ``(len(sequences), hidden_size)``, float32, in input order."""
        torch = self._torch
        sequences = [self.to_alphabet(sequence) for sequence in sequences]
        windows = [
            Window(protein, start, stop)
            for protein, sequence in enumerate(sequences)
            for start, stop in split_windows(len(sequence), window)
        ]
        sums = np.zeros((len(sequences), self.dim), np.float64)
        counts = np.zeros(len(sequences), np.int64)
        with torch.inference_mode():
            for batch in plan_batches(windows, max_tokens):
                chunk = [sequences[windows[i].protein][windows[i].start : windows[i].stop] for i in batch]
                window_sums = self._residue_sums(chunk)
                for row, index in enumerate(batch):
                    sums[windows[index].protein] += window_sums[row]
                    counts[windows[index].protein] += windows[index].length
        if (counts == 0).any():
            empty = int(np.argmax(counts == 0))
            raise InputError(f"protein sequence {empty + 1} of the batch is empty; remove it from the FASTA")
        return (sums / counts[:, None]).astype(np.float32)

    def to_alphabet(self, sequence: str) -> str:
        """Residue letters the tokenizer lacks become ``X`` (unknown amino acid), one token per residue."""
        if set(sequence) <= self.alphabet:
            return sequence
        return "".join(c if c in self.alphabet else "X" for c in sequence)

    def _residue_sums(self, chunk: list[str]) -> np.ndarray:
        """Sum of last-layer states over each sequence's residues (``<cls>``, ``<eos>``, padding excluded)."""
        torch = self._torch
        encoded = self.tokenizer(chunk, padding=True, return_tensors="pt")
        input_ids = encoded["input_ids"].to(self.device)
        attention = encoded["attention_mask"].to(self.device)
        hidden = self.model(input_ids=input_ids, attention_mask=attention).last_hidden_state.float()
        lengths = torch.tensor([len(s) for s in chunk], device=self.device)
        positions = torch.arange(hidden.shape[1], device=self.device)[None, :]
        residues = (positions >= 1) & (positions <= lengths[:, None])
        return (hidden * residues[..., None]).sum(dim=1).double().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        import torch
        import transformers

        return {
            "device": str(self.device),
            "precision": str(self.dtype).removeprefix("torch."),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "layers": int(self.model.config.num_hidden_layers),
        }
