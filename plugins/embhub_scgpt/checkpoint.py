"""Reading a released scGPT checkpoint folder: ``args.json``, ``vocab.json`` and ``best_model.pt``.

The folder is what the scGPT authors publish (e.g. ``scGPT_human``, the whole-human model: 512-d, 12 layers)
and what scGPT's own training writes: ``args.json`` holds the model configuration (``embsize``, ``nheads``,
``d_hid``, ``nlayers``, ``pad_token``, ``input_emb_style``, ``n_bins``…), ``vocab.json`` maps each gene symbol
and special token (``<pad>``, ``<cls>``, ``<eoc>``) to its token index, and ``best_model.pt`` is the
``torch.save``-d state dict of scGPT's ``TransformerModel``.

In that state dict the gene encoder is ``encoder.embedding.weight`` (one row per vocabulary token, shape
``(len(vocab), embsize)``) followed by the LayerNorm ``encoder.enc_norm.{weight,bias}``. The attention
weights of transformer layer ``i`` are ``transformer_encoder.layers.i.self_attn.Wqkv.{weight,bias}`` in
checkpoints trained with flash-attention and ``…self_attn.in_proj_{weight,bias}`` in the others; both hold
the same ``(3·embsize, embsize)`` query/key/value projection.

Every problem with the folder is one :class:`~embhub.errors.InputError` naming the file and what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embhub.errors import InputError

ARGS_FILE = "args.json"
VOCAB_FILE = "vocab.json"
WEIGHTS_FILE = "best_model.pt"
CHECKPOINT_FILES = (ARGS_FILE, VOCAB_FILE, WEIGHTS_FILE)

GENE_ENCODER_KEYS = ("encoder.embedding.weight", "encoder.enc_norm.weight", "encoder.enc_norm.bias")
ATTENTION_NAMINGS = {"Wqkv": "self_attn.Wqkv.weight", "in_proj": "self_attn.in_proj_weight"}
"""How the fused query/key/value projection is named: flash-attention checkpoints, torch's own attention."""

DOWNLOAD_HINT = "download the scGPT model folder again (args.json, vocab.json, best_model.pt; see docs/providers/scgpt.md)"


@dataclass(frozen=True)
class ScgptFolder:
    """The configuration and vocabulary of one checkpoint folder (the weights are loaded separately)."""

    directory: Path
    args: dict[str, Any]
    vocab: dict[str, int]

    @property
    def embsize(self) -> int:
        return int(self.args["embsize"])

    @property
    def pad_token(self) -> str:
        return str(self.args.get("pad_token", "<pad>"))

    def gene_tokens(self) -> list[str]:
        """Vocabulary entries that are genes: everything but the ``<…>`` special tokens."""
        return [token for token in self.vocab if not (token.startswith("<") and token.endswith(">"))]


def checkpoint_paths(directory: Path) -> list[Path]:
    """The three files of a folder, checked to exist; the first missing one is the error."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise InputError(
            f"scGPT checkpoint folder '{directory}' does not exist; download a pretrained scGPT model folder "
            "and pass it with --set checkpoint=DIR (see docs/providers/scgpt.md)"
        )
    paths = [directory / name for name in CHECKPOINT_FILES]
    for path in paths:
        if not path.is_file():
            raise InputError(f"scGPT checkpoint folder {directory} has no {path.name}; {DOWNLOAD_HINT}")
    return paths


def read_folder(directory: Path) -> ScgptFolder:
    """``args.json`` and ``vocab.json`` of a checkpoint folder, validated."""
    directory = Path(directory).expanduser()
    args_path, vocab_path, _ = checkpoint_paths(directory)
    args = _read_json_object(args_path)
    embsize = args.get("embsize")
    if not isinstance(embsize, int) or isinstance(embsize, bool) or embsize < 1:
        raise InputError(f"{args_path} has no positive integer 'embsize' (the model width); {DOWNLOAD_HINT}")
    vocab = _read_json_object(vocab_path)
    bad = next((t for t, i in vocab.items() if not isinstance(i, int) or isinstance(i, bool) or i < 0), None)
    if bad is not None:
        raise InputError(f"{vocab_path} maps '{bad}' to {vocab[bad]!r}, not a token index ≥ 0; {DOWNLOAD_HINT}")
    if len(set(vocab.values())) != len(vocab):
        raise InputError(f"{vocab_path} gives two tokens the same index; {DOWNLOAD_HINT}")
    folder = ScgptFolder(directory, args, vocab)
    if folder.pad_token not in vocab:
        raise InputError(f"{vocab_path} lacks the pad token '{folder.pad_token}' named in {args_path.name}; {DOWNLOAD_HINT}")
    return folder


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); {DOWNLOAD_HINT}") from exc
    if not isinstance(value, dict) or not value:
        raise InputError(f"{path} holds no JSON object of settings; {DOWNLOAD_HINT}")
    return value


@dataclass(frozen=True)
class ScgptWeights:
    """The tensors a mode needs (on the CPU) and how the checkpoint names its attention weights."""

    tensors: dict[str, Any]
    attention_naming: str | None


def load_weights(folder: ScgptFolder, keys: tuple[str, ...]) -> ScgptWeights:
    """The tensors ``keys`` of ``best_model.pt``, checked against ``args.json`` and ``vocab.json``."""
    state = load_state(folder, keys)
    return ScgptWeights({key: state[key] for key in keys}, attention_naming(state))


def load_state(folder: ScgptFolder, keys: tuple[str, ...] = GENE_ENCODER_KEYS) -> dict[str, Any]:
    """The whole state dict of ``best_model.pt``, checked to hold ``keys`` and a gene embedding matching the folder."""
    import torch

    path = folder.directory / WEIGHTS_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch reports truncated or foreign files as several exception types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path} cannot be read as a torch state dict ({first_line}); {DOWNLOAD_HINT}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path} is not a state dict of tensors (scGPT's TransformerModel); {DOWNLOAD_HINT}")
    missing = [key for key in keys if key not in state]
    if missing:
        raise InputError(
            f"{path} lacks {missing[0]}" + (f" and {len(missing) - 1} more weights" if len(missing) > 1 else "")
            + f", so it is not an scGPT TransformerModel state dict; {DOWNLOAD_HINT}"
        )
    embedding = state["encoder.embedding.weight"]
    expected = (len(folder.vocab), folder.embsize)
    if tuple(embedding.shape) != expected:
        raise InputError(
            f"{path} has a gene embedding of shape {tuple(embedding.shape)}, but {VOCAB_FILE} and {ARGS_FILE} "
            f"describe {expected} (tokens × embsize); the three files come from different models, {DOWNLOAD_HINT}"
        )
    return state


def attention_naming(state: dict[str, Any]) -> str | None:
    """``Wqkv`` (flash-attention training), ``in_proj`` (torch attention), or None when no layer has either."""
    for naming, suffix in ATTENTION_NAMINGS.items():
        if any(key.startswith("transformer_encoder.layers.") and key.endswith(suffix) for key in state):
            return naming
    return None
