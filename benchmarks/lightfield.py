"""A real-optics benchmark with strong blur: light fields of procedural scenes refocused by shift-and-add (issue 27).

Scenes (daif/data/lightfield.py, each drawn from a seed, nothing downloaded), all inside 1..8 m:
- "planes": fronto-parallel cards at 3.2, 2.0 and 1.2 m over a back plane at 7 m (entry 12's layout, scaled);
- "receding": a floor or wall receding from about 1 m to about 8 m (continuous depth), part of it barely
  textured, with a bust and a post in front of it (occluding edges);
- "occluders": cards, discs and thin bars at 1..3.5 m over a textured background at 5.5..8 m.
Each is seen by an n x n grid of pinhole views (n = VIEWS) with a "square" aperture (all of them) or a "disc"
(those inside the inscribed circle), each view's rays cast against the scene's planes and composited front to
back, so occlusion is the light field's own: a blurred near edge spreads over the background behind it.
A refocused image is the mean of the views' rays at shift delta = F b / s, so a point's blur is the aperture's
shape, (n - 1) F b |1/s - 1/d| px wide (daif/data/lightfield.py).

Camera: nyuv2-5's lens (f = 50 mm, p = 12 um) at half its resolution, 160 x 120 (p = 24 um), opened from
f/8 to f/4.8 so that the largest blur of the depth range at NYUv2-5's focus distances (1, 1.5, 2.5, 4, 6 m)
is sigma = c / (2 p) = 10 px (8 m seen at 1 m; 1 m seen at 6 m gives 9.1 px). The light field's aperture
(n - 1) b = f / N is that camera's (the side of the square, the diameter of the disc); with n = 17 its views
are at most 20 / 16 = 1.25 px apart in the image, so the blur is a near-continuous spread, not ghosts.

Methods, each on every stack: the analytic baseline (`daif.baseline.depth_from_focus`, whose depth stays
inside the focus distances, 1..6 m), the defocus search (`daif.search.defocus_search`, 24 candidates over
0.8..10 m) with the renderer's window K = 7 and without a window (kernel_size None), and each `--model`
(a checkpoint folder, an MLflow model URI or "pretrained"; its own window), with `--refine` also each model refined
on each stack (`daif.refine`). Metrics (`daif.metrics`, all pixels): delta1, AbsRel, RMSE; besides, delta1 on the pixels within EDGE px of a depth edge, on the barely
textured ones, and on those up to and beyond the last focus distance (6 m; the baseline, its depth confined to
the focus distances, reads at most 6 m).

`--controls` adds, for the disc, the same methods on the stacks that `daif.optics.render_stack` makes from the
light field's centre view and depth ("renderer gaussian": the search's own PSF model without a window;
"renderer layered disc": a round aperture with partial occlusion, daif's independent model of this light field).

Seeds: DEV_SEEDS are the ones to look at while building or tuning anything; REPORTED_SEEDS, disjoint, are
the default and the only ones whose figures are reported. The output is one JSON (rows per scene x aperture
x seed x method, and the means over seeds) and markdown tables of the means.

    python benchmarks/lightfield.py [--seeds reported|dev|S,S,...] [--scenes planes,receding,occluders]
        [--apertures square,disc] [--views N] [--model M ...] [--refine STEPS] [--controls] [--out FILE] [--figure PNG] [--smoke-test]

`--figure PNG` also draws every method's depth on the first seed of each scene family (disc aperture where it is
run) beside the centre view and the true depth, on one log-depth colour scale.

`--export DIR` writes the chosen seeds' light-field stacks instead, as `daif render --source focal-stack-folder`
reads them (DIR/train/<scene>-<seed>-<aperture>/: the five PNGs, stack.json with the camera, depth.npy for
measurement only), and evaluates nothing: captured stacks of "a new camera" for self-supervised fine-tuning
(issue 27, goal 5). Reported seeds are refused there.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from daif.data.lightfield import SCENE_DEPTH_RANGE, SCENE_FAMILIES, aperture_views, surface_light_field_stack, write_captured_scene
from daif.optics import ThinLensCamera, defocus_sigma, max_defocus_sigma

SIZE = (120, 160)  # (H, W)
FOCUS = (1.0, 1.5, 2.5, 4.0, 6.0)  # NYUv2-5's focus distances, metres
FOCAL_LENGTH, F_NUMBER, PIXEL_SIZE = 50e-3, 4.8, 24e-6  # module docstring: the largest sigma is 10 px
VIEWS = 17
APERTURES = ("square", "disc")
SEARCH_RANGE = (0.8, 10.0)  # metres: the candidates cover SCENE_DEPTH_RANGE with a margin
SEARCH_WINDOWS = {"search K=7": 7, "search no window": None}
EDGE = 4  # px: the band around depth edges (neighbours whose depths differ by more than EDGE_RATIO)
EDGE_RATIO = 1.1
DEV_SEEDS = (0, 1, 2)
REPORTED_SEEDS = (100, 101, 102, 103, 104)
METRICS = ("delta1", "abs_rel", "rmse")
MASKS = ("edges", "weak", "within_focus", "beyond_focus")  # delta1 is also reported on these pixels (run_stack)
SMOKE_SIZE, SMOKE_VIEWS = (40, 56), 5
CONTROLS = {"renderer gaussian": {"psf": "gaussian", "kernel_size": None}, "renderer layered disc": {"psf": "layered"}}


def light_field_baseline(views: int) -> float:
    """View spacing b [m]: the n x n grid spans the camera's aperture f / N."""
    return FOCAL_LENGTH / F_NUMBER / (views - 1)


def canvas_pad(views: int) -> int:
    """Canvas border [px] that holds every ray of the scenes: the largest half-width of the blur, plus a margin."""
    focal_baseline = FOCAL_LENGTH / PIXEL_SIZE * light_field_baseline(views)
    worst = max(abs(1 / d - 1 / s) for d in SCENE_DEPTH_RANGE for s in FOCUS)
    return math.ceil(views // 2 * focal_baseline * worst) + 4


def edge_band(depth: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels within EDGE px of a pair of neighbours whose depths differ by more than EDGE_RATIO."""
    log_depth = np.log(depth)
    jump = np.zeros(depth.shape, bool)
    for axis in (0, 1):
        step = np.abs(np.diff(log_depth, axis=axis)) > math.log(EDGE_RATIO)
        before = [(0, 1) if a == axis else (0, 0) for a in (0, 1)]
        after = [(1, 0) if a == axis else (0, 0) for a in (0, 1)]
        jump |= np.pad(step, before) | np.pad(step, after)
    band = F.max_pool2d(torch.from_numpy(jump).float()[None, None], 2 * EDGE + 1, stride=1, padding=EDGE)[0, 0] > 0
    return band.numpy()


def predictors(camera: ThinLensCamera, models: dict, refine_steps: int = 0) -> dict:
    """{method name: function (stack (1, S, 3, H, W), focus (S,)) -> depth (1, 1, H, W) metres}. With
    `refine_steps`, each model also as "<name> refined": `daif.refine.refine` on each stack (at most that many steps)."""
    from daif.refine import RefineConfig, refine
    from daif.baseline import depth_from_focus
    from daif.search import defocus_search

    methods = {"baseline": lambda stack, focus: depth_from_focus(stack, focus, camera)[0]}
    for name, window in SEARCH_WINDOWS.items():
        methods[name] = lambda stack, focus, window=window: defocus_search(stack, focus, camera, *SEARCH_RANGE, kernel_size=window)
    for name, model in models.items():
        methods[name] = lambda stack, focus, model=model: model(stack, focus, camera)[1]
        if refine_steps:
            config = RefineConfig(steps=refine_steps)
            methods[f"{name} refined"] = lambda stack, focus, model=model: refine(model, stack, focus, camera, config)[1]
    return methods


def scores(predicted: torch.Tensor, depth: np.ndarray, masks: dict[str, np.ndarray]) -> dict:
    """METRICS over all pixels and delta1 over each mask (None where a mask is empty)."""
    from daif.metrics import depth_metrics

    truth = torch.from_numpy(depth)[None, None]
    row = {key: value for key, value in depth_metrics(predicted, truth).items() if key in METRICS}
    for name, mask in masks.items():
        row[f"delta1_{name}"] = depth_metrics(predicted, truth, torch.from_numpy(mask)[None, None])["delta1"] if mask.any() else None
    return row


def control_stacks(captured, camera: ThinLensCamera) -> dict[str, torch.Tensor]:
    """{label: (S, 3, H, W) uint8-quantised float stack} that `daif.optics.render_stack` makes from the light
    field's centre view and depth: the controls of the disc aperture (module docstring)."""
    from daif.optics import render_stack

    aif = torch.from_numpy(captured.aif).permute(2, 0, 1).float() / 255
    depth = torch.from_numpy(captured.depth)[None]
    return {label: (render_stack(aif, depth, FOCUS, camera, **options) * 255).round() / 255 for label, options in CONTROLS.items()}


def run_stack(
    scene_name: str, seed: int, aperture: str, size, views: int, methods: dict, camera: ThinLensCamera, controls: bool = False,
    maps: dict | None = None,
) -> list[dict]:
    """The rows of one scene x aperture x seed: one per method (and per control stack, with `controls`, for the
    disc: the method's name followed by the control's in brackets). `maps`, where given, receives the light
    field's centre view ("centre", (H, W, 3) uint8), the true depth ("truth") and each method's depth on the
    light-field stack ((H, W) metres, by method name), for `figure`."""
    started = time.perf_counter()
    scene = SCENE_FAMILIES[scene_name](seed, size, canvas_pad(views))
    captured = surface_light_field_stack(scene, FOCUS, FOCAL_LENGTH, PIXEL_SIZE, light_field_baseline(views), views, aperture)
    render_seconds = time.perf_counter() - started
    depth = captured.depth
    largest = float(defocus_sigma(torch.from_numpy(depth).double()[None, None], FOCUS, camera).max())
    setting = {
        "scene": scene_name, "aperture": aperture, "seed": seed, "render_seconds": render_seconds,
        "depth_range": [float(depth.min()), float(depth.max())], "largest_sigma": largest,
        "max_defocus_sigma": max_defocus_sigma(camera, FOCUS, (float(depth.min()), float(depth.max()))),
    }
    masks = {"edges": edge_band(depth), "weak": scene.weak_map(), "within_focus": depth <= max(FOCUS), "beyond_focus": depth > max(FOCUS)}
    stacks = {"light field": torch.from_numpy(captured.images).permute(0, 3, 1, 2).float() / 255}  # (S, 3, H, W)
    if controls and aperture == "disc":
        stacks.update(control_stacks(captured, camera))
    focus = torch.tensor(FOCUS)
    if maps is not None:
        maps.update(centre=captured.aif, truth=depth)
    rows = []
    for label, stack in stacks.items():
        for method, predict in methods.items():
            started = time.perf_counter()
            with torch.no_grad():
                predicted = predict(stack[None], focus)
            name = method if label == "light field" else f"{method} [{label}]"
            if maps is not None and label == "light field":
                maps[name] = predicted[0, 0].numpy()
            rows.append({**setting, "stack": label, "method": name, "seconds": time.perf_counter() - started, **scores(predicted, depth, masks)})
    return rows


def figure(panels: dict[tuple[str, int, str], dict], rows: list[dict], path: str) -> None:
    """One row per stack in `panels` ({(scene, seed, aperture): run_stack's maps}): the centre view, the true depth, then each
    method's depth on one colour scale (log depth over SCENE_DEPTH_RANGE) with its delta1 / AbsRel from `rows`."""
    from matplotlib.colors import LogNorm

    from daif.viz import DEPTH_CMAP, grid_figure, save_figure

    near, far = SCENE_DEPTH_RANGE
    grid = []
    for label, maps in panels.items():
        scene, seed, aperture = label
        scores_of = {r["method"]: r for r in rows if (r["scene"], r["seed"], r["aperture"], r["stack"]) == (scene, seed, aperture, "light field")}
        row = [{"image": maps["centre"], "title": f"{scene} {seed} {aperture}: centre view"},
               {"map": maps["truth"], "title": "true depth (measures only)"}]
        row += [{"map": maps[name], "title": f"{name}: {scores_of[name]['delta1']:.3f} / {scores_of[name]['abs_rel']:.3f}"}
                for name in maps if name not in ("centre", "truth")]
        for panel in row[1:]:
            panel.update(cmap=DEPTH_CMAP, norm=LogNorm(near, far), label="depth [m]", ticks=(1, 1.5, 2.5, 4, 6, 8))
        grid.append(row)
    save_figure(grid_figure(grid, "light-field suite: depth, delta1 / AbsRel per stack"), path)
    print(f"wrote {path}")


def means(rows: list[dict], keys=("scene", "method", "aperture")) -> list[dict]:
    """Mean over seeds (and over whatever else `keys` leaves out) of every figure, per `keys`; None ignored."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    summary = []
    for key, members in groups.items():
        entry = dict(zip(keys, key), count=len(members))
        for figure in (*METRICS, *(f"delta1_{mask}" for mask in MASKS)):
            values = [m[figure] for m in members if m[figure] is not None]
            entry[figure] = float(np.mean(values)) if values else None
        summary.append(entry)
    return summary


def markdown(summary: list[dict], apertures, figures=METRICS, by_scene: bool = True) -> str:
    """One row per (scene,) method, the figures of each aperture side by side."""
    lookup = {(e.get("scene"), e["method"], e["aperture"]): e for e in summary}
    lines = ["| " + ("scene | " if by_scene else "") + "method | "
             + " | ".join(f"{a} {f}" for a in apertures for f in figures) + " |"]
    lines.append("|---" * (len(figures) * len(apertures) + 1 + by_scene) + "|")
    seen = []
    for entry in summary:
        key = (entry.get("scene"), entry["method"])
        if key in seen:
            continue
        seen.append(key)
        cells = [f"{lookup[(*key, a)][f]:.3f}" if lookup.get((*key, a), {}).get(f) is not None else "-" for a in apertures for f in figures]
        lines.append("| " + (f"{key[0]} | " if by_scene else "") + f"{key[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_seeds(text: str) -> tuple[str, tuple[int, ...]]:
    if text in ("reported", "dev"):
        return text, REPORTED_SEEDS if text == "reported" else DEV_SEEDS
    try:
        return "custom", tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: expected 'reported', 'dev' or integers separated by commas, got {text!r}") from None


def parse_names(choices):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(text.split(","))
        if not names or any(n not in choices for n in names):
            raise argparse.ArgumentTypeError(f"expected names of {choices} separated by commas, got {text!r}")
        return names
    return parse


def export(root: Path, scenes, seeds, apertures, size, views: int) -> None:
    """`--export`: each scene x seed x aperture's light-field stack as a captured scene under root/train."""
    started = time.perf_counter()
    for scene_name in scenes:
        for seed in seeds:
            for aperture in apertures:
                scene = SCENE_FAMILIES[scene_name](seed, size, canvas_pad(views))
                captured = surface_light_field_stack(scene, FOCUS, FOCAL_LENGTH, PIXEL_SIZE, light_field_baseline(views), views, aperture)
                write_captured_scene(root / "train" / f"{scene_name}-{seed}-{aperture}", captured)
        print(f"{scene_name}: {len(seeds) * len(apertures)} stacks written", flush=True)
    print(f"wrote {len(scenes) * len(seeds) * len(apertures)} stacks under {root / 'train'} in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=parse_seeds, default=("reported", REPORTED_SEEDS),
                        help=f"'reported' {REPORTED_SEEDS} (default), 'dev' {DEV_SEEDS}, or S,S,...")
    parser.add_argument("--scenes", type=parse_names(tuple(SCENE_FAMILIES)), default=tuple(SCENE_FAMILIES))
    parser.add_argument("--apertures", type=parse_names(APERTURES), default=APERTURES)
    parser.add_argument("--views", type=int, default=VIEWS, help=f"views per side, odd (default {VIEWS})")
    parser.add_argument("--model", action="append", default=[], help="a DAIF-Net model to evaluate as well (repeatable)")
    parser.add_argument("--refine", type=int, default=0, metavar="STEPS",
                        help="also each --model refined on each stack (daif.refine, at most STEPS steps; default 0: not)")
    parser.add_argument("--controls", action="store_true",
                        help="also the disc's control stacks: daif's renderer (gaussian without a window, layered disc) on the centre view and depth")
    parser.add_argument("--out", help="the JSON (default benchmarks/results/lightfield-suite.json; -dev / -custom for other seeds)")
    parser.add_argument("--figure", metavar="PNG", help="depth maps of every method on each scene family's first seed (disc aperture where run)")
    parser.add_argument("--export", metavar="DIR", help="write the stacks as a focal-stack folder and evaluate nothing (docstring)")
    parser.add_argument("--smoke-test", action="store_true",
                        help=f"seconds: the first dev seed, {SMOKE_SIZE[1]}x{SMOKE_SIZE[0]}, {SMOKE_VIEWS} views; writes only --out (and --figure)")
    args = parser.parse_args()
    seeds_name, seeds = ("dev", DEV_SEEDS[:1]) if args.smoke_test else args.seeds
    size, views = (SMOKE_SIZE, SMOKE_VIEWS) if args.smoke_test else (SIZE, args.views)
    out = args.out or (None if args.smoke_test else f"benchmarks/results/lightfield-suite{'' if seeds_name == 'reported' else '-' + seeds_name}.json")
    if args.export and set(seeds) & set(REPORTED_SEEDS):  # the default seeds are the reported ones
        parser.error(f"--export: seeds {sorted(set(seeds) & set(REPORTED_SEEDS))} are reported seeds; give other --seeds")
    if seeds_name == "custom" and set(seeds) & set(REPORTED_SEEDS):
        print(f"note: seeds {sorted(set(seeds) & set(REPORTED_SEEDS))} are reported seeds; tune nothing on them")
    if args.export:
        export(Path(args.export), args.scenes, seeds, args.apertures, size, views)
        return
    torch.set_num_threads(2)
    from daif.model_io import load_model

    camera = ThinLensCamera(FOCAL_LENGTH, F_NUMBER, PIXEL_SIZE)
    models = {f"daif-net {k}": load_model(source)[0].eval() for k, source in enumerate(args.model)}
    methods = predictors(camera, models, args.refine)
    largest = max_defocus_sigma(camera, FOCUS, SCENE_DEPTH_RANGE)
    print(f"camera f = {FOCAL_LENGTH * 1e3:g} mm, N = {F_NUMBER:g}, p = {PIXEL_SIZE * 1e6:g} um; {size[1]}x{size[0]}; focus {FOCUS} m; "
          f"max_defocus_sigma over {SCENE_DEPTH_RANGE} m: {largest:.2f} px")
    for aperture in args.apertures:
        count = len(aperture_views(views, aperture))
        print(f"aperture {aperture}: {count} views of a {views}x{views} grid, b = {light_field_baseline(views) * 1e3:.3f} mm; "
              f"views at most {2 * largest / (views - 1):.2f} px apart in the image")
    print(f"development seeds {DEV_SEEDS}; reported seeds {REPORTED_SEEDS}; this run: {seeds_name} {seeds}")

    started = time.perf_counter()
    rows, panels = [], {}
    pictured = "disc" if "disc" in args.apertures else args.apertures[0]
    for scene_name in args.scenes:
        for seed in seeds:
            for aperture in args.apertures:
                maps = panels.setdefault((scene_name, seed, aperture), {}) if args.figure and seed == seeds[0] and aperture == pictured else None
                new = run_stack(scene_name, seed, aperture, size, views, methods, camera, args.controls, maps)
                rows.extend(new)
                print(f"{scene_name} seed {seed} {aperture}: depth {new[0]['depth_range'][0]:.2f}..{new[0]['depth_range'][1]:.2f} m, "
                      f"largest sigma {new[0]['largest_sigma']:.2f} px (max_defocus_sigma {new[0]['max_defocus_sigma']:.2f}); "
                      f"rendered in {new[0]['render_seconds']:.1f} s; delta1 "
                      + ", ".join(f"{r['method']} {r['delta1']:.3f}" for r in new), flush=True)
    wall = time.perf_counter() - started
    by_scene, overall = means(rows), means(rows, ("method", "aperture"))
    sigmas = {name: max(r["largest_sigma"] for r in rows if r["scene"] == name) for name in args.scenes}
    print(f"\nlargest sigma per scene family (over its seeds): " + ", ".join(f"{k} {v:.2f} px" for k, v in sigmas.items()))
    print(f"\nmeans over {len(seeds)} {seeds_name} seeds, per scene:\n" + markdown(by_scene, args.apertures))
    print(f"\ndelta1 near depth edges (within {EDGE} px), on barely textured pixels, up to and beyond the last focus distance:\n"
          + markdown(by_scene, args.apertures, tuple(f"delta1_{mask}" for mask in MASKS)))
    print(f"\nmeans over all scenes and {seeds_name} seeds:\n" + markdown(overall, args.apertures, by_scene=False))
    print(f"\nwall time {wall:.0f} s ({wall / 60:.1f} min) for {len(args.scenes) * len(seeds) * len(args.apertures)} light fields")
    if args.figure:
        figure(panels, rows, args.figure)
    if out:
        record = {
            "size": list(size), "views": views, "apertures": list(args.apertures), "scenes": list(args.scenes),
            "seeds": seeds_name, "seed_list": list(seeds), "dev_seeds": list(DEV_SEEDS), "reported_seeds": list(REPORTED_SEEDS),
            "camera": camera.to_dict(), "focus_distances": list(FOCUS), "scene_depth_range": list(SCENE_DEPTH_RANGE),
            "max_defocus_sigma": largest, "largest_sigma_by_scene": sigmas, "search_range": list(SEARCH_RANGE),
            "search_windows": SEARCH_WINDOWS, "models": args.model, "refine_steps": args.refine, "controls": CONTROLS if args.controls else {}, "edge_px": EDGE, "wall_seconds": wall,
            "torch_threads": torch.get_num_threads(), "rows": rows, "means_by_scene": by_scene, "means": overall,
        }
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(record, indent=1))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
