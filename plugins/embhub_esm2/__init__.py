"""ESM-2 protein language model embeddings of genes, as a built-in embhub plugin.

A gene is embedded through its canonical protein: the gene identity layer maps the user's id to an
Ensembl gene, the user's UniProt FASTA gives that gene's canonical sequence (rules in
:mod:`embhub_esm2.sequences`), and ESM-2's last layer is mean-pooled over the residues (windowing and
batching in :mod:`embhub_esm2.encoder`). torch and transformers are imported only when embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from embhub.errors import InputError
from embhub.hookspecs import hookimpl
from embhub.identity.genes import GENE_INPUT_COLUMNS
from embhub.provider import Embedded, Failure, Item, Provider

from embhub_esm2.encoder import ESM2_TRAINING_WINDOW

CHECKPOINT_FILES = ("config.json", "*.safetensors", "pytorch_model.bin", "vocab.txt", "*.json")


class Esm2Embeddings(Provider):
    name = "esm2"
    entity = "gene"
    id_namespace = "gene"
    key_namespace = "ensembl_gene_id"
    version = "1"
    licence = "MIT (ESM-2 weights and code, Meta AI); sequences: UniProt, CC BY 4.0"
    citation = (
        "Lin et al. (2023) Evolutionary-scale prediction of atomic-level protein structure with a language "
        "model, Science 379:1123; The UniProt Consortium (2023) Nucleic Acids Res. 51:D523"
    )
    description = "ESM-2 mean-pooled embedding of each gene's canonical protein (UniProt FASTA)"
    requires = ("torch", "transformers")
    input_columns = (*GENE_INPUT_COLUMNS, "uniprot", "uniprot_id")
    default_batch_size = 256

    @dataclass
    class Parameters:
        checkpoint: str = field(
            default="facebook/esm2_t33_650M_UR50D",
            metadata={"help": "local directory saved with save_pretrained, or a Hugging Face hub name"},
        )
        revision: str | None = field(default=None, metadata={"help": "hub revision (commit) to pin"})
        fasta: str = field(
            default="", metadata={"help": "UniProt protein FASTA (e.g. UP000005640_9606.fasta); gene → sequence"}
        )
        window: int = field(
            default=ESM2_TRAINING_WINDOW, metadata={"help": "residues per window; longer proteins are split, windows averaged"}
        )
        max_tokens: int = field(default=16384, metadata={"help": "padded tokens per forward pass (batch budget)"})
        device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps"})
        precision: str = field(default="auto", metadata={"help": "auto (bf16/fp16 on GPU, fp32 on CPU), fp32, fp16, bf16"})

        def __post_init__(self):
            if self.window < 1:
                raise ValueError(f"window must be ≥ 1 residue, got {self.window}")
            if self.max_tokens < 3:
                raise ValueError(f"max_tokens must be ≥ 3, got {self.max_tokens}")

    def __init__(self, parameters: Any = None):
        super().__init__(parameters)
        self._encoder = None
        self._sequences = None
        self._checkpoint_dir: Path | None = None

    @property
    def dim(self) -> int | None:
        return self._encoder.dim if self._encoder is not None else None

    def gene_sequences(self):
        """Ensembl id → :class:`~embhub_esm2.sequences.GeneSequence`, read from the FASTA once."""
        if self._sequences is None:
            from embhub.identity.genes import load_gene_identity
            from embhub_esm2.sequences import canonical_sequences, read_fasta

            if not self.parameters.fasta:
                raise InputError(f"model '{self.name}' needs a protein FASTA: set the parameter fasta: PATH (UniProt)")
            self._sequences = canonical_sequences(read_fasta(Path(self.parameters.fasta)), load_gene_identity())
        return self._sequences

    def encoder(self):
        if self._encoder is None:
            from embhub_esm2.encoder import EsmEncoder

            p = self.parameters
            self._encoder = EsmEncoder(self.checkpoint_dir(), device=p.device, precision=p.precision)
        return self._encoder

    def checkpoint_dir(self) -> Path:
        """The checkpoint as a local directory: the path itself, or the hub snapshot (downloaded once)."""
        if self._checkpoint_dir is None:
            checkpoint = self.parameters.checkpoint
            local = Path(checkpoint).expanduser()
            if not local.is_dir() and (local.is_absolute() or checkpoint.startswith((".", "~")) or checkpoint.count("/") != 1):
                raise InputError(f"checkpoint '{checkpoint}' is not a directory here nor a Hub name (owner/name); fix the path")
            self._checkpoint_dir = local if local.is_dir() else _hub_snapshot(checkpoint, self.parameters.revision)
        return self._checkpoint_dir

    def embed(self, items: Sequence[Item]) -> Embedded:
        from embhub.identity.genes import load_gene_identity, resolve_items

        ident = load_gene_identity()
        resolved, failures = resolve_items(items, ident)
        sequences = self.gene_sequences()
        found = []
        for item, resolution in resolved:
            gene = sequences.get(resolution.ensembl_id)
            if gene is None:
                failures.append(Failure(
                    item.input_id,
                    f"no protein sequence for gene '{item.value}' ({resolution.ensembl_id} {resolution.symbol}) in "
                    f"{self.parameters.fasta}; add its UniProt entry or drop the gene",
                ))
            else:
                found.append((item, resolution, gene))
        p = self.parameters
        vectors = self.encoder().embed([g.sequence for _, _, g in found], window=p.window, max_tokens=p.max_tokens)
        return Embedded(
            input_ids=[item.input_id for item, _, _ in found],
            keys=[r.ensembl_id for _, r, _ in found],
            vectors=vectors,
            failures=failures,
            labels={"symbol": [r.symbol for _, r, _ in found], "uniprot": [g.accession for _, _, g in found]},
        )

    def default_items(self) -> list[Item]:
        """Every gene with a canonical protein in the FASTA, by Ensembl id."""
        return [Item(gene, gene) for gene in sorted(self.gene_sequences())]

    def checkpoint_files(self) -> list[Path]:
        """Reads the FASTA and loads the model first, so a bad one fails before a store is created."""
        files = [Path(self.parameters.fasta)] if self.parameters.fasta else []
        if not all(f.is_file() for f in files):
            return files  # the missing FASTA is reported before a hub checkpoint (2.5 GB for 650M) is downloaded
        self.gene_sequences()
        self.encoder()
        directory = self.checkpoint_dir()
        weights = sorted(f for f in directory.iterdir() if f.is_file() and not f.name.startswith("."))
        return files + weights

    def provenance(self) -> dict[str, Any]:
        from embhub.identity.genes import load_gene_identity

        facts = {
            "gene_id_release": load_gene_identity().release,
            "protein_fasta": self.parameters.fasta,
            "genes_with_sequence": len(self.gene_sequences()),
            "pooling": "mean of the last hidden layer over residues; <cls>, <eos> and padding excluded",
            "long_proteins": f"split into ceil(L/{self.parameters.window}) windows (lengths differ by ≤ 1); residue-weighted mean",
        }
        if self._encoder is not None:
            facts.update(self._encoder.describe())
        return facts


def _hub_snapshot(name: str, revision: str | None) -> Path:
    """Download (or reuse from the Hugging Face cache) the files of a hub checkpoint."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, revision=revision, allow_patterns=list(CHECKPOINT_FILES)))
    except Exception as exc:  # hub errors come in many types: offline, unknown repo, bad revision
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"checkpoint '{name}' is neither a local directory nor reachable on the Hugging Face hub ({first_line}); "
            "download it with save_pretrained and pass its directory"
        ) from exc


@hookimpl
def register_providers(register):
    register(Esm2Embeddings)
