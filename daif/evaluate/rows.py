"""The records an evaluation produces and how they are aggregated.

ImageRow: one image under one (condition, method, mask), a row of per_image.csv; SceneEvaluator
emits them as numpy columns (`to_columns`, the form Ray Data carries) and they are read back with
`from_columns`. Aggregate: one (condition, method, mask) over the images, derived exactly from the
ImageRows: "image" is the mean over images with a valid pixel, "pixel" pools all valid pixels (each
per-image value weighted by its valid count; rmse-type metrics through their squares).
GeneralisationRow: one (condition, method) of the generalisation study, a row of generalisation.csv.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from daif.evaluate.plan import Condition, mask_name, variant_name
from daif.metrics import DEPTH_METRIC_NAMES

SQUARED_KEYS = ("rmse", "rmse_log10", "rmse_log")  # pooled through their squares
AIF_KEYS = ("mg", "sf", "psnr", "ssim", "recon", "detail")  # recon, detail: daif.losses.reconstruction_errors, no ground truth
IMAGE_COLUMNS = ("scene_id", "condition", "method", "mask", "count", *DEPTH_METRIC_NAMES, *AIF_KEYS)
_TEXT_COLUMNS = ("scene_id", "condition", "method", "mask")
GENERALISATION_COLUMNS = (
    "study", "condition", "x", "focus_distances", "method", "delta1", *(k for k in DEPTH_METRIC_NAMES if k != "delta1")
)


@dataclasses.dataclass(frozen=True)
class ImageRow:
    """The metrics of one image under one (condition, method, mask)."""

    scene_id: str
    condition: str  # Condition.name
    method: str  # a model's name, "baseline" or "search"
    mask: str  # mask_name(max_depth): "all" or "max<d>m"
    count: int  # valid pixels under the mask
    depth: dict[str, float]  # DEPTH_METRIC_NAMES -> value (NaN when count is 0)
    aif: dict[str, float]  # AIF_KEYS -> value (NaN outside the main condition)

    def values(self) -> list[Any]:
        """The row in IMAGE_COLUMNS order."""
        return [self.scene_id, self.condition, self.method, self.mask, self.count,
                *(self.depth[k] for k in DEPTH_METRIC_NAMES), *(self.aif[k] for k in AIF_KEYS)]


def to_columns(rows: Sequence[ImageRow]) -> dict[str, np.ndarray]:
    """{column: array} in IMAGE_COLUMNS order (the text columns as object arrays)."""
    values = [row.values() for row in rows]
    return {c: np.array([v[j] for v in values], dtype=object if c in _TEXT_COLUMNS else None) for j, c in enumerate(IMAGE_COLUMNS)}


def from_columns(columns: dict[str, np.ndarray]) -> list[ImageRow]:
    """The inverse of to_columns (Python str, int and float values)."""
    return [
        ImageRow(
            *(str(columns[c][i]) for c in _TEXT_COLUMNS),
            int(columns["count"][i]),
            {k: float(columns[k][i]) for k in DEPTH_METRIC_NAMES},
            {k: float(columns[k][i]) for k in AIF_KEYS},
        )
        for i in range(len(columns["scene_id"]))
    ]


@dataclasses.dataclass(frozen=True)
class Aggregate:
    """The depth metrics of one (condition, method, mask), reduced two ways, and its mean AIF metrics."""

    image: dict[str, float]  # DEPTH_METRIC_NAMES -> mean over images
    pixel: dict[str, float]  # DEPTH_METRIC_NAMES -> over all valid pixels pooled
    aif: dict[str, float]  # AIF_KEYS -> mean over images with a finite value


def aggregate(rows: Sequence[ImageRow], condition: str, method: str, mask: str) -> Aggregate:
    chosen = [r for r in rows if r.condition == condition and r.method == method and r.mask == mask]
    counted = [r for r in chosen if r.count > 0]
    aif = {k: _mean([r.aif[k] for r in chosen]) for k in AIF_KEYS}
    if not counted:
        nan = {key: math.nan for key in DEPTH_METRIC_NAMES}
        return Aggregate(nan, dict(nan), aif)
    counts = np.array([float(r.count) for r in counted])
    image, pixel = {}, {}
    for key in DEPTH_METRIC_NAMES:
        values = np.array([r.depth[key] for r in counted])
        image[key] = float(values.mean())
        if key in SQUARED_KEYS:
            pixel[key] = float(np.sqrt((counts * values**2).sum() / counts.sum()))
        else:
            pixel[key] = float((counts * values).sum() / counts.sum())
    return Aggregate(image, pixel, aif)


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v == v]
    return float(np.mean(finite)) if finite else math.nan


def method_sections(rows: Sequence[ImageRow], methods: Sequence[tuple[str, str]], masks: Sequence[float | None]) -> dict[str, dict[str, Any]]:
    """{method: {"source", "image", "pixel", "aif", then "image_<mask>", "pixel_<mask>" per max depth}} on
    the main condition, for (name, source) `methods`; `masks` starts with None (all valid pixels)."""
    sections: dict[str, dict[str, Any]] = {}
    for method, source in methods:
        section: dict[str, Any] = {"source": source}
        for max_depth in masks:
            values = aggregate(rows, "main", method, mask_name(max_depth))
            section[variant_name("image", mask_name(max_depth))] = values.image
            section[variant_name("pixel", mask_name(max_depth))] = values.pixel
            if max_depth is None:
                section["aif"] = values.aif
        sections[method] = section
    return sections


@dataclasses.dataclass(frozen=True)
class GeneralisationRow:
    """Image-mean depth metrics of one method under one condition of the generalisation study."""

    study: str  # "stack_size" | "focus_set"
    condition: str  # Condition.name ("main" for a stack size equal to the main stack)
    x: float  # the stack size (an int), or the mean focus distance [m]
    focus_distances: tuple[float, ...]
    method: str
    depth: dict[str, float]  # DEPTH_METRIC_NAMES -> image mean

    def values(self) -> list[Any]:
        """The row in GENERALISATION_COLUMNS order."""
        focus = ",".join(f"{f:g}" for f in self.focus_distances)
        return [self.study, self.condition, self.x, focus, self.method, self.depth["delta1"],
                *(self.depth[k] for k in DEPTH_METRIC_NAMES if k != "delta1")]

    def record(self) -> dict[str, Any]:
        """The row as metrics.json's generalisation.rows holds it."""
        return {"study": self.study, "condition": self.condition, "x": self.x, "focus_distances": list(self.focus_distances),
                "method": self.method, **self.depth}


def generalisation_rows(
    rows: Sequence[ImageRow], conditions: Sequence[Condition], by_size: dict[int, str], methods: Sequence[str]
) -> list[GeneralisationRow]:
    """The stack sizes (in `by_size` order), then the focus sets, each for every method."""
    condition_of = {c.name: c for c in conditions}
    studies = [("stack_size", size, name) for size, name in by_size.items()]
    studies += [("focus_set", c.x, c.name) for c in conditions if c.study == "focus_set"]
    return [
        GeneralisationRow(study, name, x, condition_of[name].focus_distances, method, aggregate(rows, name, method, "all").image)
        for study, x, name in studies
        for method in methods
    ]
