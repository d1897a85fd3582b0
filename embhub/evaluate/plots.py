"""Figures from a results table (matplotlib, Agg backend; written as PNG and SVG).

- ``boxplot``: per cell line, one box per method over the folds (the study's figure 1 layout), with the
  reference baseline and the ceiling (when present) as lines; ``l2_boxplot``, ``f1_boxplot``…;
- ``rank_plot``: each method's rank in every cell line, lines joining a method across cell lines
  (``rank_plot`` for L2, ``f1_rank_plot``…).

Figures of the ``common`` subset add ``_common`` to the name. Titles name the metric and subset, and start
with "SIMULATED data" when the dataset was simulated.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from embhub.evaluate import results as R
from embhub.evaluate.summary import label_of, reference_embedding, summarise

FORMATS = ("png", "svg")
KINDS = ("boxplot", "rank_plot")


def plot_stem(kind: str, metric: str, subset: str) -> str:
    if kind == "rank_plot":
        stem = "rank_plot" if metric == "L2" else f"{metric.lower()}_rank_plot"
    else:
        stem = f"{metric.lower()}_{kind}"
    return stem if subset == "all" else f"{stem}_{subset}"


def plot_file_names() -> set[str]:
    """Every file name these functions can write, so an overwrite can clear them and nothing else."""
    metrics = (*R.LFC_METRICS, *R.DEG_METRICS)
    return {f"{plot_stem(kind, metric, subset)}.{extension}"
            for kind in KINDS for metric in metrics for subset in R.SUBSETS for extension in FORMATS}


def _title(metric: str, subset: str, simulated: bool) -> str:
    prefix = "SIMULATED data — " if simulated else ""
    return f"{prefix}{metric} ({subset} test perturbations)"


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


def boxplot(frame: pd.DataFrame, out_dir: Path, metric: str = "L2", subset: str = "all", simulated: bool = False) -> list[Path]:
    plt = _pyplot()
    rows = frame[(frame["metric"] == metric) & (frame["subset"] == subset) & (frame["method"] != "ceiling")]
    summary = summarise(frame, metric, subset)
    cell_lines = list(dict.fromkeys(rows["cell_line"]))
    if not cell_lines:
        return []
    best_on_top = not R.LOWER_IS_BETTER.get(metric, True)
    figure, axes = plt.subplots(1, len(cell_lines), figsize=(max(5.0, 7.5 * len(cell_lines)), 0.5 * rows["embedding"].nunique() + 3), squeeze=False)
    for axis, cell_line in zip(axes[0], cell_lines):
        line_summary = summary[summary["cell_line"] == cell_line]
        part = line_summary[line_summary["method"] != "ceiling"].sort_values("median", ascending=best_on_top)
        labels = [textwrap.fill(label, 38) for label in part["label"]]
        data = []
        for method, embedding in zip(part["method"], part["embedding"]):
            values = rows[(rows["cell_line"] == cell_line) & (rows["method"] == method) & (rows["embedding"] == embedding)]["value"]
            data.append(values.dropna().to_numpy())
        axis.boxplot(data, orientation="horizontal", tick_labels=labels)
        reference_name = reference_embedding(metric)
        reference = line_summary[(line_summary["embedding"] == reference_name) & (line_summary["method"] == "baseline")]
        if len(reference):
            axis.axvline(float(reference["median"].iloc[0]), color="grey", linestyle="--", label=reference_name.replace("_", " "))
        ceiling = line_summary[line_summary["method"] == "ceiling"]
        if len(ceiling):
            axis.axvline(float(ceiling["median"].iloc[0]), color="tab:green", linestyle=":", label=label_of("ceiling", ceiling["embedding"].iloc[0]))
        axis.set_title(cell_line)
        axis.set_xlabel(f"{metric} ({subset} test perturbations)")
    figure.suptitle(_title(metric, subset, simulated))
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, names, loc="lower center", fontsize="small", ncol=2)
    figure.tight_layout(rect=(0, 0.05 if handles else 0, 1, 1))
    paths = _save(figure, out_dir, plot_stem("boxplot", metric, subset))
    plt.close(figure)
    return paths


def rank_plot(frame: pd.DataFrame, out_dir: Path, metric: str = "L2", subset: str = "all", simulated: bool = False) -> list[Path]:
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
    axis.set_title(_title(metric, subset, simulated))
    axis.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    figure.tight_layout()
    paths = _save(figure, out_dir, plot_stem("rank_plot", metric, subset))
    plt.close(figure)
    return paths


def all_plots(frame: pd.DataFrame, out_dir: Path, metrics: list[str], subset: str = "all", simulated: bool = False) -> list[Path]:
    paths: list[Path] = []
    for metric in metrics:
        paths += boxplot(frame, out_dir, metric, subset, simulated) + rank_plot(frame, out_dir, metric, subset, simulated)
    return paths


__all__ = ["all_plots", "boxplot", "rank_plot", "plot_stem", "plot_file_names", "label_of"]
