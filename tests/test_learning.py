"""Learning check: the quickstart-search preset's objective, no ground truth, trains DAIF-Net on tiny scenes.

The objective and network are the ones `daif quickstart --preset quickstart-search` ships
(`daif.config.TRAINING_PRESETS["quickstart-search"]`):
the "search" depth head refines the defocus search's cost volume under the expected cost and edge-aware
smoothness; the "select" AIF head learns from the reconstruction with depth held fixed. An untrained net
already returns the search's soft arg-min, and a flat (textureless) patch holds no defocus cue: there its
cost is flat and the soft arg-min sits mid-range. The independent expectation: the MRF energy carries the
depth of the textured surroundings (the same plane) into the patch, so the depth error there falls, the
energy falls and the reconstruction does not get worse, from three seeds. The smoothness weight is 0.1 here,
ten times the preset's (at 0.01 the patch fills too slowly for the suite's time).

Robustness across machines: a constant Adam step oscillates, so the verdict of one step count flipped between
machines whose floating-point paths differ (seed 1 at step 60 read 0.04 on one, 0.41 on another). The step
here is annealed as in training (cosine from 3e-3 to 0 over 90 steps), so the depth settles. Measured patch
|log error| 0.69 -> 0.115 / 0.038 / 0.237 / 0.106 (seeds 0..3) with two torch threads; one thread (another
summation order) moved no seed by more than 0.01 at step 60. The assertion, < 0.5x on every seed, leaves
the worst seed (0.34x) a margin.
"""

from __future__ import annotations

import pytest
import torch

from daif.config import load_config
from daif.train.loop import build_model, forward_objective, lr_factor
from tests.helpers.scenes import CAMERA, make_scenes

pytestmark = pytest.mark.slow

STEPS = 90
SEEDS = (0, 1, 2)
LR = 3e-3  # Adam, cosine-annealed to 0 over STEPS
NEAR, FAR = 0.25, 2.5  # the model's depth range, spanning the scenes' 0.3..2.0 m
SIZE, PATCH = 40, slice(8, 32)
SMOOTH = 0.1  # loss.cost_smooth (see the module docstring)


def _flat_patch_scenes():
    """Textured fronto-parallel planes at 0.4 and 1.6 m (either side of the candidates' geometric middle,
    0.79 m, where a flat cost leaves the soft arg-min), a 24x24 patch of each AIF set to its mean colour."""
    from daif.optics import render_focal_stack

    _, focus, aif, _ = make_scenes(4, SIZE, SIZE, seed=1)
    aif = aif.clone()
    aif[..., PATCH, PATCH] = aif[..., PATCH, PATCH].mean(dim=(-2, -1), keepdim=True)
    depth = torch.tensor([0.4, 1.6, 0.4, 1.6]).reshape(4, 1, 1, 1).expand(4, 1, SIZE, SIZE).contiguous()
    with torch.no_grad():
        stack = render_focal_stack(aif, depth, focus, CAMERA)
    return stack, focus, depth


def _patch_error(depth: torch.Tensor, true_depth: torch.Tensor) -> float:
    inner = slice(PATCH.start + 6, PATCH.stop - 6)  # the patch less twice the renderer's reach (3 px) of texture
    return float((depth.log() - true_depth.log()).abs()[..., inner, inner].mean())


def _train(seed: int, stack, focus, true_depth):
    """(first terms, last terms, patch error before, after) of one run."""
    config = load_config(preset="quickstart-search", overrides=["model.width=8", "model.levels=2", f"loss.cost_smooth={SMOOTH}"])
    torch.manual_seed(seed)
    net = build_model(config, NEAR, FAR, CAMERA)
    optimiser = torch.optim.Adam(net.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: lr_factor(step, STEPS, "cosine"))

    def terms():
        out, result = forward_objective(net, net, stack, focus, CAMERA, config.loss)  # as daif train
        return result, out["depth"]

    with torch.no_grad():
        first, depth = terms()
        before = _patch_error(depth, true_depth)
    for _ in range(STEPS):
        result, _ = terms()
        optimiser.zero_grad()
        result.total.backward()
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        last, depth = terms()
        after = _patch_error(depth, true_depth)
    return first.terms, last.terms, before, after


def test_short_self_supervised_optimisation_fills_a_flat_patch_from_its_surroundings():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        stack, focus, true_depth = _flat_patch_scenes()  # ground truth only for the final check
        runs = [_train(seed, stack, focus, true_depth) for seed in SEEDS]
    finally:
        torch.set_num_threads(threads)
    weight = SMOOTH
    for seed, (first, last, before, after) in zip(SEEDS, runs):
        energy = [float(t["cost"]) + weight * float(t["cost_smooth"]) for t in (first, last)]
        print(f"seed {seed}: energy {energy[0]:.3f} -> {energy[1]:.3f}, recon {float(first['recon']):.4f} -> "
              f"{float(last['recon']):.4f}, patch |log error| {before:.3f} -> {after:.3f}")
        assert energy[1] < energy[0]
        assert float(last["recon"]) < 1.1 * float(first["recon"])  # the AIF (the coarse AIF at the start) stays as good
        assert before > 0.3 and after < 0.5 * before, (before, after)
