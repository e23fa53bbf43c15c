"""Depth from a captured-like focal stack that our renderer did not make: a 9x9 light field refocused by shift-and-add.

Builds one 320x240 scene of fronto-parallel textured planes (a back plane at 7 m, cards at 1.2, 2.0 and
3.2 m; tests/helpers/lightfield.py), refocuses it at NYUv2-5's focus distances (1, 1.5, 2.5, 4, 6 m),
writes it as a `focal-stack-folder` input (depth.npy, the centre pinhole view as aif.png), stores it with
`render_store` (local Ray) and prints the depth metrics (`daif.metrics.depth_metrics`, all pixels) of the
analytic baseline (`daif.baseline.depth_from_focus`) and the defocus search (`daif.search.defocus_search`,
near/far 0.75 / 7.5 m) on the stored stack; then the same two on the stack our Gaussian renderer makes
from the same AIF and depth with the same camera, for comparison.

The light field is chosen to blur like the nyuv2-5 camera (f = 50 mm, N = 8, p = 12 um): F = f / p =
4167 px and b = A / (n - 1) = 6.25 mm / 8 = 0.781 mm, so the synthetic aperture's width (n - 1) F b
|1/s - 1/d| px equals the thin lens's c / p up to s / (s - f) (<= 5 %) and the equivalent camera is
exactly nyuv2-5's. Its PSF is a 9x9 grid of points, not a Gaussian.

`--views N --aperture disc` makes the light field of a round aperture sampled densely enough (N = 25: points
at most 0.9 px apart in this scene) that its blur is a smooth spread like a lens's, not the 9x9 grid's ghosts.
`--model M` (repeatable: a checkpoint folder or an MLflow model URI) adds each DAIF-Net model's row;
`--kernel-size K` sets the window of the search and of the models' cost volume (default: the store's, 7);
`--intensity-weight W` the search's error (`daif.search`, step 3; default the search's; a model keeps its own).
Besides each plane's delta1, the back plane's is split into the pixels within EDGE px of a card (where a
blurred card spreads over the sharp background in the far-focused images: occlusion) and the rest.

    python benchmarks/lightfield.py [--out benchmarks/results/lightfield.json] [--work DIR] [--seed S]
        [--views N] [--aperture square|disc] [--kernel-size K] [--intensity-weight W] [--model M ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers.lightfield

FOCUS = (1.0, 1.5, 2.5, 4.0, 6.0)
FOCAL_LENGTH, F_NUMBER, PIXEL_SIZE = 50e-3, 8.0, 12e-6  # nyuv2-5
SIZE = (240, 320)
DEPTHS = (7.0, 3.2, 2.0, 1.2)  # far to near: back plane, then cards
RECTS = (None, (20, 130, 170, 300), (90, 210, 30, 170), (140, 225, 200, 305))
SEARCH_RANGE = (0.75, 7.5)
EDGE = 10  # px: the back plane's band around the cards


def methods(
    stack: np.ndarray, focus: np.ndarray, camera, depth: np.ndarray, kernel_size: int, models: dict | None = None,
    intensity_weight: float | None = None,
) -> dict[str, dict[str, float]]:
    """Depth metrics of the baseline, the search and `models` ({name: DAIFNet}) on one (F, H, W, 3) uint8 stack
    against `depth` (H, W)."""
    from daif.baseline import depth_from_focus
    from daif.metrics import depth_metrics
    from daif.search import defocus_search

    images = torch.from_numpy(stack).permute(0, 3, 1, 2)[None].float() / 255  # (1, F, 3, H, W)
    focus_t = torch.from_numpy(focus)
    truth = torch.from_numpy(depth)[None, None]
    back = truth == np.float32(DEPTHS[0])
    near_card = F.max_pool2d((~back).float(), 2 * EDGE + 1, stride=1, padding=EDGE) > 0
    bands = {f"within {EDGE} px of a card": back & near_card, "beyond": back & ~near_card}
    rows = {}
    weight = {} if intensity_weight is None else {"intensity_weight": intensity_weight}
    predictors = {"baseline": lambda: depth_from_focus(images, focus_t, camera)[0],
                  "search": lambda: defocus_search(images, focus_t, camera, *SEARCH_RANGE, kernel_size=kernel_size, **weight)}
    for name, model in (models or {}).items():
        predictors[name] = lambda model=model: model(images, focus_t.float(), camera)[1]
    for name, predict in predictors.items():
        started = time.perf_counter()
        with torch.no_grad():
            predicted = predict()
        seconds = time.perf_counter() - started
        by_plane = {f"{d:g} m": depth_metrics(predicted, truth, truth == np.float32(d))["delta1"] for d in DEPTHS}
        median = {f"{d:g} m": float(predicted[truth == np.float32(d)].median()) for d in DEPTHS}
        back_plane = {band: depth_metrics(predicted, truth, mask)["delta1"] for band, mask in bands.items()}
        rows[name] = {**depth_metrics(predicted, truth), "seconds": seconds, "delta1_by_plane": by_plane,
                      "median_by_plane": median, "back_plane_delta1": back_plane}
    return rows


def main() -> None:
    from tests.helpers.lightfield import LightFieldScene, light_field_stack, write_captured_scene

    from daif.data.pipeline import render_store
    from daif.data.store import open_store
    from daif.images import to_float_chw
    from daif.optics import ThinLensCamera, render_focal_stack_uint8

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/lightfield.json")
    parser.add_argument("--work", help="folder for the input and the store (default a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--views", type=int, default=9, help="views per side, odd (default 9)")
    parser.add_argument("--aperture", choices=("square", "disc"), default="square")
    parser.add_argument("--model", action="append", default=[], help="a DAIF-Net model to evaluate as well")
    parser.add_argument("--kernel-size", type=int, help="window of the search and the models' cost volume (default the store's)")
    parser.add_argument("--intensity-weight", type=float, help="w of the search's error w |r| + (1 - w) |grad r| (default the search's)")
    args = parser.parse_args()
    from daif.model_io import load_model

    models = {f"daif-net {k} (w {net.cost_intensity_weight:g})": net for k, source in enumerate(args.model) for net in [load_model(source)[0].eval()]}
    baseline = FOCAL_LENGTH / F_NUMBER / (args.views - 1)  # b = A / (n - 1)
    torch.set_num_threads(2)

    work = Path(args.work or tempfile.mkdtemp(prefix="daif-lightfield-"))
    started = time.perf_counter()
    scene = LightFieldScene(SIZE, DEPTHS, RECTS, seed=args.seed)
    captured = light_field_stack(scene, FOCUS, FOCAL_LENGTH, PIXEL_SIZE, baseline, args.views, args.aperture)
    build_seconds = time.perf_counter() - started
    write_captured_scene(work / "input" / "test" / "planes", captured, aif=True)

    import ray

    ray.init(num_cpus=2, object_store_memory=400 << 20, include_dashboard=False)
    summary = render_store(out=str(work / "store"), source="focal-stack-folder", input=str(work / "input"), split="test")
    ray.shutdown()
    store = open_store(str(work / "store"))
    stored = next(store.iter_scenes("test"))
    assert np.array_equal(stored["stack"], captured.images), "the store must hold the refocused images as given"
    camera = store.camera
    assert np.allclose(list(camera.to_dict().values()), list(ThinLensCamera(FOCAL_LENGTH, F_NUMBER, PIXEL_SIZE).to_dict().values()))

    window = args.kernel_size or store.kernel_size
    for model in models.values():
        model.kernel_size = window  # the window of the "search" head's cost volume (DAIFNet.kernel_size)
    rendered = render_focal_stack_uint8(
        to_float_chw(captured.aif), torch.from_numpy(captured.depth)[None],
        torch.tensor(FOCUS, dtype=torch.float32), camera, store.kernel_size,
    ).numpy()
    results = {
        "light_field": methods(stored["stack"], store.focus_distances, camera, stored["depth"], window, models, args.intensity_weight),
        "gaussian_renderer": methods(rendered, store.focus_distances, camera, stored["depth"], window, models, args.intensity_weight),
    }
    share = {f"{d:g} m": float((captured.depth == np.float32(d)).mean()) for d in DEPTHS}
    record = {
        "size": list(SIZE), "views": args.views, "aperture": args.aperture, "models": args.model, "seed": args.seed,
        "focal_px": FOCAL_LENGTH / PIXEL_SIZE, "baseline_m": baseline,
        "focus_distances": list(FOCUS), "depths": list(DEPTHS), "pixel_share": share, "camera": camera.to_dict(),
        "kernel_size": store.kernel_size, "search_kernel_size": window, "search_intensity_weight": args.intensity_weight, "search_range": list(SEARCH_RANGE), "build_seconds": build_seconds,
        "store_seconds": summary["seconds"], "results": results,
    }
    print(f"light field {args.views}x{args.views} ({args.aperture}), {SIZE[1]}x{SIZE[0]}, F = {FOCAL_LENGTH / PIXEL_SIZE:.0f} px, "
          f"b = {baseline * 1e3:.3f} mm; "
          f"built in {build_seconds:.1f} s, stored in {summary['seconds']:.1f} s; pixel share {share}")
    keys = ("delta1", "delta2", "delta3", "abs_rel", "rmse", "rmse_log10")
    print("| stack | method | " + " | ".join(keys) + " | seconds |")
    print("|---|---|" + "---|" * (len(keys) + 1))
    for stack_name, rows in results.items():
        for method, values in rows.items():
            print(f"| {stack_name} | {method} | " + " | ".join(f"{values[k]:.3f}" for k in keys) + f" | {values['seconds']:.2f} |")
    for stack_name, rows in results.items():
        for method, values in rows.items():
            planes = ", ".join(f"{d}: delta1 {values['delta1_by_plane'][d]:.3f}, median {values['median_by_plane'][d]:.2f} m" for d in share)
            bands = ", ".join(f"{band} {value:.3f}" for band, value in values["back_plane_delta1"].items())
            print(f"{stack_name} {method} by plane: {planes}; back plane {bands}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
