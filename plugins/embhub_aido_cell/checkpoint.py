"""An AIDO.Cell checkpoint as genbio-ai publishes it on the Hugging Face hub, and its positional table.

A checkpoint directory holds ``config.json`` (``CellFoundationConfig``: ``hidden_size``,
``num_hidden_layers``, ``max_position_embeddings``…) and the weights of ``CellFoundationModel`` in
``model.safetensors`` (or shards listed in ``model.safetensors.index.json``), as written by
``save_pretrained`` — the files ``CellFoundationModel.from_pretrained("genbio-ai/AIDO.Cell-3M")`` reads in
GenBio's ModelGenerator.

Why the positional table is the gene embedding: ``CellFoundationModel`` has no gene vocabulary. A cell is
its expression vector over a fixed 19,264-gene index followed by two read-depth values, and each value is
embedded from its magnitude alone (``gene_embedding``, an auto-discretising bin mixture). Which gene a token
is comes only from its position: ``position_embedding`` (an ``nn.Embedding`` of
``max_position_embeddings + 2`` rows) is added at position *i* to the token of index gene *i*. Row *i* of
``position_embedding.weight`` is therefore the model's learned, context-free embedding of index gene *i*;
rows 19,264 and 19,265 belong to the two read-depth tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embhub.errors import InputError
from embhub_aido_cell.safetensors_reader import read_tensor, tensor_names

POSITION_TABLE = "position_embedding.weight"
"""The parameter name in ``CellFoundationModel``'s state dict (``bert.``-prefixed when saved from a head model)."""
READ_DEPTH_POSITIONS = 2
"""Positions after the genes: log10 total counts of the raw and of the input profile (ModelGenerator's forward)."""
HUB_FILES = ("config.json", "*.safetensors", "model.safetensors.index.json")
FIX = "download the checkpoint again (config.json and model.safetensors, e.g. from genbio-ai/AIDO.Cell-100M)"


@dataclass(frozen=True)
class PositionalTable:
    """Rows ``0 … n_genes - 1`` embed the index genes; ``vectors`` is ``(n_genes, hidden_size)`` float32."""

    vectors: np.ndarray
    tensor: str
    file: Path
    stored_dtype: str


class AidoCellCheckpoint:
    """A local AIDO.Cell checkpoint directory: its config and where each tensor lives."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.config = self._read_config()

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])

    def files(self) -> list[Path]:
        """Every file of the directory (hashed into the store's manifest)."""
        return sorted(f for f in self.directory.iterdir() if f.is_file() and not f.name.startswith("."))

    def weight_files(self) -> list[Path]:
        """``model.safetensors``, or the shards ``model.safetensors.index.json`` lists (each checked to exist)."""
        name, file = self._locate(POSITION_TABLE)
        index = self.directory / "model.safetensors.index.json"
        if file.name == "model.safetensors" or not index.is_file():
            return [file]
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        for shard in shards:
            if not (self.directory / shard).is_file():
                raise InputError(f"{self.directory / shard} (listed in {index.name}) does not exist; {FIX}")
        return [self.directory / shard for shard in shards]

    def positional_table(self, n_genes: int) -> PositionalTable:
        """The gene rows of ``position_embedding.weight``, checked against the gene index and the config."""
        name, file = self._locate(POSITION_TABLE)
        stored_dtype = tensor_names(file)[name].get("dtype", "?")
        table = read_tensor(file, name)
        expected_rows = n_genes + READ_DEPTH_POSITIONS
        if table.ndim != 2 or table.shape[0] != expected_rows:
            raise InputError(
                f"'{name}' in {file} has shape {tuple(table.shape)}, but AIDO.Cell's gene index has {n_genes:,} genes "
                f"and 2 read-depth positions ({expected_rows:,} rows); use a checkpoint trained on that index"
            )
        if table.shape[1] != self.hidden_size:
            raise InputError(
                f"'{name}' in {file} is {table.shape[1]} wide but {self.directory / 'config.json'} says hidden_size "
                f"{self.hidden_size}; the files come from different checkpoints, {FIX}"
            )
        return PositionalTable(np.ascontiguousarray(table[:n_genes]), name, file, stored_dtype)

    def describe(self) -> dict[str, Any]:
        keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings")
        return {f"config_{key}": self.config[key] for key in keys if key in self.config}

    def _read_config(self) -> dict[str, Any]:
        path = self.directory / "config.json"
        if not path.is_file():
            raise InputError(f"{path} does not exist; an AIDO.Cell checkpoint directory needs config.json, {FIX}")
        try:
            config = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path} is not valid JSON ({exc}); {FIX}") from exc
        if not isinstance(config, dict) or not isinstance(config.get("hidden_size"), int):
            raise InputError(f"{path} has no integer hidden_size; is it an AIDO.Cell (CellFoundation) config? {FIX}")
        return config

    def _locate(self, tensor: str) -> tuple[str, Path]:
        """``(stored name, file)`` of ``tensor``, bare or ``bert.``-prefixed, in single or sharded safetensors."""
        candidates = (tensor, f"bert.{tensor}")
        single = self.directory / "model.safetensors"
        index = self.directory / "model.safetensors.index.json"
        if single.is_file():
            stored = tensor_names(single)
            for name in candidates:
                if name in stored:
                    return name, single
            raise InputError(
                f"{single} has no '{tensor}' tensor ({len(stored)} tensors, e.g. {', '.join(sorted(stored)[:3])}); "
                "it is not an AIDO.Cell (CellFoundationModel) checkpoint, point checkpoint at one"
            )
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputError(f"{index} is not a safetensors index (no weight_map); {FIX}") from exc
            for name in candidates:
                if name in weight_map:
                    shard = self.directory / weight_map[name]
                    if not shard.is_file():
                        raise InputError(f"{shard} (listed in {index.name}) does not exist; {FIX}")
                    return name, shard
            raise InputError(f"{index} lists no '{tensor}' tensor; it is not an AIDO.Cell checkpoint, point checkpoint at one")
        raise InputError(f"{single} does not exist; an AIDO.Cell checkpoint directory needs its safetensors weights, {FIX}")


def checkpoint_directory(checkpoint: str, revision: str | None) -> Path:
    """``checkpoint`` as a local directory: the path itself, or the hub snapshot (downloaded once, then cached)."""
    local = Path(checkpoint).expanduser()
    if local.is_dir():
        return local
    if local.is_absolute() or checkpoint.startswith((".", "~")) or checkpoint.count("/") != 1:
        raise InputError(f"checkpoint '{checkpoint}' is not a directory here nor a Hub name (owner/name); fix the path")
    return hub_snapshot(checkpoint, revision)


def hub_snapshot(name: str, revision: str | None) -> Path:
    """Download (or reuse from the Hugging Face cache) the config and weights of a hub checkpoint."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, revision=revision, allow_patterns=list(HUB_FILES)))
    except Exception as exc:  # hub errors come in many types: offline, unknown repo, bad revision, no package
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"checkpoint '{name}' is neither a local directory nor reachable on the Hugging Face hub ({first_line}); "
            "download its config.json and model.safetensors into a directory and pass that directory"
        ) from exc
