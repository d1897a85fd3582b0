"""Bar charts of the fusion ablations (matplotlib, imported here only)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_attention(summary: pd.DataFrame, path: Path, title: str) -> Path:
    """Horizontal bars: mean CLS attention per token (± sd over folds and cell lines)."""
    plt = _pyplot()
    summary = summary.iloc[::-1]
    figure, axis = plt.subplots(figsize=(7, 0.35 * len(summary) + 1.5))
    colours = ["tab:blue" if kind == "source" else "tab:gray" for kind in summary["kind"]]
    axis.barh(summary["token"], summary["attention"], xerr=summary["attention_sd"].fillna(0), color=colours)
    axis.set_xlabel("mean CLS attention over test perturbations")
    axis.set_title(f"{title}: attention per source", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_leave_one_out(summary: pd.DataFrame, path: Path, title: str) -> Path:
    """Horizontal bars: test L2 increase when each source is left out (positive: the source helps)."""
    plt = _pyplot()
    summary = summary.iloc[::-1]
    figure, axis = plt.subplots(figsize=(7, 0.35 * len(summary) + 1.5))
    colours = ["tab:red" if delta > 0 else "tab:green" for delta in summary["delta_L2"]]
    axis.barh(summary["removed"], summary["delta_L2"], xerr=summary["delta_L2_sd"].fillna(0), color=colours)
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_xlabel("ΔL2 without the source (mean over folds and cell lines)")
    axis.set_title(f"{title}: leave one source out", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
