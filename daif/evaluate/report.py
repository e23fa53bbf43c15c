"""The files of an evaluation, each written atomically: metrics.json, metrics.csv, metrics.md,
per_image.csv, generalisation.csv, generalisation.png (and generalisation_focus.png with focus sets)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daif.evaluate.plan import label_of
from daif.evaluate.rows import AIF_KEYS, GENERALISATION_COLUMNS, IMAGE_COLUMNS, GeneralisationRow, ImageRow
from daif.metrics import DEPTH_METRIC_NAMES
from daif.files import write_text_atomic

TABLE_KEYS = ("delta1", "delta2", "delta3", "rmse", "abs_rel", "sq_rel", "rmse_log10")  # the columns of metrics.md


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _fmt(value: float) -> str:
    return "nan" if value != value else f"{value:.4f}"


def markdown_table(methods: dict[str, dict[str, Any]], variant: str, keys: Sequence[str] = TABLE_KEYS) -> str:
    header = ["method", *keys]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, section in methods.items():
        lines.append("| " + " | ".join([label_of(name), *(_fmt(section[variant][k]) for k in keys)]) + " |")
    return "\n".join(lines)


def markdown_report(result: dict[str, Any]) -> str:
    """metrics.md: one table of depth metrics per variant of `result` (metrics.json's content), then one of the
    image metrics (AIF_KEYS)."""
    focus = result["stack"]["focus_distances"]
    parts = [f"Depth metrics on split '{result['split']}' of {result['data']} ({result['scenes']} scenes, "
             f"stack of {len(focus)} at {', '.join(f'{f:g}' for f in focus)} m)."]
    for variant in result["variants"]:
        reduction, _, mask = variant.partition("_")
        title = "mean over images" if reduction == "image" else "all pixels pooled"
        if mask:
            title += f", ground truth < {mask[3:]}"
        parts += ["", f"### {variant}: {title}", "", markdown_table(result["methods"], variant)]
    parts += ["", "### images: the AIF's psnr and ssim (against the true AIF), mg and sf, and recon, the error of the stack "
                  f"re-rendered from the method's AIF and depth through a {result['recon_psf']} PSF, and detail, the "
                  "same re-rendering's contrast-normalised high-pass error (no ground truth: lower fits the stack "
                  "better); means over images", "", markdown_table(result["methods"], "aif", AIF_KEYS)]
    return "\n".join(parts) + "\n"


def metrics_table(result: dict[str, Any]) -> list[list[Any]]:
    """metrics.csv's rows: one per (method, variant), the depth metrics then the method's AIF metrics."""
    return [
        [name, section["source"], variant, *(section[variant][k] for k in DEPTH_METRIC_NAMES), *(section["aif"][k] for k in AIF_KEYS)]
        for name, section in result["methods"].items()
        for variant in result["variants"]
    ]


def _delta1_series(rows: Sequence[GeneralisationRow], study: str, methods: Sequence[str]) -> dict[str, tuple[list, list]]:
    """{label: (x values, delta1 values)} of one study, per method."""
    chosen = [r for r in rows if r.study == study]
    return {label_of(m): ([r.x for r in chosen if r.method == m], [r.depth["delta1"] for r in chosen if r.method == m]) for m in methods}


def generalisation_outputs(methods: Sequence[str], rows: Sequence[GeneralisationRow], out: Path) -> dict[str, Path]:
    """generalisation.png (delta1 vs stack size), generalisation_focus.png (vs focus set, when there are
    any) and generalisation.csv."""
    from daif.viz import line_plot, save_figure

    series = _delta1_series(rows, "stack_size", methods)
    figure = line_plot(series, "number of test images (middles of equal bins)", "delta1", "delta1 vs test stack size")
    paths = {"generalisation_png": save_figure(figure, out / "generalisation.png")}
    if any(r.study == "focus_set" for r in rows):
        series = _delta1_series(rows, "focus_set", methods)
        figure = line_plot(series, "mean focus distance of the test stack [m]", "delta1", "delta1 vs focus-distance set")
        paths["generalisation_focus_png"] = save_figure(figure, out / "generalisation_focus.png")
    text = _csv_text(GENERALISATION_COLUMNS, [r.values() for r in rows])
    paths["generalisation_csv"] = write_text_atomic(out / "generalisation.csv", text)
    return paths


def write_outputs(result: dict[str, Any], per_image: Sequence[ImageRow], generalisation: Sequence[GeneralisationRow], out: Path) -> dict[str, Path]:
    """Every file into `out` (created); returns {file key: path}."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics_json": write_text_atomic(out / "metrics.json", json.dumps(result, indent=1, allow_nan=True) + "\n")}
    header = ["method", "source", "variant", *DEPTH_METRIC_NAMES, *AIF_KEYS]
    paths["metrics_csv"] = write_text_atomic(out / "metrics.csv", _csv_text(header, metrics_table(result)))
    paths["metrics_md"] = write_text_atomic(out / "metrics.md", markdown_report(result))
    per_image_text = _csv_text(IMAGE_COLUMNS, [r.values() for r in per_image])
    paths["per_image_csv"] = write_text_atomic(out / "per_image.csv", per_image_text)
    paths.update(generalisation_outputs(list(result["methods"]), generalisation, out))
    return paths
