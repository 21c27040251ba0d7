"""The latent energy: distance of predicted latents to a goal latent, as V-JEPA 2-AC plans with.

V-JEPA 2-AC's energy is the L1 distance between the predicted latent of the last planned frame
and the goal latent, averaged over all patch tokens and channels (:func:`latent_energy`):

* ``distance="l1"`` (the paper's): ``mean |z - g|``; ``"l2"``: ``mean (z - g)**2`` (the L2 cost
  of the JEPA world-model study and DINO-WM), both over tokens and channels.
* ``smoothing`` (1: none, the paper's): a ``k x k`` box blur of each camera view's token grid,
  predicted and goal latents alike, before the distance (:func:`smooth_tokens`); several sizes
  average their energies. Blurring spreads each patch's features to its neighbours, so the energy
  still orders frames by distance where the hand's patches do not overlap the goal's.

Pure tensor maths: the planner's cost terms (:mod:`jepa_wm.planning.costs`) and the research
probes call these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Distance = Literal["l1", "l2"]
DISTANCES: tuple[str, ...] = ("l1", "l2")


def kernel_sizes(smoothing: int | Sequence[int]) -> tuple[int, ...]:
    """``smoothing`` as a tuple of odd blur sizes ``>= 1``; ``ValueError`` otherwise."""
    sizes = (smoothing,) if isinstance(smoothing, int) else tuple(smoothing)
    if not sizes or any(not isinstance(k, int) or k < 1 or k % 2 == 0 for k in sizes):
        raise ValueError(f"smoothing must be odd ints >= 1 (one or several), got {smoothing!r}")
    return sizes


MAX_VIEWS = 3  # camera views a token sequence may stack (envs: front, side, top)


def view_grids(tokens: int) -> tuple[int, int]:
    """``(views, side)``: ``tokens`` as ``views`` square ``side x side`` token grids one after another.

    One camera gives one square grid; several cameras' views, stacked top to bottom in the
    image (``envs`` ``camera="front+side"``), give that many square grids in raster order. The
    fewest views whose grids are square is taken (up to :data:`MAX_VIEWS`).
    """
    for views in range(1, MAX_VIEWS + 1):
        side = math.isqrt(tokens // views)
        if tokens % views == 0 and side * side * views == tokens:
            return views, side
    raise ValueError(f"smoothing needs a square token grid (or up to {MAX_VIEWS} stacked square grids, one per "
                     f"camera view), got {tokens} tokens")


def smooth_tokens(z: Tensor, kernel: int) -> Tensor:
    """Box-blur tokens ``(B, N, D)`` over their square ``h x h`` grid (``N = h * h``, row-major),
    or over each camera view's square grid when ``N`` stacks several (:func:`view_grids`).

    Each token becomes the mean of the tokens in the ``kernel x kernel`` window around it
    (stride 1; at the edges, of those inside the grid; never across views). ``kernel == 1`` returns ``z``.
    """
    if kernel == 1:
        return z
    batch, tokens, dim = z.shape
    views, side = view_grids(tokens)
    grid = z.reshape(batch * views, side * side, dim).transpose(1, 2).reshape(batch * views, dim, side, side)
    grid = F.avg_pool2d(grid, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return grid.reshape(batch * views, dim, side * side).transpose(1, 2).reshape(batch, tokens, dim)  # (B, N, D)


def latent_energy(z_pred: Tensor, z_goal: Tensor, distance: Distance = "l1",
                  smoothing: int | Sequence[int] = 1) -> Tensor:
    """Distance of each predicted latent to the goal, averaged over tokens and channels.

    Args:
        z_pred: predicted latents ``(B, N, D)``.
        z_goal: goal latent ``(N, D)`` (shared by all candidates) or ``(B, N, D)``.
        distance: ``"l1"`` or ``"l2"`` (mean squared difference).
        smoothing: box-blur both over the token grid first (:func:`smooth_tokens`; 1: no blur);
            with several sizes, the mean of the distances at each.

    Returns:
        Energies ``(B,)``.
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    if z_pred.ndim != 3:
        raise ValueError(f"z_pred must be (B, N, D), got shape {tuple(z_pred.shape)}")
    if z_goal.shape not in (z_pred.shape[1:], z_pred.shape):
        raise ValueError(f"z_goal must be (N, D) = {tuple(z_pred.shape[1:])} or match z_pred "
                         f"{tuple(z_pred.shape)}, got {tuple(z_goal.shape)}")
    z_goal = z_goal.reshape(-1, *z_pred.shape[1:])  # (1 or B, N, D)
    energies = []
    for kernel in kernel_sizes(smoothing):
        diff = smooth_tokens(z_pred, kernel) - smooth_tokens(z_goal, kernel)  # (B, N, D)
        per_token = (diff.abs() if distance == "l1" else diff.square()).mean(-1)  # (B, N)
        energies.append(per_token.mean(-1))  # (B,)
    return energies[0] if len(energies) == 1 else torch.stack(energies).mean(0)
