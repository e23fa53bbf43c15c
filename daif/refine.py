"""Test-time refinement: the self-supervised objective, minimised on the one stack being predicted.

Beyond the paper. The network's weights theta (a copy; the model itself is untouched) are optimised on one focal
stack by the training objective (`daif.losses.objective`: the stack re-rendered from the predicted AIF and depth,
and the other terms), then the stack is predicted with them:

    theta_0 = the model's weights;  theta_{t+1} = Adam(theta_t, grad_theta L(stack; f_theta_t(stack)));
    the prediction is f_theta_T(stack).

Nothing but the stack, its focus distances and the camera enters L: no depth, no AIF. Stopping: at most `steps`
steps, or earlier once the best objective of the last `patience` steps is not `min_improvement` (relative) below
the best before them: a plateau of the objective, read from the stack alone.

`RefineConfig` holds the recipe; `REFINE_LOSS` is the objective it minimises by default (the camera fine-tune's of
`benchmarks/lightfield_adapt.sh` re-rendered through the soft layers, docs/experiments.md entry 58).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable

import torch

from daif._checks import check_tensor
from daif.config import LossConfig, PAPER_RECIPE
from daif.optics import ThinLensCamera

# the quickstart's objective (PAPER_RECIPE's loss), with the detail term and the soft-layer re-renderer
REFINE_LOSS = LossConfig(**{**PAPER_RECIPE["loss"], "detail": 20.0, "kernel_size": None, "psf": "layered"})


@dataclasses.dataclass(frozen=True)
class RefineConfig:
    """steps: the most optimiser steps (0: no refinement); lr: Adam's constant learning rate; patience and
    min_improvement: the plateau rule of the module docstring; loss: the objective minimised."""

    steps: int = 100
    lr: float = 1e-4
    patience: int = 20
    min_improvement: float = 0.01
    loss: LossConfig = REFINE_LOSS

    def __post_init__(self) -> None:
        for name in ("steps", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "steps" else 1):
                raise ValueError(f"{name}: expected an integer >= {0 if name == 'steps' else 1}, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a finite learning rate > 0, got {self.lr!r}")
        if not (isinstance(self.min_improvement, (int, float)) and 0 <= self.min_improvement < 1):
            raise ValueError(f"min_improvement: expected a fraction in [0, 1), got {self.min_improvement!r}")


def plateaued(history: list[float], patience: int, min_improvement: float) -> bool:
    """True when the best of the last `patience` values is not `min_improvement` (relative) below the best before."""
    if len(history) <= patience:
        return False
    before, recent = min(history[:-patience]), min(history[-patience:])
    return recent > before * (1 - min_improvement)


def refine(
    model: torch.nn.Module,
    stack: torch.Tensor,
    focus_distances: torch.Tensor,
    camera: ThinLensCamera,
    config: RefineConfig = RefineConfig(),
    progress: Callable[[int, float], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """(aif (1, 3, H, W), depth (1, 1, H, W) metres, the objective at each step) of `model` refined on one stack.

    model: a `daif.model.DAIFNet` (copied; its own weights do not change). stack: (1, S, 3, H, W) in [0, 1];
    focus_distances: (S,) or (1, S) metres; camera: the stack's. progress: called with (step, objective) after
    each step. With config.steps 0 this is the model's prediction. The objective's history has one value per step
    taken, computed before that step's update.
    """
    from daif.train.loop import forward_objective

    check_tensor("stack", stack, (1, "S", 3, "H", "W"))
    net = copy.deepcopy(model).train()
    net.camera = camera  # the select head's defocus prior is the stack's camera's, as when training on its stacks
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    history: list[float] = []
    with torch.enable_grad():  # callers predict under no_grad
        for step in range(config.steps):
            _, result = forward_objective(net, net, stack, focus_distances, camera, config.loss)
            if not torch.isfinite(result.total):
                raise FloatingPointError(f"refine: the objective is {result.total.item()} at step {step}")
            optimiser.zero_grad(set_to_none=True)
            result.total.backward()
            optimiser.step()
            history.append(result.total.item())
            if progress is not None:
                progress(step, history[-1])
            if plateaued(history, config.patience, config.min_improvement):
                break
    net.eval()
    with torch.no_grad():
        aif, depth = net(stack, focus_distances, camera=camera)
    return aif, depth, history
