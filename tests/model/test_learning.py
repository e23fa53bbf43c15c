"""Learning check: the self-supervised objective, no ground truth, trains DAIF-Net on tiny scenes.

It uses the hard coarse-AIF recipe (daif/losses.py, "Depth through the coarse AIF"; the quickstart adds
the soft selection and the depth jitter). A run of 200 steps on four scenes is chaotic: builds of the
renderer that differ in the last float bit (numba's vectorisation) end it in different places (measured
for seed 0: mean Pearson 0.35 on one checkout, 0.21 on a fresh one). So the test trains from three seeds
and judges the average, with margins taken from the spread measured over six seeds on one checkout (mean
Pearson 0.05 to 0.36) and seeds 0-2 on a fresh one (0.21, 0.12, 0.27; average 0.20, untrained average
-0.11).
"""

from __future__ import annotations

import torch

from conftest import CAMERA, make_scenes
from daif.losses import LossConfig, total_loss
from daif.model import DAIFNet

STEPS = 200
SEEDS = (0, 1, 2)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def _train(seed: int, stack, focus, true_depth) -> tuple[dict, dict, float, float]:
    """(first terms, last terms, untrained mean Pearson, trained mean Pearson) of one run."""
    torch.manual_seed(seed)
    net = DAIFNet(width=8, levels=2, depth_mapping="sigmoid", near=0.1, far=3.0)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    config = LossConfig(coarse_recon=1000, recon_trains_depth=False, recon=10, aif_recon=1, aif_blur=0.1)
    with torch.no_grad():
        aif, depth = net(stack, focus)
        first = total_loss(stack, focus, aif, depth, CAMERA, config)[1]
        before = sum(_pearson(depth[i], true_depth[i]) for i in range(len(depth))) / len(depth)
    for _ in range(STEPS):
        aif, depth = net(stack, focus)
        total, _ = total_loss(stack, focus, aif, depth, CAMERA, config)
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
    with torch.no_grad():
        aif, depth = net(stack, focus)
        last = total_loss(stack, focus, aif, depth, CAMERA, config)[1]
        after = sum(_pearson(depth[i], true_depth[i]) for i in range(len(depth))) / len(depth)
    return first, last, before, after


def test_short_self_supervised_optimisation_learns_depth():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        stack, focus, _, true_depth = make_scenes(4, 32, 32, seed=1)  # ground truth only for the final check
        runs = [_train(seed, stack, focus, true_depth) for seed in SEEDS]
    finally:
        torch.set_num_threads(threads)
    for seed, (first, last, before, after) in zip(SEEDS, runs):
        print(f"seed {seed}: recon {float(first['recon']):.3f} -> {float(last['recon']):.3f}, coarse_recon "
              f"{float(first['coarse_recon']):.4f} -> {float(last['coarse_recon']):.4f}, mean Pearson {before:.3f} -> {after:.3f}")
        # measured: recon 0.645 -> 0.18..0.56, coarse_recon 0.036 -> 0.032..0.036
        assert float(last["recon"]) < 0.95 * float(first["recon"])  # the AIF learns to re-render the stack
        assert float(last["coarse_recon"]) < float(first["coarse_recon"])  # depth learns to re-blur the coarse AIF
    before = sum(run[2] for run in runs) / len(runs)
    after = sum(run[3] for run in runs) / len(runs)
    # untrained, the average is -0.11 (chance); trained, it is clearly positive (measured 0.20 and 0.35)
    assert after > 0.1 and after > before + 0.2, (before, after)
