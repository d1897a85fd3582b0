"""scGPT gene embeddings from a released scGPT checkpoint folder, as a built-in embhub plugin.

``mode: gene_token`` embeds a gene as scGPT's gene encoder sees its token: the token's embedding row
followed by the encoder's LayerNorm (:mod:`embhub_scgpt.gene_encoder`). The user's gene id is resolved to an
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

MODES = ("gene_token",)


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
    description = "scGPT gene-token embedding (gene encoder: token embedding + LayerNorm) from a checkpoint folder"
    requires = ("torch",)
    input_columns = GENE_INPUT_COLUMNS
    default_batch_size = 4096

    @dataclass
    class Parameters:
        checkpoint: str = field(
            default="", metadata={"help": "scGPT model folder holding args.json, vocab.json and best_model.pt"}
        )
        mode: str = field(default="gene_token", metadata={"help": "gene_token: the gene encoder's vector of each gene token"})
        device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps"})
        precision: str = field(
            default="fp32", metadata={"help": "fp32 (default: a lookup gains nothing from half precision), fp16, bf16, auto"}
        )

        def __post_init__(self):
            if self.mode not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}, got '{self.mode}'")

    def __init__(self, parameters: Any = None):
        super().__init__(parameters)
        self._folder = None
        self._gene_tokens = None
        self._encoder = None

    @property
    def dim(self) -> int | None:
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

    def embed(self, items: Sequence[Item]) -> Embedded:
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
        vocab = self.folder().vocab
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
        """Every gene the checkpoint's vocabulary names, by Ensembl id."""
        return [Item(gene, gene) for gene in sorted(self.gene_tokens().token)]

    def checkpoint_files(self) -> list[Path]:
        from embhub_scgpt.checkpoint import checkpoint_paths

        return checkpoint_paths(self.checkpoint_dir())

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
        }
        if self._encoder is not None:
            facts.update(self._encoder.describe())
        return facts


@hookimpl
def register_providers(register):
    register(ScgptEmbeddings)
