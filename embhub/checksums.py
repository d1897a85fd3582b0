"""File checksums recorded in manifests (model weights, network files, raw dataset files)."""

import hashlib
from pathlib import Path


def sha256_file(path: str | Path, block_size: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in blocks so large files never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()
