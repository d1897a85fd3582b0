"""scGPT gene embeddings from a released scGPT checkpoint folder, as a built-in embhub plugin.

``mode: gene_token`` embeds a gene as scGPT's gene encoder sees its token: the token's embedding row
followed by the encoder's LayerNorm (:mod:`embhub_scgpt.gene_encoder`). ``mode: control_cells`` runs the
transformer over the control cells of a raw-count ``.h5ad`` file and averages each gene's output over the cells
it is expressed in (:mod:`embhub_scgpt.control_mode`), as the study's ``scGPT_…_controls`` embeddings. The user's gene id is resolved to an
Ensembl gene by the identity layer, and the gene to its vocabulary token by the rules in
:mod:`embhub_scgpt.vocabulary`. The folder's files are read and checked by :mod:`embhub_scgpt.checkpoint`.
torch is imported only when embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from embhub.errors import InputError
from embhub.hookspecs import hookimpl
from embhub.identity.genes import GENE_INPUT_COLUMNS
from embhub.provider import Embedded, Failure, Item, Provider

MODES = ("gene_token", "control_cells")


class ScgptEmbeddings(Provider):
    name = "scgpt"
    entity = "gene"
    id_namespace = "gene"
    key_namespace = "ensembl_gene_id"
    version = "1"
    licence = "MIT (scGPT code and released weights, Bo Wang lab)"
    citation = (
        "Cui et al. (2024) scGPT: toward building a foundation model for single-cell multi-omics using "
        "generative AI, Nature Methods 21:1470"
    )
    description = (
        "scGPT gene embedding from a checkpoint folder: gene-token vector, or transformer output averaged over control cells"
    )
    requires = ("torch",)
    input_columns = GENE_INPUT_COLUMNS
    default_batch_size = 4096

    @dataclass
    class Parameters:
        checkpoint: str = field(
            default="", metadata={"help": "scGPT model folder holding args.json, vocab.json and best_model.pt"}
        )
        mode: str = field(
            default="gene_token",
            metadata={
                "help": "gene_token: the gene encoder's vector of each gene token; control_cells: each gene's "
                "transformer output averaged over the control cells of `cells`"
            },
        )
        cells: str = field(default="", metadata={"help": "control_cells: raw-count .h5ad holding the control cells"})
        control_column: str = field(
            default="gene", metadata={"help": "control_cells: obs column marking control cells ('' = every cell)"}
        )
        control_value: str = field(default="non-targeting", metadata={"help": "control_cells: its value for controls"})
        max_cells: int = field(default=0, metadata={"help": "control_cells: seeded sample of at most this many cells (0 = all)"})
        max_length: int = field(
            default=0, metadata={"help": "control_cells: tokens per cell incl. <cls> (0 = args.json max_seq_len)"}
        )
        seed: int = field(default=0, metadata={"help": "control_cells: seed of the cell sample, bin ties and gene sample"})
        tokens_per_batch: int = field(
            default=32768, metadata={"help": "control_cells: padded tokens per forward pass (memory, not results)"}
        )
        device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps"})
        precision: str = field(
            default="fp32", metadata={"help": "fp32 (default: a lookup gains nothing from half precision), fp16, bf16, auto"}
        )

        def __post_init__(self):
            if self.mode not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}, got '{self.mode}'")
            if self.max_cells < 0:
                raise ValueError(f"max_cells must be 0 (every cell) or positive, got {self.max_cells}")
            if self.max_length != 0 and self.max_length < 2:
                raise ValueError(f"max_length must be 0 (args.json's max_seq_len) or at least 2, got {self.max_length}")
            if self.tokens_per_batch < 1:
                raise ValueError(f"tokens_per_batch must be positive, got {self.tokens_per_batch}")

    def __init__(self, parameters: Any = None):
        super().__init__(parameters)
        self._folder = None
        self._gene_tokens = None
        self._encoder = None
        self._control = None

    @property
    def dim(self) -> int | None:
        if self._control is not None and self._control._means is not None:
            return int(self._control._means.vectors.shape[1])
        return self._encoder.dim if self._encoder is not None else None

    def folder(self):
        """The checkpoint's ``args.json`` and ``vocab.json``, read once."""
        if self._folder is None:
            from embhub_scgpt.checkpoint import read_folder

            self._folder = read_folder(self.checkpoint_dir())
        return self._folder

    def checkpoint_dir(self) -> Path:
        if not self.parameters.checkpoint:
            raise InputError(
                f"model '{self.name}' needs an scGPT checkpoint folder: set checkpoint (--set checkpoint=DIR); "
                "see docs/providers/scgpt.md"
            )
        return Path(self.parameters.checkpoint).expanduser()

    def gene_tokens(self):
        """:class:`~embhub_scgpt.vocabulary.GeneTokens` of the checkpoint's vocabulary, matched once."""
        if self._gene_tokens is None:
            from embhub.identity.genes import load_gene_identity
            from embhub_scgpt.vocabulary import match_gene_tokens

            self._gene_tokens = match_gene_tokens(self.folder().gene_tokens(), load_gene_identity())
        return self._gene_tokens

    def encoder(self):
        if self._encoder is None:
            from embhub_scgpt.gene_encoder import GeneTokenEncoder

            p = self.parameters
            self._encoder = GeneTokenEncoder(self.folder(), device=p.device, precision=p.precision)
        return self._encoder

    def control(self):
        """:class:`~embhub_scgpt.control_mode.ControlCellVectors` of the ``cells`` file, read once."""
        if self._control is None:
            from embhub_scgpt.control_mode import ControlCellVectors

            self.cells_path()
            vocab = self.folder().vocab
            token_of_gene = {gene: vocab[token] for gene, token in self.gene_tokens().token.items()}
            self._control = ControlCellVectors(self.folder(), token_of_gene, self.parameters)
        return self._control

    def cells_path(self) -> Path:
        from embhub_scgpt.control_cells import SCGPT_CELLS

        return SCGPT_CELLS.cells_file(self.parameters.cells, self.name)

    def embed(self, items: Sequence[Item]) -> Embedded:
        if self.parameters.mode == "control_cells":
            return self._embed_in_cells(items)
        return self._embed_tokens(items)

    def _tokens_of(self, items: Sequence[Item]) -> tuple[list[tuple[Item, Any, str]], list[Failure]]:
        """Each item's gene resolution and vocabulary token; items without one are failures saying why."""
        from embhub.identity.genes import load_gene_identity, resolve_items

        resolved, failures = resolve_items(items, load_gene_identity())
        genes = self.gene_tokens()
        found = []
        for item, resolution in resolved:
            token = genes.token.get(resolution.ensembl_id)
            if token is None:
                failures.append(Failure(item.input_id, self._why_no_token(item, resolution)))
            else:
                found.append((item, resolution, token))
        return found, failures

    def _embed_in_cells(self, items: Sequence[Item]) -> Embedded:
        tokens, failures = self._tokens_of(items)
        vocab, control = self.folder().vocab, self.control()
        means = control.means()
        found = []
        for item, resolution, token in tokens:
            if vocab[token] not in means.row:
                gene = f"gene '{item.value}' ({resolution.ensembl_id} {resolution.symbol})"
                failures.append(Failure(item.input_id, f"{gene} {control.why_absent(vocab[token])}"))
            else:
                found.append((item, resolution, token, means.row[vocab[token]]))
        rows = [row for *_, row in found]
        return Embedded(
            input_ids=[item.input_id for item, *_ in found],
            keys=[r.ensembl_id for _, r, *_ in found],
            vectors=means.vectors[rows].reshape(len(rows), means.vectors.shape[1]),
            failures=failures,
            labels={
                "symbol": [r.symbol for _, r, *_ in found],
                "vocab_token": [token for _, _, token, _ in found],
                "cells": [str(int(means.cells[row])) for row in rows],
            },
        )

    def _embed_tokens(self, items: Sequence[Item]) -> Embedded:
        found, failures = self._tokens_of(items)
        genes, vocab = self.gene_tokens(), self.folder().vocab
        vectors = self.encoder().embed([vocab[token] for _, _, token in found])
        kinds = [genes.matched_by[r.ensembl_id] for _, r, _ in found]
        return Embedded(
            input_ids=[item.input_id for item, _, _ in found],
            keys=[r.ensembl_id for _, r, _ in found],
            vectors=vectors,
            failures=failures,
            labels={"symbol": [r.symbol for _, r, _ in found], "vocab_token": [token for _, _, token in found]},
            counts={
                "vocab_token_is_previous_symbol": kinds.count("previous_symbol"),
                "vocab_token_is_alias": kinds.count("alias"),
            },
        )

    def _why_no_token(self, item: Item, resolution) -> str:
        genes = self.gene_tokens()
        gene = f"gene '{item.value}' ({resolution.ensembl_id} {resolution.symbol})"
        vocab = self.checkpoint_dir() / "vocab.json"
        if resolution.ensembl_id in genes.conflicts:
            tokens = ", ".join(genes.conflicts[resolution.ensembl_id])
            return f"{gene} has several equally good tokens in {vocab} ({tokens}); none is chosen, drop the gene"
        if resolution.ensembl_id in genes.shared:
            tokens = ", ".join(genes.shared[resolution.ensembl_id])
            return f"{gene} is named in {vocab} only by {tokens}, which also name other genes; drop the gene"
        return f"{gene} is not in the scGPT vocabulary {vocab} (by symbol, previous symbol or alias); drop the gene"

    def default_items(self) -> list[Item]:
        """Every gene the checkpoint's vocabulary names (control_cells: that some cell's sequence holds), by Ensembl id."""
        genes = sorted(self.gene_tokens().token)
        if self.parameters.mode == "control_cells":
            vocab, seen = self.folder().vocab, self.control().seen_tokens()
            genes = [gene for gene in genes if vocab[self.gene_tokens().token[gene]] in seen]
        return [Item(gene, gene) for gene in genes]

    def checkpoint_files(self) -> list[Path]:
        from embhub_scgpt.checkpoint import checkpoint_paths

        files = checkpoint_paths(self.checkpoint_dir())
        if self.parameters.mode == "control_cells":
            files.append(self.cells_path())
        return files

    def provenance(self) -> dict[str, Any]:
        from embhub.identity.genes import load_gene_identity

        folder, genes = self.folder(), self.gene_tokens()
        facts = {
            "mode": self.parameters.mode,
            "gene_id_release": load_gene_identity().release,
            "vector": "scGPT gene encoder: LayerNorm(encoder.embedding.weight[token]) with encoder.enc_norm, eps 1e-5",
            "vocab_tokens": len(folder.vocab),
            "vocab_genes_matched": len(genes.token),
            "vocab_match_rule": "approved symbol, else the one previous-symbol token, else the one alias token",
            "embsize": folder.embsize,
            "layers": folder.args.get("nlayers"),
        }
        if self.parameters.mode == "control_cells":
            from embhub.checksums import sha256_file

            facts.update(self.control().facts())
            facts["cells_sha256"] = sha256_file(self.control().cells.path)
        if self._encoder is not None:
            facts.update(self._encoder.describe())
        return facts


@hookimpl
def register_providers(register):
    register(ScgptEmbeddings)
