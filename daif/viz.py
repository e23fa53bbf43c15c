"""Pictures people look at: focal stacks, depth and defocus maps, AIF images, plots.

Matplotlib with the Agg backend (no display needed). Every figure is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from daif.files import atomic_path  # noqa: E402

DEPTH_CMAP = "magma_r"  # near = bright
SIGMA_CMAP = "viridis"


def save_figure(figure: plt.Figure, path: str | os.PathLike) -> Path:
    """Write a figure as PNG through a temporary name, then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def _image(array: np.ndarray) -> np.ndarray:
    """(3, H, W) or (H, W, 3), float [0, 1] or uint8 -> (H, W, 3) for imshow."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    return array if array.dtype == np.uint8 else np.clip(array, 0.0, 1.0)


def _panel(axis, title: str) -> None:
    axis.set_title(title, fontsize=8)
    axis.set_xticks([])
    axis.set_yticks([])


def grid_figure(rows: Sequence[Sequence[dict]], title: str | None = None, panel_width: float = 2.6) -> plt.Figure:
    """A grid of panels. Each panel is a dict: {"image": rgb} or {"map": (H, W), "cmap", "vmin", "vmax" or "norm"
    (a matplotlib Normalize, e.g. LogNorm), "label", "ticks" (values labelled on the colour bar)} (a colour-mapped
    scalar map with its colour bar), plus "title". Empty dicts leave a gap."""
    n_rows, n_cols = len(rows), max(len(row) for row in rows)
    first = next(p for row in rows for p in row if p)
    height, width = np.asarray(first.get("image", first.get("map"))).shape[:2]
    if "image" in first and np.asarray(first["image"]).shape[0] == 3:
        height, width = np.asarray(first["image"]).shape[1:]
    figure, axes = plt.subplots(
        n_rows, n_cols, figsize=(panel_width * n_cols, panel_width * n_rows * height / width + 0.4), squeeze=False
    )
    for r, row in enumerate(rows):
        for c in range(n_cols):
            axis = axes[r][c]
            panel = row[c] if c < len(row) else {}
            if not panel:
                axis.axis("off")
                continue
            if "image" in panel:
                axis.imshow(_image(panel["image"]))
            else:
                shown = axis.imshow(panel["map"], cmap=panel.get("cmap", DEPTH_CMAP), vmin=panel.get("vmin"), vmax=panel.get("vmax"),
                                    norm=panel.get("norm"))
                bar = figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
                if panel.get("ticks") is not None:
                    bar.ax.minorticks_off()
                    bar.set_ticks(panel["ticks"], labels=[f"{tick:g}" for tick in panel["ticks"]])
                bar.ax.tick_params(labelsize=6)
                if panel.get("label"):
                    bar.set_label(panel["label"], fontsize=7)
            _panel(axis, panel.get("title", ""))
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def focal_stack_rows(
    stack: np.ndarray, focus_distances: Sequence[float], label: str = "", sigma: np.ndarray | None = None
) -> list[list[dict]]:
    """Rows of panels for a stack ((S, 3, H, W) float or (S, H, W, 3) uint8) and optionally its defocus maps (S, H, W) in pixels."""
    images = [{"image": stack[k], "title": f"{label}focus {float(f):.2f} m"} for k, f in enumerate(focus_distances)]
    rows = [images]
    if sigma is not None:
        vmax = float(np.max(sigma))
        rows.append([
            {"map": sigma[k], "cmap": SIGMA_CMAP, "vmin": 0.0, "vmax": vmax, "label": "sigma [px]", "title": f"defocus at {float(f):.2f} m"}
            for k, f in enumerate(focus_distances)
        ])
    return rows


def line_plot(
    series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str, title: str
) -> plt.Figure:
    """One line per named series of (x, y) points."""
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    for name, (xs, ys) in series.items():
        axis.plot(xs, ys, marker="o", label=name)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure


def training_figure(
    stack: np.ndarray,
    focus_distances: np.ndarray,
    reconstruction: np.ndarray,
    aif: np.ndarray,
    coarse_aif: np.ndarray,
    depth: np.ndarray,
    sigma: np.ndarray,
    true_depth: np.ndarray | None = None,
    true_aif: np.ndarray | None = None,
    epoch: int | None = None,
) -> plt.Figure:
    """Input vs reconstructed stack, predicted vs true depth (one colour scale), AIF vs coarse AIF, defocus maps.

    stack, reconstruction: (S, 3, H, W); aif, coarse_aif, true_aif: (3, H, W); depth, true_depth: (H, W) metres;
    sigma: (S, H, W) pixels of the predicted depth.
    """
    rows = focal_stack_rows(stack, focus_distances, "input, ")
    rows += focal_stack_rows(reconstruction, focus_distances, "rendered, ", sigma=sigma)
    finite = [d for d in (depth, true_depth) if d is not None]
    vmin, vmax = float(min(np.min(d) for d in finite)), float(max(np.max(d) for d in finite))
    last = [{"map": depth, "vmin": vmin, "vmax": vmax, "label": "m", "title": "predicted depth"}]
    if true_depth is not None:
        last.append({"map": true_depth, "vmin": vmin, "vmax": vmax, "label": "m", "title": "true depth"})
    last += [{"image": aif, "title": "predicted AIF"}, {"image": coarse_aif, "title": "coarse AIF"}]
    if true_aif is not None:
        last.append({"image": true_aif, "title": "true AIF"})
    rows.append(last)
    return grid_figure(rows, title=None if epoch is None else f"validation sample, epoch {epoch}")
