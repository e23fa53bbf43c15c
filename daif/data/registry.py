"""The scene sources by their command-line names (`daif render --source NAME`): the one place that knows them all."""

from __future__ import annotations

from typing import Any

from daif.data.captured import FocalStackFolderSource
from daif.data.folders import DefocusNetSource, RGBDFolderSource
from daif.data.nyuv2 import NYUv2MatSource
from daif.data.sources import Source
from daif.data.synthetic import SyntheticSource

SOURCES = ("nyuv2-mat", "rgbd-folder", "defocusnet", "focal-stack-folder", "synthetic")
CAPTURED_SOURCES = ("focal-stack-folder",)  # stacks stored as given: focus distances, camera and size come from the input


def get_source(name: str, **options: Any) -> Source:
    """Build a source by its CLI name (one of SOURCES) from the render options."""
    if name == "nyuv2-mat":
        return NYUv2MatSource(options["input"], splits_mat=options.get("splits_mat"), limit=options.get("scenes"))
    if name == "rgbd-folder":
        return RGBDFolderSource(options["input"], depth_scale=options.get("depth_scale", 1e4), limit=options.get("scenes"))
    if name == "defocusnet":
        return DefocusNetSource(options["input"], limit=options.get("scenes"))
    if name == "focal-stack-folder":
        return FocalStackFolderSource(options["input"], depth_scale=options.get("depth_scale", 1e4), limit=options.get("scenes"),
                                      align=options.get("align", "scale"))
    if name == "synthetic":
        return SyntheticSource(
            num_scenes=100 if options.get("scenes") is None else options["scenes"],
            seed=options.get("seed", 0),
            size=options["size"],
            depth_range=options["depth_range"],
            test_fraction=options.get("test_fraction", 0.2),
        )
    raise ValueError(f"source: expected one of {', '.join(SOURCES)}, got {name!r}")
