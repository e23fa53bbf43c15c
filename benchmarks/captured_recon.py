"""Rank models on a camera's stacks without depth: the reconstruction error each model leaves on them.

For every --model, the mean over the scenes of a store's split of the paper's photometric reconstruction error

    recon = alpha (1 - SSIM(R, I)) + (1 - alpha) |R - I|,        alpha = 0.85,

where I is a scene's whole stack (S images, [0, 1]) and R the stack re-rendered from the model's AIF and depth
through the thin lens of the store's camera and focus distances and the Gaussian PSF with no window (the ladder,
daif.optics.ladder): the `recon` term of `daif.losses.objective` at one scale, unweighted, as training's
`val/recon`. It reads no depth and no AIF, so it compares models, whatever data they were trained on, on a camera
whose depth is unknown (issue 27: which synthetic training data explains a real lens's stacks best). The store's
depth, where it has one, is not read.

    python benchmarks/captured_recon.py --data STORE [--split val] --model A --model B [--out FILE.json]

Prints one line per model (the mean, the scenes' min and max) and writes them to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch


def scene_recon(net, stack: torch.Tensor, focus: torch.Tensor, camera, loss) -> float:
    """recon of one stack (1, S, 3, H, W) with focus (1, S) metres under `net`."""
    from daif.losses import objective

    with torch.no_grad():
        aif, depth = net(stack, focus, camera)
        return float(objective(stack, focus, aif, depth, camera, loss).terms["recon"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a store (daif render --out DIR), e.g. --source focal-stack-folder")
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", action="append", required=True, help="a checkpoint, model folder or 'pretrained' (repeatable)")
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)

    from daif.config import LossConfig
    from daif.data.store import open_store
    from daif.images import to_float_chw
    from daif.model_io import load_model

    store = open_store(args.data)
    loss = LossConfig(kernel_size=None, recon_scales=1, alpha=0.85)
    focus = torch.from_numpy(store.focus_distances)[None]
    scenes = list(store.iter_scenes(args.split, ("scene_id", "stack")))
    rows, started = [], time.perf_counter()
    for source in args.model:
        net = load_model(source)[0].eval()
        values = np.array([scene_recon(net, to_float_chw(scene["stack"][None]), focus, store.camera, loss) for scene in scenes])
        rows.append({"model": source, "recon": float(values.mean()), "min": float(values.min()), "max": float(values.max())})
        print(f"{source}: recon {values.mean():.4f} (scenes {values.min():.4f}..{values.max():.4f})", flush=True)
    summary = {"data": args.data, "split": args.split, "scenes": len(scenes), "camera": store.camera.to_dict(),
               "focus_distances": store.focus_distances.tolist(), "seconds": round(time.perf_counter() - started, 1),
               "models": rows}
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(summary, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
