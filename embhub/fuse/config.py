"""Fusion hyperparameters and the protocol constants they default to.

The defaults follow the reference study's released ``essential_lfc_simple`` configuration (Cole et al. 2026,
``pkg/fusion/config``; benchmark-protocol-details.md §7.4) where it fixes a value, and its trainer settings
(§7.1): Adam without weight decay, a linear warm-up over 5 epochs from 1e-8·lr, gradient clipping at 1,
early stopping with patience 25 on the validation task loss, at most 75 epochs (LFC) or 200 (DEG).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from embhub.errors import InputError

TASKS = ("lfc", "deg")
CELL_LINE_MODES = ("token", "add")
INPUT_NORMS = ("zscore", "none")
RESPONSE_OFFSETS = ("context_mean", "none")

VALIDATION_FRACTION = 0.2
VALIDATION_SEED = 42
TRAINING_SEED = 123
WARMUP_START_FACTOR = 1e-8
MAX_EPOCHS = {"lfc": 75, "deg": 200}
DEFAULT_TRIALS = 20
STUDY_TRIALS = 100


@dataclass(frozen=True)
class FusionConfig:
    """One fusion model and its training schedule.

    ``cell_line`` is ``token`` (the learned cell-line vector is one more attended token, as the issue and
    the study's sciPlex config do) or ``add`` (added to every token, the study's Essential ``simple`` config).
    ``head_layers`` hidden layers of ``head_width`` sit between the CLS output and the response (0: linear).
    ``modal_drop`` is the probability that a present source is hidden from attention for one training example
    (at least one source always stays visible).
    ``response_offset`` ``none`` is the study's head (it predicts the LFC itself); ``context_mean`` adds each
    cell line's mean fit response to the head's output and zero-initialises the head's last layer, so the
    model learns the residual and starts exactly at the context-mean baseline. DEG ignores it.
    """

    d_model: int = 100
    n_heads: int = 5
    n_layers: int = 4
    dropout: float = 0.0
    gate: bool = False
    cell_line: str = "token"
    input_norm: str = "zscore"
    input_dropout: float = 0.1
    modal_drop: float = 0.0
    head_layers: int = 0
    head_width: int = 400
    response_offset: str = "none"
    lr: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 75
    patience: int = 25
    warmup_epochs: int = 5
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "n_layers", "max_epochs", "batch_size", "patience", "head_width"):
            if getattr(self, name) < 1:
                raise InputError(f"fusion {name} {getattr(self, name)} must be at least 1")
        for name in ("head_layers", "warmup_epochs"):
            if getattr(self, name) < 0:
                raise InputError(f"fusion {name} {getattr(self, name)} must be 0 or more")
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise InputError(f"fusion {name} {getattr(self, name)} must be above 0")
        if self.d_model % self.n_heads:
            raise InputError(f"fusion d_model {self.d_model} is not divisible by n_heads {self.n_heads}; change one")
        if self.cell_line not in CELL_LINE_MODES:
            raise InputError(f"fusion cell_line '{self.cell_line}' is not one of {', '.join(CELL_LINE_MODES)}")
        if self.input_norm not in INPUT_NORMS:
            raise InputError(f"fusion input_norm '{self.input_norm}' is not one of {', '.join(INPUT_NORMS)}")
        if self.response_offset not in RESPONSE_OFFSETS:
            raise InputError(f"fusion response_offset '{self.response_offset}' is not one of {', '.join(RESPONSE_OFFSETS)}")
        for name in ("dropout", "input_dropout", "modal_drop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"fusion {name} {getattr(self, name)} must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, **changes: Any) -> "FusionConfig":
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise InputError(f"unknown fusion parameter(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        return replace(self, **changes)


def default_config(task: str = "lfc") -> FusionConfig:
    if task not in TASKS:
        raise InputError(f"task '{task}' is not one of {', '.join(TASKS)}")
    return FusionConfig(max_epochs=MAX_EPOCHS[task])
