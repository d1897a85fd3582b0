"""Loading a BERT/RoBERTa-family SMILES checkpoint and turning token ids into pooled vectors.

torch and transformers are imported here only, and this module is imported only when a batch is
embedded. Sequences are sorted by length and padded per forward batch, so little compute is spent
on padding; the attention mask keeps padded positions out of every real token's result.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embhub.errors import PluginError

from .smiles_tokenizer import Encoding, RegexSmilesTokenizer

ARCHITECTURES = ("auto", "bert", "roberta")
POSITION_OFFSET = {"roberta": 2, "camembert": 2, "xlm-roberta": 2}
"""RoBERTa-style models number positions from ``pad_token_id + 1``, so two position slots are unusable."""


@contextmanager
def _quiet_transformers():
    """Hide transformers' load report and progress bars; missing weights are checked by the caller."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)
        if bars:
            hf_logging.enable_progress_bar()


def load_model(directory: Path, architecture: str, device: Any, dtype: Any, name: str) -> Any:
    """The encoder without its task head, in eval mode on ``device``; refuses checkpoints missing weights."""
    import transformers

    model_type = json.loads((directory / "config.json").read_text()).get("model_type")
    if architecture == "auto" and not model_type:
        raise PluginError(
            f"checkpoint '{name}' has no model_type in its config.json; set the parameter architecture: bert or roberta"
        )
    classes = {"bert": transformers.BertModel, "roberta": transformers.RobertaModel}
    model_class = transformers.AutoModel if architecture == "auto" else classes[architecture]
    extra = {} if architecture == "auto" else {"add_pooling_layer": False}
    with _quiet_transformers():
        model, info = model_class.from_pretrained(directory, dtype=dtype, output_loading_info=True, **extra)
    missing = [key for key in info.get("missing_keys", []) if "pooler" not in key]
    if missing:
        raise PluginError(
            f"checkpoint '{name}' lacks {len(missing)} encoder weights (e.g. '{sorted(missing)[0]}'); "
            "it is not a BERT/RoBERTa encoder of the chosen architecture"
        )
    return model.to(device).eval()


def token_limit(model: Any, tokenizer: Any) -> int:
    """The longest sequence (special tokens included) the model's position table allows."""
    config = model.config
    limit = config.max_position_embeddings - POSITION_OFFSET.get(config.model_type, 0)
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < limit:
        limit = declared
    return limit


class CheckpointTokenizer:
    """The checkpoint's own Hugging Face tokenizer behind the same ``encode`` as the regex tokenizer."""

    def __init__(self, directory: Path):
        from transformers import AutoTokenizer

        with _quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(directory)
        if self.tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer defines no padding token")
        self.pad_id = self.tokenizer.pad_token_id
        self.unk_id = self.tokenizer.unk_token_id
        self.model_max_length = self.tokenizer.model_max_length

    def encode(self, smiles: str) -> Encoding:
        encoded = self.tokenizer(smiles, add_special_tokens=True, return_special_tokens_mask=True)
        ids = list(encoded["input_ids"])
        unknown = sum(1 for i in ids if self.unk_id is not None and i == self.unk_id)
        return Encoding(ids, [bool(s) for s in encoded["special_tokens_mask"]], unknown)


def load_tokenizer(directory: Path, kind: str, vocab_file: str | None, name: str) -> CheckpointTokenizer | RegexSmilesTokenizer:
    """``checkpoint``: the checkpoint's own tokenizer; ``smiles-regex``: regex split + ``vocab.txt``;
    ``auto``: the checkpoint's own when it ships tokenizer files, else the regex tokenizer."""
    if kind == "auto":
        ships_tokenizer = any((directory / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json"))
        kind = "checkpoint" if ships_tokenizer else "smiles-regex"
    if kind == "checkpoint":
        try:
            return CheckpointTokenizer(directory)
        except (ValueError, OSError) as exc:
            reason = str(exc).splitlines()[0]
            raise PluginError(
                f"checkpoint '{name}' has no usable tokenizer ({reason}); set tokenizer: smiles-regex to use its vocab.txt"
            ) from None
    vocab = Path(vocab_file).expanduser() if vocab_file else directory / "vocab.txt"
    if not vocab.is_file():
        raise PluginError(f"the SMILES regex tokenizer needs a vocabulary file, and {vocab} does not exist; set vocab_file")
    try:
        return RegexSmilesTokenizer(vocab)
    except ValueError as exc:
        raise PluginError(f"{exc}; give a BERT-style vocab.txt with vocab_file") from None


@dataclass
class PoolingChoice:
    pooling: str
    layer: int


def encode_batches(
    model: Any,
    encodings: Sequence[Encoding],
    pad_id: int,
    choice: PoolingChoice,
    device: Any,
    forward_batch_size: int,
) -> np.ndarray:
    """Pooled vectors ``(n, hidden_size)`` (float32) for token-id sequences, in the given order.

    ``cls`` takes the first position; ``mean`` averages the positions that are neither special tokens
    nor padding. ``layer`` indexes ``hidden_states`` (0 = embedding output, -1 = last layer).
    """
    import torch

    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].input_ids))
    out = np.zeros((len(encodings), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), forward_batch_size):
            chunk = order[start : start + forward_batch_size]
            width = max(len(encodings[i].input_ids) for i in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            content = torch.zeros((len(chunk), width), dtype=torch.bool)
            for row, index in enumerate(chunk):
                encoding = encodings[index]
                length = len(encoding.input_ids)
                ids[row, :length] = torch.tensor(encoding.input_ids)
                attention[row, :length] = 1
                content[row, :length] = ~torch.tensor(encoding.special)
            states = _hidden_states(model, ids.to(device), attention.to(device), choice.layer).float()
            if choice.pooling == "cls":
                pooled = states[:, 0, :]
            else:
                weights = content.to(device).unsqueeze(-1).float()
                pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            out[chunk] = pooled.cpu().numpy()
    return out


def _hidden_states(model: Any, ids: Any, attention: Any, layer: int) -> Any:
    if layer == -1:
        return model(input_ids=ids, attention_mask=attention).last_hidden_state
    outputs = model(input_ids=ids, attention_mask=attention, output_hidden_states=True)
    return outputs.hidden_states[layer]
