"""The study's protocol constants (Cole et al. 2026, benchmark code ``pkg/benchmark/bench_*_lfc.py``).

One source of truth: every estimator reads its grid, seed and PCA size from :class:`ProtocolSettings`.
``settings_for(dataset)`` picks the dataset-specific grids the study used (Norman: PCA(50), k ∈ {5,10,15,20}).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

K_GRID = (20, 40, 60, 80, 100)
ALPHA_GRID = (1e-3, 1e-2, 1e-1, 1.0)
C_GRID = (1.0, 1e3, 1e5, 1e7)
PCA_COMPONENTS = 100
INNER_FOLDS = 5
INNER_SEED = 42
CEILING_QUANTILE = 0.9
DEG_CEILING_QUANTILE = 0.1
"""The study's DEG tables give the 0.1 quantile of the ceiling's F1 ("Experimental error (quantile 0.1)")."""
RANDOM_EMBEDDING_SEED = 20260218
"""Seed of the random-embedding baseline (the study drew it unseeded); mixed with cell line and fold."""

NORMAN_K_GRID = (5, 10, 15, 20)
NORMAN_PCA_COMPONENTS = 50


@dataclass(frozen=True)
class ProtocolSettings:
    """Grids and sizes of one evaluation. Defaults reproduce the study's Essential/sciPlex/Tahoe protocol."""

    k_grid: tuple[int, ...] = K_GRID
    alpha_grid: tuple[float, ...] = ALPHA_GRID
    c_grid: tuple[float, ...] = C_GRID
    pca_components: int = PCA_COMPONENTS
    inner_folds: int = INNER_FOLDS
    inner_seed: int = INNER_SEED
    random_seed: int = RANDOM_EMBEDDING_SEED
    ceiling_quantile: float = CEILING_QUANTILE
    deg_ceiling_quantile: float = DEG_CEILING_QUANTILE
    name: str = "study"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "k_grid": list(self.k_grid),
            "alpha_grid": list(self.alpha_grid),
            "c_grid": list(self.c_grid),
            "pca_components": self.pca_components,
            "inner_folds": self.inner_folds,
            "inner_seed": self.inner_seed,
            "random_seed": self.random_seed,
            "ceiling_quantile": self.ceiling_quantile,
            "deg_ceiling_quantile": self.deg_ceiling_quantile,
        }


def settings_for(dataset_name: str, manifest: dict[str, Any] | None = None) -> ProtocolSettings:
    """The study's settings for a dataset; a prepared manifest's ``protocol`` dict may override grids."""
    settings = ProtocolSettings()
    if dataset_name.lower().startswith("norman"):
        settings = replace(settings, k_grid=NORMAN_K_GRID, pca_components=NORMAN_PCA_COMPONENTS, name="study-norman")
    overrides = (manifest or {}).get("protocol") or {}
    if isinstance(overrides, dict):
        known = {
            "k_grid": lambda v: tuple(int(x) for x in v),
            "alpha_grid": lambda v: tuple(float(x) for x in v),
            "c_grid": lambda v: tuple(float(x) for x in v),
            "pca_components": int,
        }
        changes = {key: cast(overrides[key]) for key, cast in known.items() if key in overrides}
        if changes:
            settings = replace(settings, **changes)
    return settings
