"""Does the re-rendering objective sit at the true depth on real optics? (issue 27, goal 4; a diagnosis)

On the light-field suite's stacks (benchmarks/lightfield.py: a disc or square aperture of views, occlusion the
light field's own), the true all-in-focus image A* (the centre pinhole view) is re-rendered at the stack's focus
distances s_k through a renderer with each candidate depth D, and compared with the captured stack I:

    E(D) = alpha (1 - SSIM(R, I)) + (1 - alpha) |R - I|_1,   R_k = render(A*, sigma(D, s_k)),   alpha = 0.85

and, beside it, the detail term's contrast-normalised high-pass error of the same R (`daif.losses.detail_error_map`;
`loss.detail`) (means over the five images and all pixels; also over the depth-edge band, the barely textured
pixels and those beyond the last focus distance). The
candidates: the true depth D*, the depth-from-focus baseline's and each `--model`'s. If E(D*) > E(D) for a
wrong D, no optimiser of that objective can reach the truth there: the gap is the objective's, not the
training's. Renderers: "gaussian" and "disc" are the ones the recon term can train through (`loss.psf`, both
without a window); "layered disc" is `daif.optics.render_stack`'s occlusion-aware model (depth quantised into
layers, composited front to back with partial occlusion; not differentiable in depth, so not a loss today).

Ground truth here diagnoses the objective; it decides nothing. Development seeds only (the reported ones are
refused).

    python benchmarks/objective_minimum.py [--model M ...] [--seeds 0,1,2] [--apertures disc] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import lightfield as suite
from daif.data.lightfield import SCENE_FAMILIES, surface_light_field_stack
from daif.filters import ssim_map
from daif.losses import detail_error_map
from daif.optics import ThinLensCamera, render_focal_stack
from daif.optics.psf import render_stack

ALPHA = 0.85
RENDERERS = ("gaussian", "disc", "layered disc")
OBJECTIVES = ("recon", "detail")
MASKS = ("all", "edges", "weak", "beyond")  # weak: the barely textured pixels; beyond: depth past the last focus distance


def render(name: str, aif: torch.Tensor, depth: torch.Tensor, focus: torch.Tensor, camera: ThinLensCamera) -> torch.Tensor:
    """(S, 3, H, W): aif (3, H, W) re-rendered with depth (1, H, W) metres at `focus` (S,) through renderer `name`."""
    if name == "layered disc":
        return render_stack(aif, depth, focus, camera, "layered", kernel_size=None)
    return render_focal_stack(aif[None], depth[None], focus, camera, None, name)[0]


def error_maps(rendered: torch.Tensor, stack: torch.Tensor) -> dict[str, torch.Tensor]:
    """{objective: (H, W)}: per pixel, the recon term's photometric error ("recon", mean over the images and
    channels) and the detail term's ("detail", `daif.losses.detail_error_map`)."""
    recon = (ALPHA * (1 - ssim_map(rendered, stack)) + (1 - ALPHA) * (rendered - stack).abs()).mean(dim=(0, 1))
    return {"recon": recon, "detail": detail_error_map(rendered[None], stack[None])[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=lambda text: tuple(int(s) for s in text.split(",")), default=suite.DEV_SEEDS)
    parser.add_argument("--apertures", type=suite.parse_names(suite.APERTURES), default=("disc",))
    parser.add_argument("--model", action="append", default=[], help="a DAIF-Net model whose depth is a candidate (repeatable)")
    parser.add_argument("--out", default="benchmarks/results/objective-minimum-dev.json")
    args = parser.parse_args()
    if set(args.seeds) & set(suite.REPORTED_SEEDS):
        parser.error(f"--seeds: {sorted(set(args.seeds) & set(suite.REPORTED_SEEDS))} are reported seeds; this diagnosis reads depth")
    torch.set_num_threads(2)
    from daif.model_io import load_model

    camera = ThinLensCamera(suite.FOCAL_LENGTH, suite.F_NUMBER, suite.PIXEL_SIZE)
    methods = suite.predictors(camera, {f"daif-net {k}": load_model(m)[0].eval() for k, m in enumerate(args.model)})
    methods = {name: f for name, f in methods.items() if not name.startswith("search")}
    focus = torch.tensor(suite.FOCUS)
    candidates = ["true depth", *methods]
    started, rows = time.perf_counter(), []
    for scene_name in SCENE_FAMILIES:
        for seed in args.seeds:
            for aperture in args.apertures:
                scene = SCENE_FAMILIES[scene_name](seed, suite.SIZE, suite.canvas_pad(suite.VIEWS))
                captured = surface_light_field_stack(scene, suite.FOCUS, suite.FOCAL_LENGTH, suite.PIXEL_SIZE,
                                                     suite.light_field_baseline(suite.VIEWS), suite.VIEWS, aperture)
                stack = torch.from_numpy(captured.images).permute(0, 3, 1, 2).float() / 255
                aif = torch.from_numpy(captured.aif).permute(2, 0, 1).float() / 255
                truth = torch.from_numpy(captured.depth)[None]
                with torch.no_grad():
                    depths = {"true depth": truth, **{name: f(stack[None], focus)[0].float() for name, f in methods.items()}}
                masks = {"all": np.ones(suite.SIZE, bool), "edges": suite.edge_band(captured.depth),
                         "beyond": captured.depth > max(suite.FOCUS)}
                weak = scene.weak_map()
                if weak is not None and weak.any():
                    masks["weak"] = weak
                for renderer in RENDERERS:
                    for name, depth in depths.items():
                        with torch.no_grad():
                            errors = error_maps(render(renderer, aif, depth, focus, camera), stack)
                        for objective, error in errors.items():
                            rows.append({"scene": scene_name, "seed": seed, "aperture": aperture, "renderer": renderer,
                                         "objective": objective, "depth": name,
                                         **{f"error_{mask}": float(error.numpy()[m].mean()) for mask, m in masks.items() if m.any()}})
                print(f"{scene_name} seed {seed} {aperture} done", flush=True)
    summary = []
    for renderer in RENDERERS:
        for objective in OBJECTIVES:
            pick = lambda name: [r for r in rows if (r["renderer"], r["objective"], r["depth"]) == (renderer, objective, name)]
            truth_rows = pick("true depth")
            for name in candidates:
                line = {"renderer": renderer, "objective": objective, "depth": name}
                for mask in MASKS:
                    pairs = [(t, r) for t, r in zip(truth_rows, pick(name)) if f"error_{mask}" in r]
                    line[f"mean_error_{mask}"] = float(np.mean([r[f"error_{mask}"] for _, r in pairs]))
                    if name != "true depth":  # in how many scenes the true depth scores lower
                        line[f"truth_lower_{mask}"] = [sum(t[f"error_{mask}"] < r[f"error_{mask}"] for t, r in pairs), len(pairs)]
                summary.append(line)
    print("\nmean error (true depth lower in n of N scenes)")
    print("| renderer | objective | depth | " + " | ".join(MASKS) + " |\n|---|---|---|" + "---|" * len(MASKS))
    for line in summary:
        cells = [f"{line[f'mean_error_{mask}']:.4f}" + (" ({} / {})".format(*line[f"truth_lower_{mask}"]) if f"truth_lower_{mask}" in line else "")
                 for mask in MASKS]
        print(f"| {line['renderer']} | {line['objective']} | {line['depth']} | " + " | ".join(cells) + " |")
    wall = time.perf_counter() - started
    print(f"\n{len(rows)} rows in {wall:.0f} s")
    record = {"seeds": list(args.seeds), "apertures": list(args.apertures), "models": args.model, "alpha": ALPHA,
              "renderers": list(RENDERERS), "objectives": list(OBJECTIVES), "wall_seconds": wall, "rows": rows, "summary": summary}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
