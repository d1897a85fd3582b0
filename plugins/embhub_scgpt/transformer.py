"""scGPT's transformer in inference, written for embhub: gene + value encoders and the encoder layers.

It reproduces ``TransformerModel._encode`` of scGPT for the released whole-human configuration
(``input_emb_style: continuous``, post-norm layers, no batch labels or batch norm):

- gene encoder: ``enc_norm(embedding(token))``;
- value encoder (``ContinuousValueEncoder``): ``norm(linear2(relu(linear1(min(value, 512)))))``;
- their sum goes through ``nlayers`` post-norm layers, each ``x = norm1(x + out_proj(attention(x)))`` then
  ``x = norm2(x + linear2(relu(linear1(x))))`` (torch's ``TransformerEncoderLayer`` with ``batch_first`` and
  scGPT's ``FlashTransformerEncoderLayer`` with ``norm_scheme="post"`` both compute this), attention
  masked on padding keys, LayerNorm epsilon 1e-5; dropout is off in inference.

Module and parameter names are scGPT's, so ``best_model.pt`` loads as saved. Checkpoints trained with
flash-attention name the fused query/key/value projection ``self_attn.Wqkv.{weight,bias}``; it holds the
same ``(3·embsize, embsize)`` matrix (queries, keys, values, each split into heads in order) as torch's
``self_attn.in_proj_{weight,bias}``, and is renamed on loading.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from embhub.errors import InputError
from embhub_scgpt.checkpoint import ARGS_FILE, DOWNLOAD_HINT, WEIGHTS_FILE, ScgptFolder

VALUE_CLAMP = 512.0
"""``ContinuousValueEncoder.max_value``: values are clipped to it before the projection."""


class GeneEncoder(nn.Module):
    def __init__(self, tokens: int, width: int):
        super().__init__()
        self.embedding = nn.Embedding(tokens, width)
        self.enc_norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.enc_norm(self.embedding(tokens))


class ContinuousValueEncoder(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.linear1 = nn.Linear(1, width)
        self.linear2 = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.linear1(values.unsqueeze(-1).clamp(max=VALUE_CLAMP)))
        return self.norm(self.linear2(hidden))


class SelfAttention(nn.Module):
    """Multi-head self-attention with torch's parameter names (``in_proj_*``, ``out_proj``)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=keep[:, None, None, :])
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, width))


class EncoderLayer(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int):
        super().__init__()
        self.self_attn = SelfAttention(width, heads)
        self.linear1 = nn.Linear(width, hidden)
        self.linear2 = nn.Linear(hidden, width)
        self.norm1 = nn.LayerNorm(width)
        self.norm2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.self_attn(x, keep))
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


class TransformerEncoder(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(width, heads, hidden) for _ in range(layers))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, keep)
        return x


class ScgptTransformer(nn.Module):
    """Gene tokens and expression values of padded cells → the last layer's hidden state of every token."""

    def __init__(self, tokens: int, width: int, heads: int, hidden: int, layers: int):
        super().__init__()
        self.encoder = GeneEncoder(tokens, width)
        self.value_encoder = ContinuousValueEncoder(width)
        self.transformer_encoder = TransformerEncoder(width, heads, hidden, layers)

    def forward(self, tokens: torch.Tensor, values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``keep`` is False on padding positions."""
        return self.transformer_encoder(self.encoder(tokens) + self.value_encoder(values), keep)


def model_shape(folder: ScgptFolder) -> dict[str, int]:
    """``nheads``, ``d_hid`` and ``nlayers`` of ``args.json``, checked; refuses configurations not reproduced here."""
    args, path = folder.args, folder.directory / ARGS_FILE
    shape = {}
    for key in ("nheads", "d_hid", "nlayers"):
        value = args.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{path} has no positive integer '{key}', which control_cells needs; {DOWNLOAD_HINT}")
        shape[key] = value
    if folder.embsize % shape["nheads"]:
        raise InputError(f"{path}: embsize {folder.embsize} is not divisible by nheads {shape['nheads']}; {DOWNLOAD_HINT}")
    style = args.get("input_emb_style", "continuous")
    if style != "continuous":
        raise InputError(
            f"{path} has input_emb_style '{style}'; control_cells reproduces only 'continuous' (the released "
            "pretrained models' style); use mode gene_token for this checkpoint"
        )
    for unsupported in ("pre_norm", "use_batch_labels", "DSBN"):
        if args.get(unsupported):
            raise InputError(
                f"{path} sets {unsupported}, which control_cells does not reproduce (the released pretrained "
                "models do not use it); use mode gene_token for this checkpoint"
            )
    return shape


def load_transformer(folder: ScgptFolder, state: dict[str, Any]) -> ScgptTransformer:
    """The model of ``folder`` with the weights of ``state`` (either attention naming)."""
    shape = model_shape(folder)
    model = ScgptTransformer(len(folder.vocab), folder.embsize, shape["nheads"], shape["d_hid"], shape["nlayers"])
    renamed = {key.replace("self_attn.Wqkv.", "self_attn.in_proj_"): value for key, value in state.items()}
    wanted = model.state_dict()
    missing = [key for key in wanted if key not in renamed]
    path = folder.directory / WEIGHTS_FILE
    if missing:
        raise InputError(
            f"{path} lacks {missing[0]}" + (f" and {len(missing) - 1} more weights" if len(missing) > 1 else "")
            + f", which control_cells needs (args.json says nlayers {shape['nlayers']}); {DOWNLOAD_HINT}"
        )
    wrong = next((k for k in wanted if tuple(renamed[k].shape) != tuple(wanted[k].shape)), None)
    if wrong is not None:
        raise InputError(
            f"{path}: {wrong} has shape {tuple(renamed[wrong].shape)}, args.json describes "
            f"{tuple(wanted[wrong].shape)}; the files come from different models, {DOWNLOAD_HINT}"
        )
    model.load_state_dict({key: renamed[key] for key in wanted})
    return model.eval()

