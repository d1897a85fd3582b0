"""Figures from a results table (matplotlib, Agg backend; written as PNG and SVG).

- ``l2_boxplot``: per cell line, one box per method over the folds (the study's figure 1 layout), with
  the context mean and the ceiling (when present) as reference lines;
- ``rank_plot``: each method's rank in every cell line, lines joining a method across cell lines.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from embhub.evaluate import results as R
from embhub.evaluate.summary import label_of, summarise

FORMATS = ("png", "svg")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(figure, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for extension in FORMATS:
        path = out_dir / f"{stem}.{extension}"
        figure.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def l2_boxplot(frame: pd.DataFrame, out_dir: Path, metric: str = "L2", subset: str = "all", stem: str = "l2_boxplot") -> list[Path]:
    plt = _pyplot()
    rows = frame[(frame["metric"] == metric) & (frame["subset"] == subset) & (frame["method"] != "ceiling")]
    summary = summarise(frame, metric, subset)
    cell_lines = list(dict.fromkeys(rows["cell_line"]))
    if not cell_lines:
        return []
    figure, axes = plt.subplots(1, len(cell_lines), figsize=(max(5.0, 7.5 * len(cell_lines)), 0.5 * rows["embedding"].nunique() + 3), squeeze=False)
    for axis, cell_line in zip(axes[0], cell_lines):
        part = summary[(summary["cell_line"] == cell_line) & (summary["method"] != "ceiling")].sort_values("median", ascending=False)
        labels = [textwrap.fill(label, 38) for label in part["label"]]
        data = []
        for method, embedding in zip(part["method"], part["embedding"]):
            values = rows[(rows["cell_line"] == cell_line) & (rows["method"] == method) & (rows["embedding"] == embedding)]["value"]
            data.append(values.dropna().to_numpy())
        axis.boxplot(data, orientation="horizontal", tick_labels=labels)
        reference = summary[(summary["cell_line"] == cell_line) & (summary["embedding"] == R.CONTEXT_MEAN) & (summary["method"] == "baseline")]
        if len(reference):
            axis.axvline(float(reference["median"].iloc[0]), color="grey", linestyle="--", label="context mean")
        ceiling = summary[(summary["cell_line"] == cell_line) & (summary["method"] == "ceiling")]
        if len(ceiling):
            axis.axvline(float(ceiling["median"].iloc[0]), color="tab:green", linestyle=":", label="experimental error q0.9")
        axis.set_title(cell_line)
        axis.set_xlabel(f"{metric} ({subset} test perturbations)")
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, names, loc="lower center", fontsize="small", ncol=2)
    figure.tight_layout(rect=(0, 0.05 if handles else 0, 1, 1))
    paths = _save(figure, out_dir, stem)
    plt.close(figure)
    return paths


def rank_plot(frame: pd.DataFrame, out_dir: Path, metric: str = "L2", subset: str = "all", stem: str = "rank_plot") -> list[Path]:
    plt = _pyplot()
    summary = summarise(frame, metric, subset).dropna(subset=["rank"])
    if summary.empty:
        return []
    cell_lines = list(dict.fromkeys(summary["cell_line"]))
    figure, axis = plt.subplots(figsize=(max(4.0, 1.6 * len(cell_lines) + 3), 0.3 * summary["label"].nunique() + 3))
    for label, part in summary.groupby("label", sort=False):
        positions = [cell_lines.index(c) for c in part["cell_line"]]
        axis.plot(positions, part["rank"], marker="o", label=label)
    axis.set_xticks(range(len(cell_lines)), cell_lines)
    from matplotlib.ticker import MaxNLocator

    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.invert_yaxis()
    axis.set_ylabel(f"rank by median {metric} over folds")
    axis.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    figure.tight_layout()
    paths = _save(figure, out_dir, stem)
    plt.close(figure)
    return paths


def all_plots(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    paths = l2_boxplot(frame, out_dir) + rank_plot(frame, out_dir)
    if (frame["metric"] == "F1").any():
        paths += l2_boxplot(frame, out_dir, metric="F1", stem="f1_boxplot")
    return paths


__all__ = ["all_plots", "l2_boxplot", "rank_plot", "label_of"]
