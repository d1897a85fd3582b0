"""scGPT's gene encoder on its own: a token's embedding row followed by the encoder's LayerNorm.

This is what scGPT feeds its transformer for each gene before any expression value or cell context is
added (``GeneEncoder`` in scGPT: ``enc_norm(embedding(token))``), so it is a context-free gene vector
of width ``embsize``. The LayerNorm uses torch's default epsilon, 1e-5, as scGPT's does.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from embhub_scgpt.checkpoint import GENE_ENCODER_KEYS, ScgptFolder, load_weights

LAYER_NORM_EPS = 1e-5


class GeneTokenEncoder:
    """The gene-encoder weights of one checkpoint, on the chosen device and precision."""

    def __init__(self, folder: ScgptFolder, *, device: str = "auto", precision: str = "fp32"):
        import torch

        from embhub.accel import pick_device, pick_dtype

        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, precision)
        weights = load_weights(folder, GENE_ENCODER_KEYS)
        embedding, norm_weight, norm_bias = (weights.tensors[key] for key in GENE_ENCODER_KEYS)
        self.embedding = embedding.to(self.device, self.dtype)
        self.norm_weight = norm_weight.to(self.device, self.dtype)
        self.norm_bias = norm_bias.to(self.device, self.dtype)
        self.attention_naming = weights.attention_naming
        self.layers = folder.args.get("nlayers")
        self._torch = torch

    @property
    def dim(self) -> int:
        return int(self.embedding.shape[1])

    def embed(self, token_ids: Sequence[int]) -> np.ndarray:
        """``(len(token_ids), embsize)`` float32 vectors, in the order given."""
        torch = self._torch
        with torch.inference_mode():
            index = torch.as_tensor(list(token_ids), dtype=torch.long, device=self.device)
            rows = self.embedding.index_select(0, index)
            normed = torch.nn.functional.layer_norm(rows, (self.dim,), self.norm_weight, self.norm_bias, LAYER_NORM_EPS)
            return normed.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {
            "device": str(self.device),
            "precision": str(self.dtype).removeprefix("torch."),
            "torch": self._torch.__version__,
            "layers": self.layers,
            "attention_weights": {"Wqkv": "Wqkv (flash-attention)", "in_proj": "in_proj (torch attention)"}.get(
                self.attention_naming, "none found"
            ),
        }
