"""Which re-rendering PSF fits a camera? Leave-one-image-out prediction on its stacks, with no depth and no AIF.

For each stack of a store's split and each of its S images i, a model sees the other S - 1 images (and their focus
distances), predicts the AIF and the depth, and renders image i at its focus distance through the PSF it was
trained through (`daif.losses.held_out_errors`):

    E_bi = alpha (1 - SSIM(R_bi, I_bi)) + (1 - alpha) |R_bi - I_bi|_1,   alpha = 0.85

Image i was never an input, so a PSF that fits the given images by being flexible gains nothing here: it reads how
well each pipeline (network + optics) predicts the camera's unseen images. That need not follow depth: on the
light-field camera it ranked fine-tunes through the Gaussian, disc and soft layers in the reverse of the suite's
depth (docs/experiments.md entry 56). Beside it, the in-sample recon of the same
model through the same PSF (the training's `val/recon`), which favours whichever PSF a model was trained through
(docs/experiments.md entries 43 and 54). Each model is named with the PSF it re-renders through:

    python benchmarks/psf_holdout.py --data STORE [--split val] [--model gaussian=CKPT_A --model layered=CKPT_B ...] [--baseline] [--out FILE]

`--baseline` adds the depth-from-focus baseline's depth and AIF (`daif.baseline`, no learning, the same for every PSF)
rendered through each PSF: the optics model compared with the method held fixed. It names the PSF of stores rendered
with a known one, and is entry 57's candidate rule for a camera fine-tune's `loss.psf` (the lowest held-out error).

Prints per model the mean held-out error, the in-sample recon, how many stacks read lower than the first model
(paired, each stack's mean over its S hold-outs) and the held-out error per image left out (mean over the stacks);
writes them (and every stack's figure) to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from daif.baseline import depth_from_focus
from daif.data.store import open_store
from daif.images import to_float_chw
from daif.losses import held_out_errors, reconstruction_errors
from daif.model_io import load_model
from daif.optics import RENDER_PSFS


def parse_model(text: str) -> tuple[str, str]:
    """"PSF=SOURCE" -> (psf, source)."""
    psf, _, source = text.partition("=")
    if psf not in RENDER_PSFS or not source:
        raise argparse.ArgumentTypeError(f"--model: expected PSF=SOURCE with PSF one of {RENDER_PSFS}, got {text!r}")
    return psf, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a store (daif render); captured stacks need no depth or AIF")
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", type=parse_model, action="append", default=[], help="PSF=SOURCE (repeatable)")
    parser.add_argument("--baseline", action="store_true", help="also the baseline's depth and AIF through each PSF")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not args.model and not args.baseline:
        parser.error("give at least one --model PSF=SOURCE, or --baseline")
    torch.set_num_threads(args.threads)

    try:
        store = open_store(args.data)
    except (OSError, ValueError) as error:  # StoreError is a ValueError
        parser.error(f"--data: {error}")
    scenes = list(store.iter_scenes(args.split, columns=("scene_id", "stack")))
    focus = torch.from_numpy(store.focus_distances)
    started = time.perf_counter()
    results = []
    pipelines = [(psf, psf, source) for psf, source in args.model]
    if args.baseline:
        pipelines += [(f"baseline/{psf}", psf, "baseline") for psf in RENDER_PSFS]
    for label, psf, source in pipelines:
        if source == "baseline":
            predict = lambda s, f: depth_from_focus(s, f, store.camera)[::-1]  # (aif, depth)
        else:
            net = load_model(source)[0].eval()
            predict = lambda s, f, net=net: net(s, f, camera=store.camera)
        held_out, per_image, in_sample = [], [], []
        with torch.no_grad():
            for scene in tqdm(scenes, desc=label, unit="stack"):
                stack = to_float_chw(scene["stack"])[None]  # (1, S, 3, H, W)
                errors = held_out_errors(predict, stack, focus, store.camera, psf)
                held_out.append(float(errors.mean()))
                per_image.append(errors[0].tolist())
                aif, depth = predict(stack, focus[None])
                in_sample.append(float(reconstruction_errors(stack, focus, aif, depth, store.camera, psf=psf, detail=False)["recon"][0]))
        results.append({"label": label, "psf": psf, "model": source, "held_out": float(np.mean(held_out)), "in_sample": float(np.mean(in_sample)),
                        "held_out_per_image": np.mean(per_image, axis=0).tolist(),  # image i left out, mean over stacks
                        "held_out_per_stack": held_out, "in_sample_per_stack": in_sample})
    first = np.asarray(results[0]["held_out_per_stack"])
    print(f"{len(scenes)} stacks of {args.data} ({args.split}); error alpha 0.85 (1 - SSIM) + 0.15 L1")
    print(f"{'pipeline':18} {'held out':>9} {'in sample':>9}  stacks lower than {results[0]['label']} (held out); held out per image left out")
    for result in results:
        result["lower_than_first"] = int((np.asarray(result["held_out_per_stack"]) < first).sum())
        per_image = " ".join(f"{value:.4f}" for value in result["held_out_per_image"])
        print(f"{result['label']:18} {result['held_out']:9.4f} {result['in_sample']:9.4f}  {result['lower_than_first']} of {len(scenes)}  {per_image}")
    if args.out:
        args.out.write_text(json.dumps({"data": str(args.data), "split": args.split, "stacks": [str(s["scene_id"]) for s in scenes],
                                        "seconds": time.perf_counter() - started, "models": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
