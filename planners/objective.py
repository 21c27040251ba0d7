"""The energy a planner minimises with a world model: distance of predicted latents to a goal.

V-JEPA 2-AC's energy is the L1 distance between the predicted latent of the last planned
frame and the goal latent, averaged over all patch tokens and channels. Here:

* ``distance="l1"`` (default): ``mean |z - g|``; ``"l2"``: ``mean (z - g)**2`` (mean squared
  error, the L2 cost of the JEPA world-model study and DINO-WM), both over tokens and channels.
* ``steps="last"`` (default, as the paper): only the prediction after the last action counts;
  ``"sum"``: the energies of every predicted step are summed.
* ``smoothing`` (default 1: none, as the paper): a ``k x k`` box blur of the token grid (both
  predicted and goal latents) before the distance; several sizes average their energies.
  Patch-wise distances barely change while the hand's patches do not overlap the goal's, so
  far from the goal the energy is nearly flat and a short-horizon planner wanders. Blurring
  spreads each patch's features to its neighbours (``experiments/energy_landscape.py
  smoothing=[3]`` measures how much better the energy then orders frames by distance).
* ``action_weight`` (default 0, as the paper) adds an L1 action cost on ``action_dims``:
  among candidates the model scores almost alike, the smaller move wins. Without it, near the
  goal a horizon-1 planner swung the hand 4-5 cm back and forth between two poses the model
  scored alike (reach episodes came within 2 cm of the marker, then ended 3-5 cm away).
* ``anchor`` (default off, as the paper) scores ``z_obs + pred(a) - pred(a_still)``: the
  predicted change that a candidate makes relative to keeping the hand still, added to the
  observed latent. A predictor's error at the current frame (it does not reproduce the
  observation exactly even when nothing moves) is shared by all candidates and cancels, so
  the energy compares candidates by what their actions change. It costs one extra rollout per
  distinct still action (the gripper commands among the candidates: one or two).
* ``change_weight`` (default 0: every token alike, as the paper) weighs each token of a goal by
  how much it changes from the goal before (:func:`change_token_weights`): between "hand behind
  the cube" and "cube on the pad" the tokens that change are the cube's and the hand's, not the
  arm's base or the table's, so a small object's tokens count more. ``token_weights`` of
  :func:`latent_energy` and :class:`LatentGoalCost` take the weights; who computes them (from
  the goals in order) is the caller's business (``jepa_wm.planning``).
* ``gripper_weight`` (default 0: none, as the paper) charges a plan whose gripper command
  differs from a goal's gripper target (-1 open, +1 closed; ``gripper_target`` of
  :class:`LatentGoalCost`): ``w * mean_t |a[t, gripper_dim] - target| / 2``. The energy of
  latents sees the fingers only a little; where a goal's gripper state is known, this term sets
  the command (``jepa_wm.planning``: today only the expert's gripper at each goal image, a
  privileged diagnostic; the shipped encoder cannot read it from the image).
* ``object_weight`` (default 0: none, as the paper) charges the distance between where an
  object reader (``object_reader`` of :class:`LatentGoalCost`: latents ``(M, N, D)`` -> positions
  ``(M, 3)``, e.g. :class:`jepa_wm.object_reader.ObjectReader`) puts the object in the predicted
  latent and where it puts it in the goal latent (``object_target``), on ``object_dims``:
  ``w * || p(z)[dims] - target[dims] ||_2`` (metres). The latent energy weighs a small object's
  few tokens like the arm's many; this term weighs the object by what it is.
* ``hand_weight`` (default 0: none) charges the distance (metres) between the plan's last planned
  grip-site position (the observed proprioception plus the planned deltas,
  :func:`planners.workspace.hand_distance`) and the hand position a hand reader reads from the
  goal image (``jepa_wm.planning``: the caller builds it into the ``penalty``). The latent energy
  tells the hand's height near an object poorly; the goal's read hand pose tells it. With
  ``hand_margin`` (metres, default 0) only the distance beyond it is charged,
  ``w * max(0, d - margin)``, and ``hand_dims`` (default x, y, z) picks the axes it counts. On
  x and y alone the term keeps a plan from heading away from the goal's hand (an image energy may
  prefer a hand out of view to a hand in the wrong place) and leaves the height, and so the
  approach from above an object, to the latent energy.

:class:`LatentGoalCost` wraps a ``rollout(actions) -> predicted latents`` callable and a goal
latent into a :class:`~planners.protocols.CostFunction`, so planners never see the model. An
optional ``penalty(actions) -> (B,)`` is added (e.g. :class:`planners.workspace.WorkspaceBox`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Distance = Literal["l1", "l2"]
Steps = Literal["last", "sum"]
DISTANCES: tuple[str, ...] = ("l1", "l2")
STEPS: tuple[str, ...] = ("last", "sum")


@dataclass(frozen=True)
class ObjectiveConfig:
    """How predictions are compared with the goal.

    Args:
        distance: ``"l1"`` (mean absolute difference) or ``"l2"`` (mean squared difference).
        steps: ``"last"`` scores the final predicted step only; ``"sum"`` sums over all steps.
        action_weight: weight ``w >= 0`` of the action cost ``w * mean_t sum_{i in action_dims}
            |a[t, i]|`` added to the energy (in action units; 0: none).
        action_dims: the action dimensions it counts (default: delta xyz).
        smoothing: odd side ``k`` of the box blur over the (square, per camera view) token grid (1: none), or
            several: the energy is then the mean of the distances at each blur (e.g. ``(1, 3)``).
        anchor: score ``z_obs + pred(a) - pred(a_still)`` instead of ``pred(a)``, where
            ``a_still`` is the candidate with ``action_dims`` zeroed (the hand still, the other
            dimensions as the candidate's) and ``z_obs`` the observation's latent: the error
            the predictor makes at the current frame, shared by every candidate, cancels.
        change_weight: ``lambda`` in ``[0, 1]``: tokens weighted ``(1 - lambda) + lambda * c / mean(c)``
            with ``c`` each token's change from the previous goal (:func:`change_token_weights`);
            0: all tokens alike.
        gripper_weight: cost per unit of ``|command - target| / 2`` (1 for the opposite binary
            command), averaged over the plan's steps, when the goal has a gripper target; 0: none.
        gripper_dim: the action dimension of the gripper command.
        object_weight: cost per metre of the read object position's distance to the goal's (on
            ``object_dims``), when the cost has an object reader and target; 0: none.
        object_dims: the position axes that distance counts (default: x and y, on the table).
        hand_weight: cost per metre of the planned grip site's distance to the hand position read
            from the goal (applied by the caller's ``penalty``, e.g. ``jepa_wm.planning``); 0: none.
        hand_margin: distance (metres) to the goal's hand position that the hand term does not charge:
            it charges ``hand_weight * max(0, d - hand_margin)``; 0: all of it.
        hand_dims: the position axes that distance counts (default: x, y and z).
    """

    distance: Distance = "l1"
    steps: Steps = "last"
    action_weight: float = 0.0
    action_dims: Sequence[int] = (0, 1, 2)
    smoothing: int | Sequence[int] = 1
    anchor: bool = False
    change_weight: float = 0.0
    gripper_weight: float = 0.0
    gripper_dim: int = 6
    object_weight: float = 0.0
    object_dims: Sequence[int] = (0, 1)
    hand_weight: float = 0.0
    hand_margin: float = 0.0
    hand_dims: Sequence[int] = (0, 1, 2)

    def __post_init__(self) -> None:
        for name in ("object_weight", "hand_weight", "hand_margin"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("object_dims", "hand_dims"):
            dims = tuple(int(d) for d in getattr(self, name))
            if not dims or not set(dims) <= {0, 1, 2} or len(set(dims)) != len(dims):
                raise ValueError(f"{name} must be distinct axes among 0, 1, 2 (x, y, z), "
                                 f"got {list(getattr(self, name))}")
            object.__setattr__(self, name, dims)
        if not 0 <= self.change_weight <= 1:
            raise ValueError(f"change_weight must be in [0, 1], got {self.change_weight}")
        if not self.gripper_weight >= 0:
            raise ValueError(f"gripper_weight must be >= 0, got {self.gripper_weight}")
        if not isinstance(self.gripper_dim, int) or self.gripper_dim < 0:
            raise ValueError(f"gripper_dim must be a non-negative action index, got {self.gripper_dim!r}")
        if self.distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {self.distance!r}")
        if self.steps not in STEPS:
            raise ValueError(f"steps must be one of {STEPS}, got {self.steps!r}")
        if not self.action_weight >= 0:
            raise ValueError(f"action_weight must be >= 0, got {self.action_weight}")
        dims = tuple(int(d) for d in self.action_dims)
        if not dims or min(dims) < 0 or len(set(dims)) != len(dims):
            raise ValueError(f"action_dims must be distinct non-negative indices, got {list(self.action_dims)}")
        object.__setattr__(self, "action_dims", dims)
        object.__setattr__(self, "smoothing", kernel_sizes(self.smoothing))


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


def change_token_weights(goal: Tensor, previous: Tensor, change_weight: float) -> Tensor:
    """Token weights ``(N,)`` (mean 1) for ``goal`` ``(N, D)``: how much each token changes from ``previous``.

    ``w = (1 - change_weight) + change_weight * c / mean(c)`` with ``c`` the mean absolute change
    of each token's channels from ``previous`` (the goal before, or the first observation).
    ``change_weight=0`` gives all ones; 1, weights proportional to the change. Two identical
    latents (no change anywhere) give all ones.
    """
    if goal.shape != previous.shape or goal.ndim != 2:
        raise ValueError(f"goal and previous must be latents (N, D) of one shape, got {tuple(goal.shape)} "
                         f"and {tuple(previous.shape)}")
    if not 0 <= change_weight <= 1:
        raise ValueError(f"change_weight must be in [0, 1], got {change_weight}")
    change = (goal - previous.to(goal)).abs().mean(-1)  # (N,)
    mean = change.mean()
    if change_weight == 0 or not mean > 0:
        return torch.ones_like(change)
    return (1 - change_weight) + change_weight * change / mean


def latent_energy(z_pred: Tensor, z_goal: Tensor, distance: Distance = "l1",
                  smoothing: int | Sequence[int] = 1, token_weights: Tensor | None = None) -> Tensor:
    """Distance of each predicted latent to the goal, averaged over tokens and channels.

    Args:
        z_pred: predicted latents ``(B, N, D)``.
        z_goal: goal latent ``(N, D)`` (shared by all candidates) or ``(B, N, D)``.
        distance: ``"l1"`` or ``"l2"`` (mean squared difference).
        smoothing: box-blur both over the token grid first (:func:`smooth_tokens`; 1: no blur);
            with several sizes, the mean of the distances at each.
        token_weights: ``(N,)`` weights of the tokens' distances (after the blur), mean 1 for the
            energy's usual scale (:func:`change_token_weights`); ``None``: all alike.

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
    if token_weights is not None and token_weights.shape != z_pred.shape[1:2]:
        raise ValueError(f"token_weights must be (N,) = ({z_pred.shape[1]},), got {tuple(token_weights.shape)}")
    z_goal = z_goal.reshape(-1, *z_pred.shape[1:])  # (1 or B, N, D)
    energies = []
    for kernel in kernel_sizes(smoothing):
        diff = smooth_tokens(z_pred, kernel) - smooth_tokens(z_goal, kernel)  # (B, N, D)
        per_token = (diff.abs() if distance == "l1" else diff.square()).mean(-1)  # (B, N)
        if token_weights is not None:
            per_token = per_token * token_weights.to(per_token)
        energies.append(per_token.mean(-1))  # (B,)
    return energies[0] if len(energies) == 1 else torch.stack(energies).mean(0)


class LatentGoalCost:
    """A :class:`~planners.protocols.CostFunction` from a world-model rollout and a goal latent.

    Args:
        rollout: ``actions (B, H, A) -> z_pred``, either ``(B, T, N, D)`` (one prediction per
            step, the last one after the last action) or ``(B, N, D)`` (the final prediction
            only; needs ``steps="last"``). It closes over the current observation's latent.
        goal: goal latent ``(N, D)``; its device is where planners create candidates.
        config: distance and which steps count.
        penalty: ``actions (B, H, A) -> (B,)`` added to the cost (``None``: nothing).
        observed: the current observation's latent ``(N, D)``; required with ``config.anchor``.
        token_weights: ``(N,)`` weights of the goal's tokens in the energy (``None``: all alike).
        gripper_target: the goal's gripper command in ``[-1, 1]`` for ``config.gripper_weight``
            (``None``: no gripper cost).
        object_reader: ``latents (M, N, D) -> positions (M, 3)`` for ``config.object_weight``.
        object_target: the goal's object position ``(3,)`` as ``object_reader`` reads the goal
            latent (``None``: no object cost).
    """

    def __init__(self, rollout: Callable[[Tensor], Tensor], goal: Tensor,
                 config: ObjectiveConfig = ObjectiveConfig(),
                 penalty: Callable[[Tensor], Tensor] | None = None, observed: Tensor | None = None,
                 token_weights: Tensor | None = None, gripper_target: float | None = None,
                 object_reader: Callable[[Tensor], Tensor] | None = None,
                 object_target: Tensor | None = None) -> None:
        if not callable(rollout):
            raise TypeError(f"rollout must be callable actions -> z_pred, got {type(rollout).__name__}")
        if not isinstance(goal, Tensor) or goal.ndim != 2:
            raise ValueError(f"goal must be a latent tensor (N, D), got "
                             f"{tuple(goal.shape) if isinstance(goal, Tensor) else type(goal).__name__}")
        if config.anchor and (observed is None or observed.shape != goal.shape):
            raise ValueError(f"anchor=True needs the observation's latent shaped like the goal {tuple(goal.shape)}, "
                             f"got {None if observed is None else tuple(observed.shape)}")
        self.rollout = rollout
        self.goal = goal
        self.config = config
        self.penalty = penalty
        self.observed = observed
        self.token_weights = token_weights
        if gripper_target is not None and not -1 <= gripper_target <= 1:
            raise ValueError(f"gripper_target must be a command in [-1, 1], got {gripper_target}")
        self.gripper_target = gripper_target
        if (object_reader is None) != (object_target is None):
            raise ValueError("object_reader and object_target go together (the goal's object position as the reader "
                             "reads the goal latent)")
        if object_target is not None and object_target.shape != (3,):
            raise ValueError(f"object_target must be a position (3,), got {tuple(object_target.shape)}")
        self.object_reader = object_reader
        self.object_target = object_target

    @property
    def device(self) -> torch.device:
        """The goal's device: planners create candidate actions there."""
        return self.goal.device

    def __call__(self, actions: Tensor) -> Tensor:
        """Costs ``(B,)`` of candidate actions ``(B, H, A)``: energy plus the action cost and penalty."""
        cost = self._energy(actions)  # (B,)
        if self.config.action_weight != 0:
            dims = list(self.config.action_dims)
            if max(dims) >= actions.shape[-1]:
                raise ValueError(f"action_dims {dims} out of range for actions {tuple(actions.shape)}")
            moves = actions[..., dims].abs().sum(-1).mean(-1)  # (B,)
            cost = cost + self.config.action_weight * moves.to(cost)
        if self.config.gripper_weight != 0 and self.gripper_target is not None:
            dim = self.config.gripper_dim
            if dim >= actions.shape[-1]:
                raise ValueError(f"gripper_dim {dim} out of range for actions {tuple(actions.shape)}")
            mismatch = (actions[..., dim] - self.gripper_target).abs().mean(-1) / 2  # (B,)
            cost = cost + self.config.gripper_weight * mismatch.to(cost)
        if self.penalty is not None:
            cost = cost + self.penalty(actions).to(cost)
        return cost

    def _predict(self, actions: Tensor) -> Tensor:
        """The rollout of ``actions`` ``(B, H, A)``, anchored at the observation with ``config.anchor``."""
        z_pred = self.rollout(actions)
        if not self.config.anchor:
            return z_pred
        still = actions.detach().clone()
        still[..., list(self.config.action_dims)] = 0
        unique, inverse = torch.unique(still, dim=0, return_inverse=True)  # few rows: one per gripper command
        with torch.no_grad():
            z_still = self.rollout(unique)[inverse]
        observed = self.observed.to(z_pred)  # type: ignore[union-attr]
        return observed + (z_pred - z_still)

    def _score(self, z: Tensor) -> Tensor:
        """Energies ``(M,)`` of latents ``(M, N, D)``: the latent energy, plus the object term when configured."""
        energy = latent_energy(z, self.goal, self.config.distance, self.config.smoothing, self.token_weights)
        if self.config.object_weight == 0 or self.object_reader is None:
            return energy
        dims = list(self.config.object_dims)
        read = self.object_reader(z)[:, dims]  # (M, k)
        distance = (read - self.object_target.to(read)[dims]).norm(dim=-1)  # type: ignore[union-attr]
        return energy + self.config.object_weight * distance.to(energy)

    def _energy(self, actions: Tensor) -> Tensor:
        z_pred = self._predict(actions)
        batch, energy = actions.shape[0], self._score
        if z_pred.ndim == 3 and self.config.steps == "last":
            return energy(z_pred)
        if z_pred.ndim != 4 or z_pred.shape[0] != batch:
            raise ValueError(f"rollout must return (B, T, N, D) (or (B, N, D) with steps='last') with "
                             f"B={batch}, got {tuple(z_pred.shape)}")
        if self.config.steps == "last":
            return energy(z_pred[:, -1])
        steps = z_pred.shape[1]
        per_step = energy(z_pred.flatten(0, 1))  # (B * T,)
        return per_step.view(batch, steps).sum(1)  # (B,)
