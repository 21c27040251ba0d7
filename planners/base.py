"""Machinery every planner shares, written once.

* :class:`PlannerConfig`: horizon, evaluation chunk size and time budget, common to all
  planner configs (each planner's frozen config dataclass extends it).
* :class:`BasePlanner`: the :class:`~planners.protocols.Planner` contract around one
  abstract method, :meth:`BasePlanner._optimise`. It resolves the device, owns the seeded
  random stream, validates and projects the initial mean, runs the search under
  ``torch.no_grad`` (or with gradients for gradient planners), and packs the
  :class:`~planners.protocols.PlanResult`.
* :class:`Search`: what ``_optimise`` works with: chunked, validated candidate evaluation
  in the planned dimensions, per-iteration history and the deadline (:mod:`planners.deadline`).
* :func:`shift_plan`: warm start, dropping executed actions and padding the end.

Planned actions have shape ``(..., H, P)`` (``P`` planned dimensions); the cost function
sees full actions ``(B, H, A)``, expanded by :class:`~planners.action_space.ActionSpace`.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from planners.action_space import ActionSpace
from planners.deadline import ChunkTimes, DeadlineReached
from planners.protocols import CostFunction, PlanResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannerConfig:
    """Settings every planner has.

    Args:
        horizon: actions per plan ``H``.
        chunk_size: evaluate at most this many candidates per ``cost_fn`` call, to bound
            memory; ``None`` evaluates each population at once (without a time budget).
        time_budget_s: wall-clock seconds per :meth:`BasePlanner.plan` call; ``None`` for
            no budget. It is a deadline, checked before every ``cost_fn`` call: candidates
            go to the cost in chunks sized to fit the time left (at most ``chunk_size``):
            each chunk is the largest predicted, from the planner's recent chunk timings
            (overhead + time per candidate, with a margin for noise), to take at most half
            the time left, though one candidate may take all of it; a chunk is a single
            candidate when no recent timing is known, as are a planner's first two chunks
            (see :mod:`planners.deadline`). When no candidate fits any more, the search stops
            mid-iteration and the call returns the cheapest candidate evaluated so far
            (``PlanResult.timed_out``), or, when none was, the initial mean unevaluated
            (cost ``inf``, ``PlanResult.evaluated == 0``). A call thus overruns the
            budget only by how much a chunk exceeds its predicted time, or by a
            one-candidate probe that is slower than the budget. Results with a budget
            depend on timing; without one they do not.
    """

    horizon: int = 1
    chunk_size: int | None = None
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        check_positive_int(self.horizon, "horizon")
        if self.chunk_size is not None:
            check_positive_int(self.chunk_size, "chunk_size")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"time_budget_s must be positive or None, got {self.time_budget_s}")


def check_positive_int(value: object, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is an int ``> 0``."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_fraction(value: float, name: str, *, closed_high: bool = False) -> None:
    """Raise ``ValueError`` unless ``0 <= value < 1`` (``<= 1`` with ``closed_high``)."""
    if not (0.0 <= value <= 1.0 if closed_high else 0.0 <= value < 1.0):
        bracket = "]" if closed_high else ")"
        raise ValueError(f"{name} must be in [0, 1{bracket}, got {value}")


def positive_floats(value: float | Sequence[float], name: str) -> float | tuple[float, ...]:
    """A positive float, or any sequence of them (e.g. an omegaconf list) as a tuple."""
    values = [value] if isinstance(value, (int, float)) else list(value)
    if not values or any(not isinstance(v, (int, float)) or v <= 0 for v in values):
        raise ValueError(f"{name} must be a positive float or a sequence of them, got {value!r}")
    return float(value) if isinstance(value, (int, float)) else tuple(float(v) for v in values)


def per_dim(value: float | tuple[float, ...], num_planned: int, name: str, like: Tensor) -> Tensor:
    """A setting given as a float or one float per planned dimension, as a ``(P,)`` tensor
    on ``like``'s device and dtype."""
    if isinstance(value, tuple) and len(value) != num_planned:
        raise ValueError(f"{name} must be a float or have one entry per planned dimension "
                         f"({num_planned}), got {list(value)}")
    values = list(value) if isinstance(value, tuple) else [value] * num_planned
    return torch.tensor(values, device=like.device, dtype=like.dtype)


def shift_plan(actions: Tensor, steps: int, fill: Tensor | None = None) -> Tensor:
    """Warm start: drop the first ``steps`` executed actions and pad the end.

    Args:
        actions: the previous plan ``(H, A)`` (or planned actions ``(..., H, P)``).
        steps: how many of its actions were executed, ``>= 0``.
        fill: the padding action ``(A,)``; ``None`` repeats the last action of the plan.

    Returns:
        The shifted plan, same shape as ``actions``.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    horizon = actions.shape[-2]
    kept = actions[..., min(steps, horizon):, :]  # (..., H - k, A)
    pad_row = actions[..., -1:, :] if fill is None else fill.to(actions).expand_as(actions[..., -1:, :])
    pad = pad_row.expand(*actions.shape[:-2], horizon - kept.shape[-2], actions.shape[-1])
    return torch.cat([kept, pad], dim=-2)


class Search:
    """One planning call's evaluation context, handed to :meth:`BasePlanner._optimise`.

    With a deadline, :meth:`evaluate` and :meth:`evaluate_with_grad` size their chunks to fit
    the time left and raise :class:`~planners.deadline.DeadlineReached` when none fits;
    ``BasePlanner.plan`` catches it and returns :meth:`best`.

    Args:
        cost_fn, action_space: the cost and the space the candidates are planned in.
        chunk_size: most candidates per ``cost_fn`` call (``None``: a population at once).
        deadline: ``time.perf_counter()`` value by which the search must stop; ``None`` for none.
        generator: the planner's seeded random stream on ``device``.
        device: where candidates are created.
        chunk_times: recent chunk timings without and with gradients (``"cost"``,
            ``"grad"``), which the planner keeps across calls; fresh ones when ``None``.

    Attributes:
        device, dtype: where and how candidates are created.
        generator: the planner's seeded random stream on ``device``.
        iterations: iterations recorded so far.
        evaluated: candidates whose cost was computed.
        timed_out: whether the deadline stopped an evaluation.
    """

    def __init__(self, cost_fn: CostFunction, action_space: ActionSpace, chunk_size: int | None,
                 deadline: float | None, generator: torch.Generator, device: torch.device,
                 chunk_times: dict[str, ChunkTimes] | None = None) -> None:
        self._cost_fn = cost_fn
        self._space = action_space
        self._chunk_size = chunk_size
        self._deadline = deadline
        self._chunk_times = chunk_times if chunk_times is not None else {"cost": ChunkTimes(), "grad": ChunkTimes()}
        self._best: tuple[Tensor, Tensor] | None = None  # (H, P) and its 0-d cost, tracked under a deadline
        self.generator = generator
        self.device = device
        self.dtype = torch.float32
        self.history: dict[str, list[float]] = {"best": [], "mean": []}
        self.iterations = 0
        self.evaluated = 0
        self.timed_out = False

    def randn(self, *shape: int) -> Tensor:
        """Standard normal samples of ``shape`` from the planner's random stream."""
        return torch.randn(*shape, generator=self.generator, device=self.device, dtype=self.dtype)

    def _cost(self, planned: Tensor) -> Tensor:
        """Cost of planned candidates ``(b, H, P)`` -> ``(b,)``, validated; NaN -> +inf."""
        cost = self._cost_fn(self._space.expand(planned))
        if not isinstance(cost, Tensor):
            raise TypeError(f"cost_fn must return a torch.Tensor of shape ({planned.shape[0]},), "
                            f"got {type(cost).__name__}")
        if cost.shape != (planned.shape[0],):
            raise ValueError(f"cost_fn must return one cost per candidate, shape ({planned.shape[0]},); "
                             f"got {tuple(cost.shape)} for actions {tuple(planned.shape[:-1]) + (self._space.dim,)}")
        return torch.nan_to_num(cost.to(self.device, self.dtype), nan=math.inf)

    def _in_chunks(self, candidates: Tensor, evaluate_chunk: Callable[[Tensor], tuple[Tensor, ...]],
                   mode: str) -> list[tuple[Tensor, ...]]:
        """``evaluate_chunk`` over consecutive chunks of ``candidates`` ``(B, H, P)``; each result
        starts with the chunk's costs ``(b,)``. Under a deadline the chunks are sized to fit the
        time left and timed; without one they have ``chunk_size`` candidates (the last fewer).

        Raises:
            DeadlineReached: before a chunk, when no candidate fits before the deadline.
        """
        total, done, results = candidates.shape[0], 0, []
        times = self._chunk_times[mode]
        while done < total:
            if self._deadline is None:
                size = total if self._chunk_size is None else self._chunk_size
            else:
                try:
                    size = times.next_chunk(min(total - done, self._chunk_size or total), self._deadline)
                except DeadlineReached:
                    self.timed_out = True
                    raise
            chunk = candidates[done:done + size]  # (b, H, P)
            began = time.perf_counter()
            result = evaluate_chunk(chunk)
            if self._deadline is not None:
                if self.device.type == "cuda":  # asynchronous: time the work, not its launch
                    torch.cuda.synchronize(self.device)
                times.add(chunk.shape[0], time.perf_counter() - began)
                self._keep_best(chunk, result[0])
            results.append(result)
            done += chunk.shape[0]
            self.evaluated += chunk.shape[0]
        return results

    def _keep_best(self, chunk: Tensor, costs: Tensor) -> None:
        """Remember the cheapest candidate of ``chunk`` ``(b, H, P)`` with costs ``(b,)`` if it beats the best."""
        i = int(costs.argmin())
        if self._best is None or costs[i] < self._best[1]:
            self._best = (chunk[i].detach().clone(), costs[i].detach().clone())

    def best(self, fallback: Tensor) -> tuple[Tensor, Tensor]:
        """The cheapest candidate evaluated under the deadline ``(H, P)`` and its cost (0-d);
        ``fallback`` ``(H, P)`` with cost ``inf`` when none was."""
        if self._best is None:
            return fallback, torch.tensor(math.inf, device=self.device)
        return self._best

    @torch.no_grad()
    def evaluate(self, candidates: Tensor) -> Tensor:
        """Costs of planned candidates ``(B, H, P)`` -> ``(B,)``, in chunks, without autograd."""
        return torch.cat([cost for (cost,) in self._in_chunks(candidates, lambda c: (self._cost(c),), "cost")])

    def evaluate_with_grad(self, candidates: Tensor) -> tuple[Tensor, Tensor]:
        """Costs ``(B,)`` and their gradients w.r.t. the candidates ``(B, H, P)``, in chunks.

        Gradients are taken with ``torch.autograd.grad`` w.r.t. the actions only, so model
        parameters the cost goes through accumulate nothing.

        Raises:
            ValueError: when the cost is not differentiable w.r.t. the actions.
        """
        costs, grads = zip(*self._in_chunks(candidates, self._cost_and_grad, "grad"))
        return torch.cat(costs), torch.cat(grads)

    def _cost_and_grad(self, chunk: Tensor) -> tuple[Tensor, Tensor]:
        """Costs ``(b,)`` of planned candidates ``(b, H, P)`` and their gradients ``(b, H, P)``."""
        leaf = chunk.detach().requires_grad_(True)
        with torch.enable_grad():
            cost = self._cost(leaf)
            if not cost.requires_grad:
                raise ValueError(
                    "this planner needs a cost differentiable w.r.t. the actions, but cost_fn "
                    "returned a tensor without grad_fn (computed under torch.no_grad(), "
                    "detached, or through numpy?)"
                )
            (grad,) = torch.autograd.grad(cost.sum(), leaf, allow_unused=True)
        if grad is None:
            raise ValueError("cost_fn's output does not depend on the actions through autograd; "
                             "this planner needs a cost differentiable w.r.t. the actions")
        return cost.detach(), grad

    def record(self, costs: Tensor) -> None:
        """Close an iteration: log best and mean of its finite costs ``(B,)``."""
        finite = costs[torch.isfinite(costs)]
        self.history["best"].append(float(finite.min()) if finite.numel() else math.inf)
        self.history["mean"].append(float(finite.mean()) if finite.numel() else math.inf)
        self.iterations += 1


class BasePlanner(ABC):
    """Common part of every planner; subclasses implement :meth:`_optimise`.

    Args:
        config: the planner's frozen settings (a :class:`PlannerConfig` subclass).
        action_space: planned dimensions, bounds and held values.
        seed: seed of the random stream; equal seeds give identical plans. ``None`` draws
            a fresh seed.
        device: where to plan. ``None`` follows ``cost_fn.device`` when the cost has that
            attribute, else ``init_mean``'s device, else the CPU.
    """

    #: gradient planners set this: the search then runs with autograd enabled.
    differentiable: bool = False
    config_class: type[PlannerConfig] = PlannerConfig

    def __init__(self, config: PlannerConfig, action_space: ActionSpace, *, seed: int | None = None,
                 device: torch.device | str | None = None) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        if not isinstance(action_space, ActionSpace):
            raise TypeError(f"action_space must be an ActionSpace, got {type(action_space).__name__}")
        self.config = config
        self._action_space = action_space
        self._device = None if device is None else torch.device(device)
        self._seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}
        # how long the cost took per chunk, without and with gradients: sizes chunks under a
        # time budget (kept across calls and resets: it describes the cost and the machine)
        self._chunk_times = {"cost": ChunkTimes(), "grad": ChunkTimes()}

    @property
    def horizon(self) -> int:
        return self.config.horizon

    @property
    def action_space(self) -> ActionSpace:
        return self._action_space

    def reset(self, seed: int | None = None) -> None:
        """Forget state carried between calls; with ``seed``, restart the random stream."""
        if seed is not None:
            self._seed = seed
            self._generators.clear()

    def advance(self, steps: int) -> None:
        """The first ``steps`` actions of the last plan were executed (no state by default)."""
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            gen = torch.Generator(device=device)
            if self._seed is None:
                gen.seed()
            else:
                gen.manual_seed(self._seed)
            self._generators[device] = gen
        return self._generators[device]

    def _resolve_device(self, cost_fn: CostFunction, init_mean: Tensor | None) -> torch.device:
        if self._device is not None:
            return self._device
        cost_device = getattr(cost_fn, "device", None)
        if cost_device is not None:
            return torch.device(cost_device)
        return init_mean.device if isinstance(init_mean, Tensor) else torch.device("cpu")

    def _initial_mean(self, init_mean: Tensor | None, device: torch.device) -> Tensor:
        """``init_mean`` ``(H, A)`` (or the default plan) as projected planned actions ``(H, P)``."""
        space, horizon = self._action_space, self.horizon
        if init_mean is None:
            return space.reduce(space.default_action(device)).expand(horizon, space.num_planned).clone()
        if not isinstance(init_mean, Tensor):
            raise TypeError(f"init_mean must be a torch.Tensor ({horizon}, {space.dim}) or None, "
                            f"got {type(init_mean).__name__}")
        if init_mean.shape != (horizon, space.dim):
            raise ValueError(f"init_mean must have shape (horizon, action dim) = ({horizon}, {space.dim}), "
                             f"got {tuple(init_mean.shape)}")
        return space.project(space.reduce(init_mean.detach().to(device, torch.float32)))

    def plan(self, cost_fn: CostFunction, init_mean: Tensor | None = None, *,
             deadline: float | None = None) -> PlanResult:
        """Search a plan that minimises ``cost_fn``.

        Args:
            cost_fn: ``(B, H, A) -> (B,)``, lower is better.
            init_mean: starting plan ``(H, A)`` (e.g. the previous plan shifted with
                :func:`shift_plan`); held dimensions in it are ignored. ``None`` starts
                from the action space's default action.
            deadline: a ``time.perf_counter()`` time by which to return (e.g. the end of a
                control period: :attr:`planners.mpc.MPCConfig.time_per_action_s`); the call
                stops at the earlier of it and ``time_budget_s`` after the start.

        Returns:
            A :class:`PlanResult` with the plan ``(H, A)``, its cost and the search history.
            When the time budget ran out (``timed_out``), the plan is the cheapest candidate
            evaluated, or the initial mean with cost ``inf`` when none was (``evaluated == 0``).
        """
        if not callable(cost_fn):
            raise TypeError(f"cost_fn must be callable (B, H, A) -> (B,), got {type(cost_fn).__name__}")
        start = time.perf_counter()
        budget = self.config.time_budget_s
        device = self._resolve_device(cost_fn, init_mean)
        mean = self._initial_mean(init_mean, device)  # (H, P)
        ends = [t for t in (deadline, None if budget is None else start + budget) if t is not None]
        search = Search(cost_fn, self._action_space, self.config.chunk_size, min(ends, default=None),
                        self._generator(device), device, self._chunk_times)
        try:
            with torch.enable_grad() if self.differentiable else torch.no_grad():
                planned, cost = self._optimise(search, mean)
            planned = self._action_space.project(planned.detach())  # (H, P)
            if cost is None:
                cost = search.evaluate(planned[None])[0]
        except DeadlineReached:
            planned, cost = search.best(mean)
        elapsed = time.perf_counter() - start
        logger.debug("%s: %d iterations, %d candidates, cost %.5g, %.3f s%s", type(self).__name__,
                     search.iterations, search.evaluated, float(cost), elapsed,
                     " (time budget hit)" if search.timed_out else "")
        return PlanResult(actions=self._action_space.expand(planned), cost=float(cost),
                          iterations=search.iterations, history=search.history, elapsed_s=elapsed,
                          timed_out=search.timed_out, evaluated=search.evaluated)

    @abstractmethod
    def _optimise(self, search: Search, mean: Tensor) -> tuple[Tensor, Tensor | None]:
        """Run the search from the feasible planned mean ``(H, P)``.

        Call ``search.record(costs)`` once per iteration. Under a time budget
        ``search.evaluate`` raises :class:`~planners.deadline.DeadlineReached` when the
        deadline leaves no room; let it propagate (:meth:`plan` returns the best so far).

        Returns:
            The plan in planned dimensions ``(H, P)`` and its cost (a 0-d tensor), or
            ``None`` for the cost when it was not evaluated (then it is evaluated once).
        """
