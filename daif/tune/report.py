"""What a search writes: table.csv, table.md, heatmap.png (Table 4's layout) and best.yaml. No Ray here.

A row per trial: the searched keys by their config names, status, the final and best validation metric (the
search's ranking metric), `delta1`: the validation delta1 of the checkpoint that metric selected (measured where
the store has depth, never used to rank), `depth_gain` (the collapse test's reading, daif.tune.trial.depth_gain;
empty where the test did not run), epochs run, seconds, the MLflow run and, for errors, the message. Cells of
diverged, collapsed and errored trials show "-", as the paper's Table 4 does; pruned trials keep their (partial)
values.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daif.files import write_text_atomic

FAILED = ("diverged", "collapsed", "error")


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def shown(row: dict[str, Any], column: str) -> str:
    """A cell as the tables show it: "-" for a failed trial's metrics."""
    value = row.get(column)
    if column in ("final", "best", "delta1") and row["status"] in FAILED:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def columns(keys: Sequence[str]) -> list[str]:
    return ["trial_id", *keys, "status", "final", "best", "delta1", "depth_gain", "epochs", "seconds", "run_id", "message"]


def write_csv(rows: list[dict[str, Any]], keys: Sequence[str], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(keys), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns(keys)})
    return write_text_atomic(path, buffer.getvalue())


def best_row(rows: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """The complete (not pruned, not failed) trial with the best best-metric."""
    sign = 1.0 if mode == "max" else -1.0
    candidates = [r for r in rows if r["status"] == "complete" and math.isfinite(_number(r.get("best")))]
    return max(candidates, key=lambda r: sign * r["best"]) if candidates else None


def grid_axes(rows: list[dict[str, Any]], keys: Sequence[str]) -> tuple[list[Any], list[Any]] | None:
    """(column values, row values) of a two-key space with few distinct values per key, else None."""
    if len(keys) != 2:
        return None
    axes = [sorted({r[k] for r in rows if r.get(k) is not None}) for k in keys]
    if not all(axes) or any(len(a) > 12 for a in axes):
        return None
    return axes[0], axes[1]


def cell_value(rows: list[dict[str, Any]], keys: Sequence[str], x: Any, y: Any, mode: str,
               column: str = "best") -> tuple[str, float]:
    """The cell's `column` ("best", or "delta1": that of its best trial), or "-" when every trial there failed
    ("" when none ran)."""
    cell = [r for r in rows if r.get(keys[0]) == x and r.get(keys[1]) == y and r["status"] not in FAILED]
    cell_ran = any(r.get(keys[0]) == x and r.get(keys[1]) == y for r in rows)
    scored = [r for r in cell if math.isfinite(_number(r.get("best")))]
    if not scored:
        return ("-" if cell_ran else ""), float("nan")
    best = (max if mode == "max" else min)(scored, key=lambda r: _number(r.get("best")))
    value = _number(best.get(column))
    return (f"{value:.3f}", value) if math.isfinite(value) else ("nan", value)


def has_delta1(rows: list[dict[str, Any]], metric: str) -> bool:
    """Whether the rows carry a measured delta1 beside a different ranking metric (a second table and map)."""
    return metric != "val/delta1" and any(math.isfinite(_number(r.get("delta1"))) for r in rows if r["status"] not in FAILED)


def _grid(rows: list[dict[str, Any]], keys: Sequence[str], mode: str, column: str) -> list[str]:
    xs, ys = grid_axes(rows, keys)
    lines = [f"| {keys[1]} \\ {keys[0]} | " + " | ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in xs) + " |",
             "|---|" + "---|" * len(xs)]
    for y in ys:
        cells = [cell_value(rows, keys, x, y, mode, column)[0] for x in xs]
        lines.append((f"| {y:g} | " if isinstance(y, float) else f"| {y} | ") + " | ".join(cells) + " |")
    return lines + [""]


def markdown(rows: list[dict[str, Any]], keys: Sequence[str], metric: str, mode: str, title: str) -> str:
    lines = [f"# {title}", "", f"Metric: `{metric}` ({mode}) on the validation split; \"-\": the trial failed to train "
             "(diverged, collapsed or error).", ""]
    if grid_axes(rows, keys) is not None:
        lines += _grid(rows, keys, mode, "best")
        if has_delta1(rows, metric):
            lines += [f"Validation delta1 of the checkpoint `{metric}` selected (measured with the depth ground truth; it "
                      "ranks nothing):", ""] + _grid(rows, keys, mode, "delta1")
    header = columns(keys)[:-2]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(shown(row, c) for c in header) + " |")
    errors = [r for r in rows if r.get("message")]
    if errors:
        lines += ["", "Messages:"] + [f"- {r['trial_id']} ({r['status']}): {r['message']}" for r in errors]
    return "\n".join(lines) + "\n"


def heatmap(rows: list[dict[str, Any]], keys: Sequence[str], metric: str, mode: str, path: Path, title: str,
            column: str = "best") -> Path | None:
    """Table 4's layout: columns the first key, rows the second, per cell the `column` of its best trial by the
    ranking metric ("best": that metric; "delta1": the measured delta1), "-" where it failed.
    A two-key space of continuous values is drawn as a scatter instead. None for other spaces."""
    shade = "max" if column == "delta1" else mode  # the colour scale: bright is good
    if len(keys) != 2:
        return None
    import matplotlib.pyplot as plt
    import numpy as np

    from daif.viz import save_figure

    axes = grid_axes(rows, keys)
    figure, axis = plt.subplots(figsize=(1.4 + 1.2 * (len(axes[0]) if axes else 4), 1.2 + 0.9 * (len(axes[1]) if axes else 4)))
    if axes is not None:
        xs, ys = axes
        values = np.full((len(ys), len(xs)), np.nan)
        labels = [["" for _ in xs] for _ in ys]
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                labels[i][j], values[i, j] = cell_value(rows, keys, x, y, mode, column)
        axis.set_facecolor("lightgrey")  # failed (masked) cells
        image = axis.imshow(np.ma.masked_invalid(values), cmap="viridis" if shade == "max" else "viridis_r", aspect="auto")
        for i in range(len(ys)):
            for j in range(len(xs)):
                bright = np.isnan(values[i, j]) or image.norm(values[i, j]) > (0.6 if shade == "max" else -1.0)
                axis.text(j, i, labels[i][j], ha="center", va="center", fontsize=14 if labels[i][j] == "-" else 11,
                          color="black" if bright else "white")
        axis.set_xticks(range(len(xs)), [f"{x:g}" if isinstance(x, float) else str(x) for x in xs])
        axis.set_yticks(range(len(ys)), [f"{y:g}" if isinstance(y, float) else str(y) for y in ys])
    else:
        good = [r for r in rows if r["status"] not in FAILED and math.isfinite(_number(r.get("best")))]
        bad = [r for r in rows if r["status"] in FAILED]
        image = axis.scatter([r[keys[0]] for r in good], [r[keys[1]] for r in good], c=[_number(r.get(column)) for r in good],
                             cmap="viridis")
        for r in bad:
            axis.text(r[keys[0]], r[keys[1]], "-", ha="center", va="center", fontsize=14, color="red")
        for setter, key in ((axis.set_xscale, keys[0]), (axis.set_yscale, keys[1])):
            if all(_number(r.get(key)) > 0 for r in rows):
                setter("log")
    axis.set_xlabel(keys[0])
    axis.set_ylabel(keys[1])
    axis.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axis, label=metric if column == "best" else f"val/delta1 at the {metric} checkpoint (measured)")
    return save_figure(figure, path)


def write_outputs(rows: list[dict[str, Any]], keys: Sequence[str], metric: str, mode: str, out: Path,
                  best_yaml: str | None, title: str) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table_csv": write_csv(rows, keys, out / "table.csv"),
             "table_md": write_text_atomic(out / "table.md", markdown(rows, keys, metric, mode, title))}
    figure = heatmap(rows, keys, metric, mode, out / "heatmap.png", title)
    if figure is not None:
        paths["heatmap"] = figure
        if has_delta1(rows, metric):
            paths["heatmap_delta1"] = heatmap(rows, keys, metric, mode, out / "heatmap_delta1.png", title, "delta1")
    if best_yaml is not None:
        paths["best_yaml"] = write_text_atomic(out / "best.yaml", best_yaml)
    return paths
