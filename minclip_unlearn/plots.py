"""Figures for the book: accuracy heatmaps before/after an edit and the alpha trade-off, each labelled with its source."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from matplotlib.patches import Rectangle

from .paradigms import ConceptGrid


def heatmap(acc: np.ndarray, grid: ConceptGrid, ax=None, title: str = "", mask: torch.Tensor | None = None):
    """(C, M) accuracy -> a seaborn heatmap on ax; forgotten cells (mask) are outlined in red."""
    ax = ax or plt.gca()
    sns.heatmap(100 * np.asarray(acc), ax=ax, vmin=0, vmax=100, cmap="viridis", annot=len(grid.classes) <= 20,
                fmt=".0f", cbar_kws={"label": "accuracy (%)"}, xticklabels=grid.domains,
                yticklabels=grid.classes if len(grid.classes) <= 40 else False)
    if mask is not None:
        for c, m in mask.nonzero().tolist():
            ax.add_patch(Rectangle((m, c), 1, 1, fill=False, edgecolor="red", lw=2.5))
    ax.set(xlabel="domain", ylabel="class", title=title)
    ax.tick_params(axis="y", labelrotation=0)  # class names read horizontally
    return ax


def before_after(acc_before: np.ndarray, acc_after: np.ndarray, grid: ConceptGrid, mask: torch.Tensor,
                 source: str, title: str = ""):
    """Two (C, M) accuracy matrices -> a figure of side-by-side heatmaps, forgotten cells outlined."""
    height = 3.2 if len(grid.classes) <= 10 else 8
    fig, axes = plt.subplots(1, 2, figsize=(10, height), constrained_layout=True)
    heatmap(acc_before, grid, axes[0], "before", mask)
    heatmap(acc_after, grid, axes[1], "after", mask)
    fig.suptitle(f"{title}\n{source}" if title else source, fontsize=10)
    return fig


def curves(x: Sequence[float], series: dict[str, Sequence[float]], source: str, xlabel: str = "strength α",
           ax=None, title: str = ""):
    """Named accuracy series over x (e.g. forget/retain over alpha) -> a line plot labelled with its source."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5), constrained_layout=True)
    for name, ys in series.items():
        ax.plot(x, 100 * np.asarray(ys), marker="o", label=name)
    ax.set(xlabel=xlabel, ylabel="accuracy (%)", ylim=(-3, 103), title=f"{title}\n{source}" if title else source)
    ax.title.set_fontsize(9)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax
