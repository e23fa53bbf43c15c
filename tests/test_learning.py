"""Learning check: the quickstart preset's objective, no ground truth, trains DAIF-Net on tiny scenes.

The objective is the one `daif quickstart` ships (`daif.config.TRAINING_PRESETS["quickstart"]`): depth
learns from the defocus search and smoothness, the AIF from the reconstruction with depth held fixed. The
test trains from two seeds and judges each run and their average against the untrained network
(bounds not yet calibrated on an idle machine: loose on purpose).
"""

from __future__ import annotations

import pytest
import torch

from daif.config import load_config
from daif.losses import objective
from daif.model import DAIFNet
from tests.helpers.scenes import CAMERA, make_scenes

pytestmark = pytest.mark.slow

STEPS = 100
SEEDS = (0, 1)
NEAR, FAR = 0.25, 2.5  # the model's depth range, spanning the scenes' 0.3..2.0 m


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def _mean_pearson(depth: torch.Tensor, true_depth: torch.Tensor) -> float:
    return sum(_pearson(depth[i], true_depth[i]) for i in range(len(depth))) / len(depth)


def _train(seed: int, stack, focus, true_depth) -> tuple[dict, dict, float, float]:
    """(first terms, last terms, untrained mean Pearson, trained mean Pearson) of one run."""
    torch.manual_seed(seed)
    net = DAIFNet(width=8, levels=2, near=NEAR, far=FAR)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    config = load_config(preset="quickstart").loss

    def terms():
        aif, depth = net(stack, focus)
        return objective(stack, focus, aif, depth, CAMERA, config, depth_range=(NEAR, FAR)), depth

    with torch.no_grad():
        first, depth = terms()
        before = _mean_pearson(depth, true_depth)
    for _ in range(STEPS):
        result, _ = terms()
        optimiser.zero_grad()
        result.total.backward()
        optimiser.step()
    with torch.no_grad():
        last, depth = terms()
        after = _mean_pearson(depth, true_depth)
    return first.terms, last.terms, before, after


def test_short_self_supervised_optimisation_learns_depth():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        stack, focus, _, true_depth = make_scenes(4, 32, 32, seed=1)  # ground truth only for the final check
        runs = [_train(seed, stack, focus, true_depth) for seed in SEEDS]
    finally:
        torch.set_num_threads(threads)
    for seed, (first, last, before, after) in zip(SEEDS, runs):
        print(f"seed {seed}: recon {float(first['recon']):.3f} -> {float(last['recon']):.3f}, search "
              f"{float(first['search']):.3f} -> {float(last['search']):.3f}, mean Pearson {before:.3f} -> {after:.3f}")
        assert float(last["recon"]) < float(first["recon"])  # the AIF learns to re-render the stack
        assert float(last["search"]) < 0.8 * float(first["search"])  # depth moves to the searched depth
    before = sum(run[2] for run in runs) / len(runs)
    after = sum(run[3] for run in runs) / len(runs)
    assert after > 0.3 and after > before + 0.2, (before, after)
