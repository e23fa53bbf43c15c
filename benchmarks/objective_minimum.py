"""Does the re-rendering objective sit at the true depth on real optics? (issue 27, goal 4; a diagnosis)

On the light-field suite's stacks (benchmarks/lightfield.py: a disc or square aperture of views, occlusion the
light field's own), the true all-in-focus image A* (the centre pinhole view) is re-rendered at the stack's focus
distances s_k through a renderer with each candidate depth D, and compared with the captured stack I:

    E(D) = alpha (1 - SSIM(R, I)) + (1 - alpha) |R - I|_1,   R_k = render(A*, sigma(D, s_k)),   alpha = 0.85

(means over the five images and all pixels; also over the depth-edge band and the barely textured pixels). The
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
from daif.optics import ThinLensCamera, render_focal_stack
from daif.optics.psf import render_stack

ALPHA = 0.85
RENDERERS = ("gaussian", "disc", "layered disc")


def render(name: str, aif: torch.Tensor, depth: torch.Tensor, focus: torch.Tensor, camera: ThinLensCamera) -> torch.Tensor:
    """(S, 3, H, W): aif (3, H, W) re-rendered with depth (1, H, W) metres at `focus` (S,) through renderer `name`."""
    if name == "layered disc":
        return render_stack(aif, depth, focus, camera, "layered", kernel_size=None)
    return render_focal_stack(aif[None], depth[None], focus, camera, None, name)[0]


def error_map(rendered: torch.Tensor, stack: torch.Tensor) -> torch.Tensor:
    """(H, W): the photometric error of the recon term per pixel, mean over the images and channels."""
    return (ALPHA * (1 - ssim_map(rendered, stack)) + (1 - ALPHA) * (rendered - stack).abs()).mean(dim=(0, 1))


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
                masks = {"all": np.ones(suite.SIZE, bool), "edges": suite.edge_band(captured.depth)}
                weak = scene.weak_map()
                if weak is not None and weak.any():
                    masks["weak"] = weak
                for renderer in RENDERERS:
                    with torch.no_grad():
                        errors = {name: error_map(render(renderer, aif, depth, focus, camera), stack).numpy() for name, depth in depths.items()}
                    for name, error in errors.items():
                        rows.append({"scene": scene_name, "seed": seed, "aperture": aperture, "renderer": renderer, "depth": name,
                                     **{f"error_{mask}": float(error[m].mean()) for mask, m in masks.items()}})
                print(f"{scene_name} seed {seed} {aperture} done", flush=True)
    summary = []
    for renderer in RENDERERS:
        for name in candidates:
            mine = [r for r in rows if r["renderer"] == renderer and r["depth"] == name]
            truth_rows = [r for r in rows if r["renderer"] == renderer and r["depth"] == "true depth"]
            line = {"renderer": renderer, "depth": name, "mean_error": float(np.mean([r["error_all"] for r in mine])),
                    "mean_error_edges": float(np.mean([r["error_edges"] for r in mine]))}
            if name != "true depth":
                line["truth_lower_in"] = sum(t["error_all"] < r["error_all"] for t, r in zip(truth_rows, mine))
                line["truth_lower_at_edges_in"] = sum(t["error_edges"] < r["error_edges"] for t, r in zip(truth_rows, mine))
                line["scenes"] = len(mine)
            summary.append(line)
    print("\n| renderer | depth | mean error | at edges | true depth lower in (all / edges) |\n|---|---|---|---|---|")
    for line in summary:
        told = f"{line['truth_lower_in']} / {line['truth_lower_at_edges_in']} of {line['scenes']}" if "scenes" in line else ""
        print(f"| {line['renderer']} | {line['depth']} | {line['mean_error']:.4f} | {line['mean_error_edges']:.4f} | {told} |")
    wall = time.perf_counter() - started
    print(f"\n{len(rows)} rows in {wall:.0f} s")
    record = {"seeds": list(args.seeds), "apertures": list(args.apertures), "models": args.model, "alpha": ALPHA,
              "renderers": list(RENDERERS), "wall_seconds": wall, "rows": rows, "summary": summary}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
