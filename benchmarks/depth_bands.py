"""Where a model loses depth accuracy: delta1 and the median of predicted / true depth, by true depth band;
and whether its depth varies as much as the truth: per image the spread ratio std(D) / std(D*) over valid
pixels (a collapsed, near-constant map reads near 0).

Evaluates a trained model and the analytic depth-from-focus baseline on one split of a store, on the
middle-of-bin stacks `daif evaluate` uses, and prints one row per band of true depth (the share of
valid pixels in it, then each method's delta1 and median ratio). The figures of docs/results.md's "Known
gaps" come from this script on the quickstart's store and best checkpoint:

    python benchmarks/depth_bands.py --model daif-results/quickstart/runs/<run>/<checkpoint> \
        --data daif-results/quickstart/store [--split test] [--edges 0.5,0.9,1.1,1.4,1.8,2.3,3,3.7,4.5,5.5,7,8]
"""

from __future__ import annotations

import argparse

import torch

from daif.metrics import depth_metrics

DEFAULT_EDGES = "0.5,0.9,1.1,1.4,1.8,2.3,3,3.7,4.5,5.5,7,8"


def band_table(predictions: dict[str, torch.Tensor], depth: torch.Tensor, valid: torch.Tensor, edges) -> list[dict]:
    """One row per band [lo, hi) of true depth: share of the valid pixels, per method delta1 (all the band's
    pixels pooled, `daif.metrics.depth_metrics`) and median ratio."""
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = valid & (depth >= low) & (depth < high)
        if not bool(inside.any()):
            continue
        row = {"band": f"{low:g}-{high:g} m", "share": float(inside.sum() / valid.sum())}
        for name, predicted in predictions.items():
            row[f"{name} delta1"] = depth_metrics(predicted, depth, inside, reduction="pixel")["delta1"]
            row[f"{name} median ratio"] = float((predicted[inside] / depth[inside]).median())
        rows.append(row)
    return rows


def spread_ratios(predicted: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor) -> list[float]:
    """Per image, std(D) / std(D*) over its valid pixels (population std), for images with two or more."""
    ratios = []
    for d, t, v in zip(predicted, depth, valid):
        if int(v.sum()) >= 2:
            ratios.append(float(d[v].double().std(correction=0) / t[v].double().std(correction=0).clamp_min(1e-12)))
    return ratios


def main() -> None:
    from daif.baseline import depth_from_focus
    from daif.data.bins import BinSampler, make_batch
    from daif.data.store import open_store
    from daif.evaluate.scenes import scenes_to_batch
    from daif.model_io import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="checkpoint directory or MLflow model URI")
    parser.add_argument("--data", required=True, help="store directory")
    parser.add_argument("--split", default="test")
    parser.add_argument("--edges", default=DEFAULT_EDGES, help="band edges in metres, comma-separated")
    args = parser.parse_args()

    store = open_store(args.data)
    scenes = list(store.iter_scenes(args.split))
    if not scenes:
        raise SystemExit(f"--split: the store at {args.data} has no scenes in split {args.split!r}")
    columns = scenes_to_batch(scenes)
    sampler = BinSampler(len(store.focus_distances), store.num_bins, "middle")
    batch = make_batch(columns, sampler.draw(None, len(scenes)), store.focus_distances)
    model, _ = load_model(args.model)
    with torch.no_grad():
        baseline, _ = depth_from_focus(batch["stack"], batch["focus_distances"], store.camera)
        predicted = model.eval()(batch["stack"], batch["focus_distances"])[1]
    edges = [float(value) for value in args.edges.split(",")]
    rows = band_table({"daif-net": predicted, "baseline": baseline}, batch["depth"], batch["valid"].bool(), edges)
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(f"{row[key]:.3f}" if isinstance(row[key], float) else row[key] for key in header) + " |")
    valid = batch["valid"].bool()
    for name, depth in (("daif-net", predicted), ("baseline", baseline)):
        ratios = sorted(spread_ratios(depth, batch["depth"], valid))
        print(f"{name}: spread std(D)/std(D*) per image: min {ratios[0]:.3f}, median {ratios[len(ratios) // 2]:.3f}, "
              f"below 0.5 in {sum(r < 0.5 for r in ratios)} of {len(ratios)} images")


if __name__ == "__main__":
    main()
