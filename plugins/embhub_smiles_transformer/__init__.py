"""SMILES transformers (ChemBERTa and other BERT/RoBERTa-family checkpoints) as a built-in embhub plugin.

Each SMILES is canonicalised with rdkit first, so every spelling of a molecule gets the same
vector and the store is keyed by InChIKey. The checkpoint is a local directory, a directory inside
an installed package (``python-package:rxnfp/models/transformers/bert_pretrained``) or a Hub name;
see :mod:`.checkpoint`. torch and transformers load only when the first batch is embedded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from embhub.hookspecs import hookimpl
from embhub.provider import Embedded, Failure, Item, Provider, missing_module

CANONICALISATION = "rdkit MolToSmiles (isomeric, canonical) before tokenising; key = rdkit MolToInchiKey"


class SmilesTransformer(Provider):
    name = "smiles-transformer"
    entity = "drug"
    id_namespace = "smiles"
    key_namespace = "inchikey"
    version = "1"
    licence = "Apache-2.0 (code); weights: see the checkpoint's licence"
    citation = (
        "Chithrananda, Grand & Ramsundar (2020) ChemBERTa, arXiv:2010.09885; Ahmad et al. (2022) ChemBERTa-2, "
        "arXiv:2209.01712; Schwaller et al. (2021) rxnfp, Nat. Mach. Intell. 3:144"
    )
    description = "pooled hidden states of a BERT/RoBERTa-family SMILES transformer (ChemBERTa, rxnfp BERT…)"
    requires = ("torch", "transformers", "rdkit")
    input_columns = ("smiles", "canonical_smiles", "isomeric_smiles")
    default_batch_size = 256

    @dataclass
    class Parameters:
        checkpoint: str = field(
            default="seyonec/ChemBERTa-zinc-base-v1",
            metadata={"help": "local directory, python-package:PKG/dir, or Hugging Face Hub name"},
        )
        revision: str | None = field(default=None, metadata={"help": "Hub revision (commit, tag or branch)"})
        architecture: Literal["auto", "bert", "roberta"] = field(
            default="auto", metadata={"help": "model class; bert/roberta for configs without model_type"}
        )
        tokenizer: Literal["auto", "checkpoint", "smiles-regex"] = field(
            default="auto",
            metadata={"help": "the checkpoint's own tokenizer, or a regex SMILES split + vocab.txt (auto: own if shipped)"},
        )
        vocab_file: str | None = field(
            default=None, metadata={"help": "vocab.txt for the smiles-regex tokenizer (default: the checkpoint's)"}
        )
        pooling: Literal["cls", "mean"] = field(
            default="mean", metadata={"help": "first token, or mean over non-special tokens"}
        )
        layer: int = field(default=-1, metadata={"help": "hidden state to pool: 0 = embeddings, -1 = last layer"})
        forward_batch_size: int = field(default=64, metadata={"help": "molecules per forward pass"})
        device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps"})
        precision: Literal["auto", "fp32", "fp16", "bf16"] = field(
            default="auto", metadata={"help": "auto: bf16/fp16 on GPU, fp32 on CPU"}
        )
        workers: int = field(
            default=0, metadata={"help": "processes for rdkit canonicalisation/InChIKeys (0: none); keeps a GPU fed"}
        )

        def __post_init__(self):
            if self.forward_batch_size < 1:
                raise ValueError(f"forward_batch_size must be ≥ 1, got {self.forward_batch_size}")
            if self.workers < 0:
                raise ValueError(f"workers must be ≥ 0, got {self.workers}")

    def __init__(self, parameters: Any = None):
        super().__init__(parameters)
        self._loaded: dict[str, Any] | None = None
        self._directory: Path | None = None
        self._pool = None

    @property
    def dim(self) -> int | None:
        return None if self._loaded is None else int(self._loaded["model"].config.hidden_size)

    def directory(self) -> Path:
        from .checkpoint import resolve_checkpoint

        if self._directory is None:
            self._directory = resolve_checkpoint(self.parameters.checkpoint, self.parameters.revision)
        return self._directory

    def missing_packages(self) -> list[str]:
        from .checkpoint import PACKAGE_PREFIX

        missing = self.missing_requirements()
        checkpoint = self.parameters.checkpoint
        if checkpoint.startswith(PACKAGE_PREFIX):
            package = checkpoint[len(PACKAGE_PREFIX):].partition("/")[0]
            missing += [m for m in [missing_module(package)] if m]
        return missing

    def checkpoint_files(self) -> list[Path]:
        """Loads the model first, so a bad checkpoint or parameter fails before a store is created."""
        from .checkpoint import checkpoint_files

        self.load()
        files = checkpoint_files(self.directory())
        vocab = self.parameters.vocab_file
        if vocab and Path(vocab).expanduser().is_file():
            files.append(Path(vocab).expanduser())
        return files

    def load(self) -> dict[str, Any]:
        """Model, tokenizer, device and token limit, loaded once per provider instance."""
        if self._loaded is None:
            from embhub.accel import pick_device, pick_dtype
            from embhub.errors import PluginError

            from .encoder import load_model, load_tokenizer, token_limit

            p = self.parameters
            device = pick_device(p.device)
            dtype = pick_dtype(device, p.precision)
            directory = self.directory()
            model = load_model(directory, p.architecture, device, dtype, p.checkpoint)
            n_layers = model.config.num_hidden_layers
            if not -(n_layers + 1) <= p.layer <= n_layers:
                raise PluginError(
                    f"layer {p.layer} does not exist in checkpoint '{p.checkpoint}' "
                    f"(hidden states 0..{n_layers}, or -1..-{n_layers + 1})"
                )
            tokenizer = load_tokenizer(directory, p.tokenizer, p.vocab_file, p.checkpoint)
            self._loaded = {
                "model": model,
                "tokenizer": tokenizer,
                "device": device,
                "dtype": dtype,
                "limit": token_limit(model, tokenizer),
            }
        return self._loaded

    def embed(self, items: Sequence[Item]) -> Embedded:
        from .encoder import PoolingChoice, encode_batches
        from .molecules import identify_all, worker_pool
        from .smiles_tokenizer import UntokenizableSmiles

        loaded = self.load()
        p = self.parameters
        if self._pool is None and p.workers:
            self._pool = worker_pool(p.workers)
        tokenizer, limit = loaded["tokenizer"], loaded["limit"]
        ids, keys, smiles, encodings, failures = [], [], [], [], []
        unknown_tokens = 0
        for item, identified in zip(items, identify_all([item.value for item in items], self._pool, p.workers)):
            if isinstance(identified, str):
                failures.append(Failure(item.input_id, identified))
                continue
            canonical, inchikey = identified
            try:
                encoding = tokenizer.encode(canonical)
            except UntokenizableSmiles as exc:
                failures.append(Failure(item.input_id, str(exc)))
                continue
            if len(encoding.input_ids) > limit:
                failures.append(
                    Failure(
                        item.input_id,
                        f"SMILES has {len(encoding.input_ids)} tokens, more than the model's limit of {limit}",
                    )
                )
                continue
            unknown_tokens += encoding.unknown
            ids.append(item.input_id)
            keys.append(inchikey)
            smiles.append(canonical)
            encodings.append(encoding)
        vectors = encode_batches(
            loaded["model"], encodings, tokenizer.pad_id, PoolingChoice(p.pooling, p.layer), loaded["device"], p.forward_batch_size
        )
        return Embedded(ids, keys, vectors, failures, labels={"canonical_smiles": smiles, "name": list(ids)},
                        counts={"unknown_tokens": unknown_tokens})

    def provenance(self) -> dict[str, Any]:
        from embhub.identity.drugs import rdkit_version

        facts: dict[str, Any] = {"rdkit": rdkit_version(), "smiles_canonicalisation": CANONICALISATION}
        if self._loaded is not None:
            import transformers

            tokenizer = self._loaded["tokenizer"]
            facts.update(
                {
                    "transformers": transformers.__version__,
                    "device": str(self._loaded["device"]),
                    "torch_dtype": str(self._loaded["dtype"]).replace("torch.", ""),
                    "tokenizer": type(tokenizer).__name__,
                    "token_limit": self._loaded["limit"],
                }
            )
        return facts


@hookimpl
def register_providers(register):
    register(SmilesTransformer)
