"""Read one tensor of a ``.safetensors`` file into a float32 numpy array, without torch.

The positional mode needs a single embedding table, so importing torch (seconds, gigabytes) to get it
would be waste. The format is small enough to read directly: 8 bytes little-endian header length ``N``,
``N`` bytes of JSON (``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": …}``),
then the raw little-endian data, offsets counted from the end of the header
(https://github.com/huggingface/safetensors). ``numpy`` has no bfloat16, so BF16 tensors (how GPU-trained
checkpoints are often saved) are widened to float32 exactly by shifting their 16 bits into the high half.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from embhub.errors import InputError

NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}


def tensor_names(path: Path) -> dict[str, dict]:
    """The header of ``path``: tensor name → ``{"dtype", "shape", "data_offsets"}`` (metadata dropped)."""
    header, _ = _read_header(path)
    return {name: entry for name, entry in header.items() if name != "__metadata__"}


def read_tensor(path: Path, name: str) -> np.ndarray:
    """The tensor ``name`` of ``path`` as float32, in its stored shape."""
    header, data_start = _read_header(path)
    entry = header.get(name)
    if entry is None:
        raise KeyError(name)
    try:
        dtype, shape, (begin, end) = entry["dtype"], [int(n) for n in entry["shape"]], entry["data_offsets"]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path} is corrupt (header entry of '{name}' is malformed); download it again") from exc
    if dtype not in NUMPY_DTYPES:
        raise InputError(f"tensor '{name}' in {path} has dtype {dtype}; expected one of {', '.join(NUMPY_DTYPES)}")
    stored = np.dtype(NUMPY_DTYPES[dtype])
    if end - begin != stored.itemsize * int(np.prod(shape)) or data_start + end > path.stat().st_size:
        raise InputError(f"{path} is truncated or corrupt (tensor '{name}' does not fit the file); download it again")
    with open(path, "rb") as handle:
        handle.seek(data_start + begin)
        raw = np.frombuffer(handle.read(end - begin), dtype=stored).reshape(shape)
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


def _read_header(path: Path) -> tuple[dict, int]:
    """The parsed JSON header and the byte offset where tensor data starts."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        length = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
        if not 2 <= length <= size - 8:
            raise InputError(f"{path} is not a safetensors file (no valid header); download it again")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path} is not a safetensors file (header is not JSON: {exc}); download it again") from exc
    if not isinstance(header, dict):
        raise InputError(f"{path} is not a safetensors file (header is not a JSON object); download it again")
    return header, 8 + length
