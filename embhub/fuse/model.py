"""The fusion transformer (torch; import this module only where torch is wanted).

One token per embedding source, each source z-scored and linearly projected to ``d_model``; a learned CLS
token first; the cell line as a learned vector, either attended as the last token or added to every token; a
stack of post-LayerNorm encoder blocks (separate q/k/v projections, optional sigmoid gate on the attention
output, GELU feed-forward d → 2d → d); the CLS output goes through an MLP head to the response ``(G,)`` or the
DEG logits ``(G, 3)``. This follows the study's encoder (benchmark-protocol-details.md §7.3).

Missing sources are masked out of attention as keys, so no other token ever reads them; their inputs are also
zeroed before projection, so a missing source may hold anything (even NaN) without changing any prediction.
Attention is computed explicitly (the sequences are a few dozen tokens) so the weights can be returned.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from embhub.fuse.config import FusionConfig

DEG_CLASSES = 3


class SourceProjection(nn.Module):
    """z-score (statistics fitted on training perturbations) → Linear(dim → d_model) → Dropout."""

    def __init__(self, dim: int, d_model: int, dropout: float):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.linear = nn.Linear(dim, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.scale
        x = torch.where(present[:, None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        return self.dropout(self.linear(x))


class FusionEncoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float, gate: bool):
        super().__init__()
        self.n_heads = n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.gate = nn.Linear(d_model, d_model) if gate else None
        self.out = nn.Linear(d_model, d_model)
        self.attention_dropout = nn.Dropout(dropout)
        self.dropout = nn.Dropout(dropout)
        self.norm_attention = nn.LayerNorm(d_model)
        self.norm_feed_forward = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))

    def forward(self, x: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, T, d)``, ``visible`` ``(B, T)`` bool (False: may not be attended to).

        Returns the new tokens and the attention weights ``(B, heads, T, T)`` (rows: queries).
        """
        batch, tokens, d_model = x.shape
        head_dim = d_model // self.n_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, tokens, self.n_heads, head_dim).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(head_dim)
        scores = scores.float().masked_fill(~visible[:, None, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        attended = (self.attention_dropout(weights).to(v.dtype) @ v).transpose(1, 2).reshape(batch, tokens, d_model)
        if self.gate is not None:
            attended = attended * torch.sigmoid(self.gate(x))
        x = self.norm_attention(x + self.dropout(self.out(attended)))
        x = self.norm_feed_forward(x + self.dropout(self.feed_forward(x)))
        return x, weights


class FusionModel(nn.Module):
    """Token order: ``[CLS, source_1 … source_S(, cell line)]``."""

    def __init__(self, source_dims: Sequence[int], n_cell_lines: int, n_outputs: int, config: FusionConfig):
        super().__init__()
        d = config.d_model
        self.config = config
        self.n_outputs = n_outputs
        self.projections = nn.ModuleList(SourceProjection(dim, d, config.input_dropout) for dim in source_dims)
        self.cls = nn.Parameter(torch.randn(1, 1, d))
        self.cell_line = nn.Sequential(nn.Embedding(n_cell_lines, d), nn.LayerNorm(d), nn.Dropout(config.dropout))
        self.layers = nn.ModuleList(
            FusionEncoderLayer(d, config.n_heads, config.dropout, config.gate) for _ in range(config.n_layers)
        )
        head: list[nn.Module] = []
        width = d
        for _ in range(config.head_layers):
            head += [nn.Linear(width, config.head_width), nn.GELU(), nn.Dropout(config.dropout)]
            width = config.head_width
        head.append(nn.Linear(width, n_outputs))
        self.head = nn.Sequential(*head)
        self.register_buffer("response_offset", torch.zeros(n_cell_lines, n_outputs))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def set_input_statistics(self, means: Sequence[torch.Tensor], scales: Sequence[torch.Tensor]) -> None:
        for projection, mean, scale in zip(self.projections, means, scales):
            projection.mean.copy_(mean)
            projection.scale.copy_(scale)

    def start_from(self, offset: torch.Tensor) -> None:
        """Predict ``offset[cell line]`` ``(n_cell_lines, n_outputs)`` plus the head's output, the head's last
        layer zeroed so that the untrained model predicts exactly ``offset``."""
        self.response_offset.copy_(offset)
        nn.init.zeros_(self.head[-1].weight)

    def forward(
        self,
        sources: Sequence[torch.Tensor],
        present: torch.Tensor,
        cell_line: torch.Tensor,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """``sources[s]`` ``(B, dim_s)``, ``present`` ``(B, S)`` bool, ``cell_line`` ``(B,)`` long.

        Returns ``(B, n_outputs)`` (and, with ``return_attention``, one ``(B, heads, T, T)`` tensor per layer).
        """
        if self.training and self.config.modal_drop > 0:
            present = _drop_sources(present, self.config.modal_drop)
        batch = present.shape[0]
        tokens = torch.stack([proj(x, present[:, s]) for s, (proj, x) in enumerate(zip(self.projections, sources))], 1)
        cls = self.cls.expand(batch, 1, -1).to(tokens.dtype)
        line = self.cell_line(cell_line)[:, None, :].to(tokens.dtype)
        always = torch.ones((batch, 1), dtype=torch.bool, device=present.device)
        if self.config.cell_line == "token":
            x = torch.cat([cls, tokens, line], dim=1)
            visible = torch.cat([always, present, always], dim=1)
        else:
            x = torch.cat([cls, tokens], dim=1) + line
            visible = torch.cat([always, present], dim=1)
        attention = []
        for layer in self.layers:
            x, weights = layer(x, visible)
            attention.append(weights)
        output = self.head(x[:, 0]) + self.response_offset[cell_line].to(x.dtype)
        return (output, attention) if return_attention else output


def _drop_sources(present: torch.Tensor, probability: float) -> torch.Tensor:
    """Hide each present source with ``probability``; a row that would lose every source keeps its own."""
    kept = present & (torch.rand(present.shape, device=present.device) >= probability)
    empty = ~kept.any(dim=1, keepdim=True)
    return torch.where(empty, present, kept)
