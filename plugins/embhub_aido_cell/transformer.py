"""AIDO.Cell's ``CellFoundationModel`` forward pass in plain torch, with parameter names that load its checkpoints.

Written from GenBio's ModelGenerator (``modelgenerator/huggingface_models/cellfoundation``), inference only:

- **Value embedding** (``gene_embedding``): each input value ``v`` becomes
  ``softmax(α·h + linear2(h)) @ lookup_table.weight`` with ``h = leaky_relu(linear1(v), 0.1)`` and
  ``α = bin_alpha`` — a learned soft binning. (Its ``mask_embedding``/``pad_embedding`` replace values equal
  to ``mask_token_id``/``pad_token_id``, −1 and −2; preprocessed counts are never negative, so they never apply.)
- **Positions**: row *i* of ``position_embedding.weight`` is added at position *i* (19,264 genes, then the two
  read-depth tokens).
- **Layers** (``encoder.layer.{i}``): ``x + dense(attention(ln(x)))``, then ``x + down(silu(gate(y)) · up(y))``
  with ``y = ln(x)``; a final ``encoder.ln``. The norms are RMSNorm (``weight`` only, computed in float32) or
  LayerNorm, as ``config.json``'s ``normalization_type`` says (RMSNorm when absent, the config class's default).
- **Attention**: ``CellFoundationAttention`` accepts only flash attention, called on the full sequence with no
  mask, so every token attends to all 19,266 tokens (no padding exists: every cell is the whole index). Here
  that is ``scaled_dot_product_attention`` over tokens, which picks a memory-efficient kernel instead of
  materialising 19,266² scores. (ModelGenerator's own CPU fallback passes ``(tokens, heads, head_dim)`` to
  ``scaled_dot_product_attention``, which attends across heads rather than tokens; it is not what the model
  was trained with, so it is not reproduced.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from embhub.errors import InputError

LEAKY_SLOPE = 0.1
CONFIG_DEFAULTS = {
    "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096, "layer_norm_eps": 1e-5,
    "normalization_type": "RMSNorm", "bin_num": 100, "bin_alpha": 1.0, "add_linear_bias": True,
    "hidden_act": "swiglu", "position_embedding_type": "absolute",
}
"""``CellFoundationConfig``'s defaults, for keys a ``config.json`` leaves out."""


def model_config(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """``config.json`` with the config class's defaults filled in; a variant this code does not implement is refused."""
    full = {**CONFIG_DEFAULTS, **config}
    for key in ("hidden_act", "position_embedding_type", "normalization_type"):
        allowed = ("RMSNorm", "LayerNorm") if key == "normalization_type" else (CONFIG_DEFAULTS[key],)
        if full[key] not in allowed:
            raise InputError(
                f"{path} has {key} '{full[key]}'; AIDO.Cell's released models use {' or '.join(allowed)}, the only "
                "variant control_cells implements; use mode positional for this checkpoint"
            )
    if int(full["hidden_size"]) % int(full["num_attention_heads"]):
        raise InputError(f"{path}: hidden_size {full['hidden_size']} is not a multiple of num_attention_heads; download it again")
    return full


class RMSNorm(nn.Module):
    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        normed = wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def norm(config: dict[str, Any]) -> nn.Module:
    hidden, eps = int(config["hidden_size"]), float(config["layer_norm_eps"])
    if config["normalization_type"] == "LayerNorm":
        return nn.LayerNorm(hidden, eps=eps)
    return RMSNorm(hidden, eps)


class ValueEmbedding(nn.Module):
    """``gene_embedding``: an expression value → a mixture of ``bin_num`` learned bin vectors."""

    def __init__(self, hidden: int, bins: int, alpha: float):
        super().__init__()
        self.linear1 = nn.Linear(1, bins)
        self.linear2 = nn.Linear(bins, bins)
        self.lookup_table = nn.Embedding(bins, hidden)
        self.mask_embedding = nn.Embedding(1, hidden)
        self.pad_embedding = nn.Embedding(1, hidden)
        self.alpha = alpha

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.linear1(values.unsqueeze(-1)), LEAKY_SLOPE)
        weights = torch.softmax(self.alpha * h + self.linear2(h), dim=-1)
        return weights @ self.lookup_table.weight


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, bias: bool):
        super().__init__()
        self.query = nn.Linear(hidden, hidden, bias=bias)
        self.key = nn.Linear(hidden, hidden, bias=bias)
        self.value = nn.Linear(hidden, hidden, bias=bias)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)))
        return out.transpose(1, 2).reshape(batch, length, hidden)


class AttentionOutput(nn.Module):
    def __init__(self, hidden: int, bias: bool):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden, bias=bias)


class AttentionBlock(nn.Module):
    def __init__(self, config: dict[str, Any], bias: bool):
        super().__init__()
        self.ln = norm(config)
        self.self = SelfAttention(int(config["hidden_size"]), int(config["num_attention_heads"]), bias)
        self.output = AttentionOutput(int(config["hidden_size"]), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.output.dense(self.self(self.ln(x)))


class SwiGLU(nn.Module):
    def __init__(self, hidden: int, intermediate: int, bias: bool):
        super().__init__()
        self.up_proj = nn.Linear(hidden, intermediate, bias=bias)
        self.gate_proj = nn.Linear(hidden, intermediate, bias=bias)
        self.down_proj = nn.Linear(intermediate, hidden, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, config: dict[str, Any], bias: bool):
        super().__init__()
        self.attention = AttentionBlock(config, bias)
        self.ln = norm(config)
        self.mlp = SwiGLU(int(config["hidden_size"]), int(config["intermediate_size"]), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention(x)
        return x + self.mlp(self.ln(x))


class Encoder(nn.Module):
    def __init__(self, config: dict[str, Any], bias: bool):
        super().__init__()
        self.layer = nn.ModuleList(Layer(config, bias) for _ in range(int(config["num_hidden_layers"])))
        self.ln = norm(config)


class CellFoundation(nn.Module):
    """Preprocessed values ``(cells, 19,266)`` → last hidden states ``(cells, 19,266, hidden_size)``."""

    def __init__(self, config: dict[str, Any], positions: int):
        super().__init__()
        hidden, bias = int(config["hidden_size"]), bool(config["add_linear_bias"])
        self.gene_embedding = ValueEmbedding(hidden, int(config["bin_num"]), float(config["bin_alpha"]))
        self.position_embedding = nn.Embedding(positions, hidden)
        self.encoder = Encoder(config, bias)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        x = self.gene_embedding(values) + self.position_embedding.weight[: values.shape[1]]
        for layer in self.encoder.layer:
            x = layer(x)
        return self.encoder.ln(x)


def build_model(config: dict[str, Any], weights: list[Path], positions: int) -> CellFoundation:
    """The model with the checkpoint's weights (bare or ``bert.``-prefixed names; extra head tensors ignored);
    ``config`` is :func:`model_config`'s."""
    from safetensors.torch import load_file

    model = CellFoundation(config, positions)
    wanted = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for file in weights:
        for name, tensor in load_file(str(file)).items():
            bare = name.removeprefix("bert.")
            if bare in wanted:
                state[bare] = tensor.float()
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise InputError(
            f"{weights[0]} lacks {len(missing)} CellFoundationModel tensor(s) the control_cells mode needs "
            f"(e.g. {', '.join(missing[:3])}); point checkpoint at a full AIDO.Cell checkpoint"
        )
    wrong = [name for name, tensor in state.items() if tuple(tensor.shape) != tuple(wanted[name].shape)]
    if wrong:
        name = wrong[0]
        raise InputError(
            f"'{name}' in {weights[0].parent} has shape {tuple(state[name].shape)} but config.json implies "
            f"{tuple(wanted[name].shape)}; the config and weights come from different checkpoints, download both again"
        )
    model.load_state_dict(state)
    return model.eval()
