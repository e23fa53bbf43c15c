"""An in-process harness for recipe decisions on the paper's objective (docs/experiments.md, entries 18 and 23).

A plain PyTorch loop (no Ray) trains DAIF-Net with `load_config(preset="quickstart")` plus `--set` overrides on
quickstart-like data of its own: synthetic 64x64 scenes (`daif.data.synthetic`, seeds 50000+ for training and
60000+ for validation, apart from every quickstart store's), depth 0.75..7.5 m (DAIF-Net's [near, far] too, unless
`--set model.near=.. model.far=..`), the NYUv2 5-image camera, stacks quantised to uint8 as a store holds them.
The decision metric is `val/recon`: the single-scale photometric reconstruction error of the validation stacks
(alpha (1 - SSIM) + (1 - alpha) L1, unweighted, from the stacks alone), comparable across loss settings. Depth
metrics against the synthetic truth (delta1, AbsRel, delta1 of the pixels beyond 5.5 m and of those nearer than
0.9 m pooled, the smallest per-image spread ratio std(D)/std(D*)) are printed beside it as measurements; they
decide nothing. The learning rate follows the preset's schedule over `--steps`, its warm-up the same share of
them as the preset's of its epochs (optim.warmup_epochs / train.epochs); entries before 34 ran the preset's earlier
lr 1e-3 without a warm-up (`--set optim.lr=1e-3 optim.warmup_epochs=0`).

    python benchmarks/recipe_harness.py --steps 2400 --seed 1 --set model.depth_mapping=inverse --out run.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

SCENE_RANGE = (0.75, 7.5)  # metres, the scenes' depths; DAIF-Net's [near, far] unless model.near/far are set
FAR_BAND = 5.5  # metres: delta1_far pools the validation pixels of true depth beyond it (focus at 4 and 6 m)
NEAR_BAND = 0.9  # metres: delta1_near pools those nearer (the other end of the scenes' range)


def make_split(first_seed: int, count: int, size: int, kernel_size):
    from daif.data.synthetic import make_scene
    from daif.optics import ThinLensCamera, render_focal_stack

    camera = ThinLensCamera.preset("nyuv2-5")
    scenes = [make_scene(first_seed + index, (size, size), SCENE_RANGE) for index in range(count)]
    aif = torch.stack([torch.from_numpy(scene["aif"]).permute(2, 0, 1).float() / 255 for scene in scenes])
    depth = torch.stack([torch.from_numpy(scene["depth"])[None] for scene in scenes])
    focus = torch.tensor([1.0, 1.5, 2.5, 4.0, 6.0]).expand(count, -1).contiguous()
    with torch.no_grad():
        stack = torch.cat([render_focal_stack(aif[i:i + 16], depth[i:i + 16], focus[i:i + 16], camera, kernel_size)
                           for i in range(0, count, 16)])
    stack = (stack.clamp(0, 1) * 255).round() / 255  # a store's uint8
    return {"stack": stack, "focus": focus, "depth": depth, "aif": aif}, camera


def validate(net, split, camera, config) -> dict[str, float]:
    from daif.losses import objective, photometric_loss
    from daif.metrics import depth_metrics, psnr

    net.eval()
    recon, depths, aifs = [], [], []
    with torch.no_grad():
        for start in range(0, len(split["stack"]), 16):
            rows = slice(start, start + 16)
            aif, depth = net(split["stack"][rows], split["focus"][rows])
            result = objective(split["stack"][rows], split["focus"][rows], aif, depth, camera, config.loss)
            recon.append(float(photometric_loss(result.reconstruction, split["stack"][rows], config.loss.alpha)) * len(aif))
            depths.append(depth)
            aifs.append(aif)
    net.train()
    depth, true = torch.cat(depths), split["depth"]
    metrics = depth_metrics(depth, true)
    spread = (depth.flatten(1).std(dim=1) / true.flatten(1).std(dim=1)).min()
    within = torch.maximum(depth / true, true / depth) < 1.25
    return {"val/recon": sum(recon) / len(split["stack"]), "delta1": metrics["delta1"], "abs_rel": metrics["abs_rel"],
            "delta1_far": float(within[true > FAR_BAND].float().mean()),
            "delta1_near": float(within[true < NEAR_BAND].float().mean()), "spread_min": float(spread),
            "aif_psnr": float(psnr(torch.cat(aifs), split["aif"]).mean())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch order (the data is fixed)")
    parser.add_argument("--train-scenes", type=int, default=256)
    parser.add_argument("--val-scenes", type=int, default=48)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--data-kernel-size", default="none", help="renderer window of the data: none (the ladder, training's default) or K")
    parser.add_argument("--eval-every", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)

    from daif.config import load_config
    from daif.losses import objective
    from daif.train.loop import build_model, make_optimiser

    torch.set_num_threads(args.threads)
    data_kernel = None if args.data_kernel_size.lower() == "none" else int(args.data_kernel_size)
    train, camera = make_split(50000, args.train_scenes, args.size, data_kernel)
    val, _ = make_split(60000, args.val_scenes, args.size, data_kernel)
    config = load_config(preset="quickstart", overrides=list(args.overrides))
    torch.manual_seed(args.seed)
    near, far = (config.model.near, config.model.far) if config.model.near > 0 else SCENE_RANGE
    net = build_model(config, near, far, camera)
    optimiser, schedule = make_optimiser(net.parameters(), config.optim, args.steps, config.train.epochs)
    order = torch.Generator().manual_seed(args.seed)
    history, started, permutation = [], time.perf_counter(), torch.empty(0, dtype=torch.long)
    for step in range(1, args.steps + 1):
        if len(permutation) < args.batch:
            permutation = torch.randperm(args.train_scenes, generator=order)
        rows, permutation = permutation[:args.batch], permutation[args.batch:]
        aif, depth = net(train["stack"][rows], train["focus"][rows])
        result = objective(train["stack"][rows], train["focus"][rows], aif, depth, camera, config.loss)
        optimiser.zero_grad()
        result.total.backward()
        if config.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.optim.grad_clip)
        optimiser.step()
        schedule.step()
        if step % args.eval_every == 0 or step == args.steps:
            row = {"step": step, "seconds": round(time.perf_counter() - started, 1), **validate(net, val, camera, config)}
            history.append(row)
            print(json.dumps(row), flush=True)
    best = min(history, key=lambda row: row["val/recon"])
    summary = {"overrides": args.overrides, "seed": args.seed, "steps": args.steps, "batch": args.batch,
               "data_kernel_size": data_kernel, "history": history, "best_by_val_recon": best}
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(summary, handle, indent=1)
    print("best by val/recon:", json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
