"""The paper's objective learns depth: DAIF-Net (one regressed depth channel, no analytic depth anywhere) trained
from a constant start on 16 rendered scenes, with the quickstart preset's objective and schedule exactly as it
ships (no renderer window, depth linear in log depth) and no ground truth.

Independent expectations, from the true depth that training never sees:
- the depth is no longer a constant: its spread std(log D) reaches a share of the true spread;
- it follows the truth: Pearson correlation of log D with log D* over all pixels;
- it beats every constant: its mean |log D - log D*| falls below that of the best constant per image (the
  median of the true depth, an oracle no collapsed model can beat).
And the control: the same training with the "select" head's defocus prior off (its untrained AIF is the stack's
mean, the shortcut of docs/experiments.md entry 1) and without the preset's high-pass input channel (so the network
sees the stack's sharpness only through its four colour channels) leaves the depth barely correlated with the truth
and no better than a constant: the checks can fail. (With the input, the prior-free path learns too: correlation
0.82, entry 47; the collapse of entry 1 needs both.)

Figures on this machine (300 Adam steps of batch 4, 48x48, width 8, three levels; the preset's lr 2e-3 after a
linear warm-up over the preset's share of its training, 2/40 of the steps; the trainings run two at a time, each in a
process of one torch thread): seeds 0/1/2 reached correlation 0.76 / 0.77 / 0.76, spread 0.49 / 0.54 / 0.47 of the
truth's, error 0.68 / 0.64 / 0.69 of the best constant's (seeds 3/4, not run here: 0.83 / 0.80, 0.74 / 0.67, 0.50 /
0.55); the control read correlation 0.25, spread 0.25, error 1.05. At 64x64 (entry 47) seeds 0/1/2 read 0.78 / 0.77
/ 0.87 and the control 0.25 / 0.27 / 1.01, in 1.8 min against 1.2 min here. The onset of learning varies with
the seed, so the checks are on the median seed (correlation > 0.45, error < 0.92) and on every seed for the spread
(> 0.2); the control must fail the median checks.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from daif.config import load_config
from daif.losses import objective
from daif.train.loop import build_model, make_optimiser

pytestmark = pytest.mark.slow

STEPS, BATCH, SCENES, SIZE = 300, 4, 16, 48
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def scenes():
    """16 quickstart-like scenes (daif.data.synthetic, SIZE x SIZE) rendered with the NYUv2 5-image camera and no window."""
    from daif.data.synthetic import make_scene
    from daif.optics import ThinLensCamera, render_focal_stack

    camera = ThinLensCamera.preset("nyuv2-5")
    made = [make_scene(1000 + index, (SIZE, SIZE), (0.75, 7.5)) for index in range(SCENES)]
    aif = torch.stack([torch.from_numpy(scene["aif"]).permute(2, 0, 1).float() / 255 for scene in made])
    depth = torch.stack([torch.from_numpy(scene["depth"])[None] for scene in made])
    focus = torch.tensor([1.0, 1.5, 2.5, 4.0, 6.0]).expand(SCENES, -1).contiguous()
    with torch.no_grad():
        stack = render_focal_stack(aif, depth, focus, camera, None)
    return stack, focus, depth, camera


def _train(seed: int, scenes, overrides=()) -> torch.Tensor:
    """The depth (B, 1, H, W) of every scene after STEPS steps of the quickstart objective; no ground truth."""
    stack, focus, _, camera = scenes
    config = load_config(preset="quickstart", overrides=["model.width=8", *overrides])
    torch.manual_seed(seed)
    net = build_model(config, 0.75, 7.5, camera)
    # the preset's warm-up share of its training (2 of 40 epochs), over these STEPS
    optimiser, schedule = make_optimiser(net.parameters(), config.optim, STEPS, config.train.epochs)
    order = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        rows = torch.randperm(SCENES, generator=order)[:BATCH]
        aif, depth = net(stack[rows], focus[rows])
        result = objective(stack[rows], focus[rows], aif, depth, camera, config.loss)
        optimiser.zero_grad()
        result.total.backward()
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        return net(stack, focus)[1]


def _scores(depth: torch.Tensor, true_depth: torch.Tensor) -> tuple[float, float, float]:
    """(spread ratio, correlation, error ratio to the best constant per image), all in log depth."""
    log, true = depth.log(), true_depth.log()
    spread = float(log.std() / true.std())
    centred, true_centred = log - log.mean(), true - true.mean()
    correlation = float((centred * true_centred).sum() / (centred.norm() * true_centred.norm() + 1e-12))
    constant = true.flatten(1).median(dim=1).values[:, None, None, None]
    error = float((log - true).abs().mean() / (constant - true).abs().mean())
    return spread, correlation, error


def _train_in_one_thread(job: tuple) -> torch.Tensor:
    """`_train(seed, scenes, overrides)` in a worker process of its own, with one torch thread."""
    seed, scenes, overrides = job
    torch.set_num_threads(1)
    return _train(seed, scenes, overrides)


def test_the_papers_objective_moves_depth_from_a_constant_towards_the_truth(scenes):
    jobs = [(seed, scenes, ()) for seed in SEEDS] + [(0, scenes, ("model.aif_temperature=0", "model.detail_input=false"))]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:  # two at a time
        *depths, control_depth = pool.map(_train_in_one_thread, jobs)
    scores = [_scores(depth, scenes[2]) for depth in depths]
    control = _scores(control_depth, scenes[2])
    for seed, (spread, correlation, error) in zip(SEEDS, scores):
        print(f"seed {seed}: spread {spread:.2f}, correlation {correlation:.2f}, error / best constant's {error:.2f}")
    print(f"control (no defocus prior, no high-pass input): spread {control[0]:.2f}, correlation {control[1]:.2f}, error {control[2]:.2f}")
    assert all(spread > 0.2 for spread, _, _ in scores), scores  # no seed leaves the depth a constant
    assert _median_passes(scores), scores
    assert not _median_passes([control]), control  # the collapse path does not pass the same checks


def _median_passes(scores) -> bool:
    """The median seed's correlation exceeds 0.45 and its error falls below 0.92 of the best constant's."""
    middle = len(scores) // 2
    correlation = sorted(correlation for _, correlation, _ in scores)[middle]
    error = sorted(error for _, _, error in scores)[middle]
    return correlation > 0.45 and error < 0.92
