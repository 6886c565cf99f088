"""Figures for the book: accuracy heatmaps before/after an edit and the alpha trade-off, each labelled with its source."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from matplotlib.patches import Rectangle

from .paradigms import ConceptGrid


def heatmap(acc: np.ndarray, grid: ConceptGrid, ax=None, title: str = "", mask: torch.Tensor | None = None,
            cbar: bool = True, yticklabels: bool = True):
    """(C, M) accuracy -> a seaborn heatmap on ax; forgotten cells (mask) are outlined in red."""
    ax = ax or plt.gca()
    sns.heatmap(100 * np.asarray(acc), ax=ax, vmin=0, vmax=100, cmap="viridis", annot=len(grid.classes) <= 20,
                fmt=".0f", cbar=cbar, cbar_kws={"label": "accuracy (%)"}, xticklabels=grid.domains,
                yticklabels=grid.classes if yticklabels and len(grid.classes) <= 40 else False,
                annot_kws={"fontsize": 9})
    if mask is not None:
        for c, m in mask.nonzero().tolist():
            ax.add_patch(Rectangle((m, c), 1, 1, fill=False, edgecolor="red", lw=2.5))
    ax.set(xlabel="domain", ylabel="class", title=title)
    ax.tick_params(axis="y", labelrotation=0)  # class names read horizontally
    return ax


def heatmap_row(panels: Sequence[tuple[str, np.ndarray]], grid: ConceptGrid, mask: torch.Tensor | None,
                source: str, title: str = ""):
    """(title, (C, M) accuracy) pairs -> one row of heatmaps sized for the page: class names on the
    first panel only, one shared colour bar, domain names slanted, forgotten cells outlined."""
    height = 3.0 if len(grid.classes) <= 10 else 7
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 1.0, height), constrained_layout=True,
                             squeeze=False)
    for k, (ax, (name, acc)) in enumerate(zip(axes[0], panels)):
        heatmap(acc, grid, ax, name, mask, cbar=k == len(panels) - 1, yticklabels=k == 0)
        ax.tick_params(axis="x", labelrotation=30)
        ax.title.set_fontsize(10)
        if k:
            ax.set_ylabel("")
    fig.suptitle(f"{title}\n{source}" if title else source, fontsize=10)
    return fig


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


MARKERS = ["o", "s", "^", "*", "d", "P", ">", "v", "<", "X", "h", "p"]


def gap_view(img: np.ndarray, txt: np.ndarray):
    """(N, d) images and (K, d) texts -> a map X -> (n, 2): position along the gap vector, PC 1 of the rest."""
    from sklearn.decomposition import PCA

    gap = img.mean(0) - txt.mean(0)
    g_dir = gap / np.linalg.norm(gap)

    def off_gap(X: np.ndarray) -> np.ndarray:
        return X - np.outer(X @ g_dir, g_dir)

    pc_rest = PCA(n_components=1).fit(off_gap(np.vstack([img, txt])))
    return lambda X: np.c_[X @ g_dir, pc_rest.transform(off_gap(X))[:, 0]]


def modality_gap(img: np.ndarray, img_cls: np.ndarray, txt: np.ndarray, txt_cls: np.ndarray,
                 classes: Sequence[str], source: str):
    """Normalised (N, d) image and (K, d) text embeddings with class ids -> a two-panel figure:
    a PCA of both sets (left) and the same points seen along the gap vector (right)."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2).fit(np.vstack([img, txt]))
    markers = dict(zip(classes, MARKERS))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)
    for ax, view in zip(axes, (pca.transform, gap_view(img, txt))):
        zi, zt = view(img), view(txt)
        for k, cl in enumerate(classes):
            ax.scatter(*zi[img_cls == k].T, marker=markers[cl], s=14, color="tab:blue", alpha=0.35, linewidths=0)
            ax.scatter(*zt[txt_cls == k].T, marker=markers[cl], s=60, color="tab:orange", edgecolors="black",
                       linewidths=0.5)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], ls="", marker=mk, color="gray", label=cl) for cl, mk in markers.items()]
    handles += [plt.Line2D([], [], ls="", marker="o", color="tab:blue", label="image embeddings"),
                plt.Line2D([], [], ls="", marker="o", color="tab:orange", mec="black", label="text embeddings (prompts)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 9), fontsize=8, frameon=False)
    ev = pca.explained_variance_ratio_
    axes[0].set(xlabel=f"PC 1 ({100 * ev[0]:.0f}% of variance)", ylabel=f"PC 2 ({100 * ev[1]:.0f}% of variance)",
                title="PCA over images and prompts")
    axes[1].set(xlabel="position along the gap vector (mean image - mean prompt)", ylabel="PC 1 of the rest",
                title="the same points, seen along the gap vector")
    for ax in axes:
        ax.title.set_fontsize(10)
    fig.suptitle(f"the modality gap: normalised image and text embeddings in 2-D\n{source}", fontsize=10)
    return fig


def method_bars(results, paradigms: dict[str, int], order: Sequence[str], labels: Sequence[str],
                metrics: dict[str, str], chance: float, source: str):
    """A (paradigm, method) x metric table of accuracies in [0, 1] -> one panel of grouped bars per
    paradigm (paradigms: name -> number of forgotten cells); NaN groups are marked n/a."""
    # one row per paradigm, so that every panel gets the page's full width
    fig, axes = plt.subplots(len(paradigms), 1, figsize=(9, 2.6 * len(paradigms) + 0.8), sharex=True,
                             constrained_layout=True, squeeze=False)
    axes = axes.T
    width = 0.8 / len(metrics)
    for ax, (paradigm, n_cells) in zip(axes[0], paradigms.items()):
        sub = 100 * results.loc[paradigm].reindex(list(order))
        x = np.arange(len(order))
        for k, (metric, color) in enumerate(metrics.items()):
            xs = x + (k - (len(metrics) - 1) / 2) * width
            ax.bar(xs, sub[metric], width, color=color, label=metric.replace("_", " "))
            for xi, v in zip(xs, sub[metric]):
                if v < 3:  # make a bar at zero visible
                    ax.text(xi, v + 1, f"{v:.0f}", ha="center", fontsize=7, color=color)
        for xi, value in zip(x, sub[next(iter(metrics))]):
            if np.isnan(value):
                ax.text(xi, 3, "n/a", ha="center", fontsize=9, color="gray")
        ax.axhline(100 * chance, color="gray", ls="--", lw=1)
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_title(f"{paradigm}: {n_cells} forgotten cells", fontsize=10)
    for ax in axes[0]:
        ax.set_ylabel("accuracy (%)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncol=len(metrics), fontsize=9)
    fig.suptitle(f"Baselines side by side (dashed line: chance)\n{source}", fontsize=10)
    return fig
