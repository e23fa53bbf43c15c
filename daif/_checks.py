"""Argument checks shared by the public functions: one helper, errors that name the argument.

torch is imported where a tensor is checked, so that `daif.config` can use the plain checks without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

RENDER_PSFS = ("gaussian", "disc", "layered")  # the differentiable renderers' PSFs (daif.optics.render.render_focal_stack)


def check_tensor(name: str, value: object, shape: Sequence[int | str | None]) -> torch.Tensor:
    """Check that `value` is a floating tensor whose shape matches `shape`.

    `shape` holds ints (exact sizes), strings (symbolic names, any size >= 1, equal names must
    agree) or None (any size). Returns the tensor; raises TypeError/ValueError naming `name`.
    """
    import torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
    expected = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    if value.dim() != len(shape):
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(value.shape)}")
    symbols: dict[str, int] = {}
    for size, spec in zip(value.shape, shape):
        if isinstance(spec, int) and size != spec:
            raise ValueError(f"{name}: expected shape {expected}, got {tuple(value.shape)}")
        if isinstance(spec, str):
            if size < 1 or symbols.setdefault(spec, size) != size:
                raise ValueError(f"{name}: expected shape {expected}, got {tuple(value.shape)}")
    return value


def check_focus_distances(name: str, value: object, batch: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """Focus distances given as (B, S) or (S,) metres, as a (batch, size) tensor of `like`'s dtype and device."""
    import torch

    focus = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if focus.dim() == 1:
        focus = focus.expand(batch, -1)
    return check_tensor(name, focus, (batch, size))


def check_odd_size(name: str, value: object) -> int:
    """An odd positive integer (a window or kernel size); raises ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f"{name}: expected an odd positive integer, got {value!r}")
    return value


def check_kernel_size(name: str, value: object) -> int | None:
    """The PSF renderer's window K: an odd integer >= 3 (centred, and wide enough to blur at all), or None for
    no window (the ladder renderer, daif.optics.ladder, whose blur has no ceiling).

    The one rule for a kernel size wherever it is set (config, model, renderer, `daif render`, a store's
    manifest); raises ValueError naming `name`.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 3 or value % 2 == 0:
        raise ValueError(f"{name}: expected an odd integer >= 3 (the PSF window is centred) or null (no window), got {value!r}")
    return value


def check_unit_interval(name: str, value: object) -> float:
    """A number in [0, 1] (a mixing weight); raises ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return float(value)
