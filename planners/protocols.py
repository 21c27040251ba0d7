"""The planner contract, written down once.

A planner searches action sequences that *minimise* a cost. It sees only a cost function
over batches of candidate sequences; it knows nothing of encoders, torch modules or
simulators. The world model enters through the cost (:mod:`jepa_wm.planning.costs`: a weighted
sum of terms over the world model's rollouts of the candidates).

Shapes: ``B`` candidates, ``H`` horizon (actions per sequence), ``A`` action dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from torch import Tensor

if TYPE_CHECKING:
    from planners.action_space import ActionSpace


@runtime_checkable
class CostFunction(Protocol):
    """Cost of each candidate action sequence; lower is better.

    ``cost_fn(actions)`` takes ``actions`` float ``(B, H, A)`` (full action dimensions, held
    dimensions already filled in) and returns float ``(B,)``. Planners create candidates on
    ``cost_fn.device`` when the callable has that attribute (see :class:`BasePlanner`).
    The gradient planner also needs the cost to be differentiable w.r.t. ``actions``.
    """

    def __call__(self, actions: Tensor) -> Tensor: ...


@dataclass
class PlanResult:
    """What one :meth:`Planner.plan` call returns.

    Attributes:
        actions: the plan, float ``(H, A)`` on the planning device; always inside the
            feasible set, held dimensions at their fixed values.
        cost: the cost of ``actions`` under the ``cost_fn`` of the call; ``inf`` when every
            candidate failed, or when the time budget left room for none (``evaluated == 0``:
            then ``actions`` is the unevaluated initial mean).
        iterations: optimisation iterations completed (fewer than configured, possibly 0,
            when the time budget ran out).
        history: per completed iteration, ``"best"`` (lowest) and ``"mean"`` cost over the
            candidates evaluated in that iteration; ``len == iterations``.
        elapsed_s: wall-clock seconds spent in the call.
        timed_out: whether the time budget stopped the search (then ``actions`` is the
            cheapest candidate evaluated in the call).
        evaluated: candidates whose cost the call computed.
    """

    actions: Tensor
    cost: float
    iterations: int
    history: dict[str, list[float]] = field(default_factory=lambda: {"best": [], "mean": []})
    elapsed_s: float = 0.0
    timed_out: bool = False
    evaluated: int = 0


@runtime_checkable
class Planner(Protocol):
    """A trajectory optimiser behind one interface (CEM, iCEM, MPPI, gradient)."""

    @property
    def horizon(self) -> int:
        """Number of actions ``H`` in a plan."""
        ...

    @property
    def action_space(self) -> ActionSpace:
        """Dimensions, bounds and held values of the actions it plans."""
        ...

    def plan(self, cost_fn: CostFunction, init_mean: Tensor | None = None, *,
             deadline: float | None = None) -> PlanResult:
        """Search a plan minimising ``cost_fn``, starting from ``init_mean`` ``(H, A)``
        (the action space's default plan when ``None``), returning by ``deadline`` (a
        ``time.perf_counter()`` time) when given, as by the planner's own time budget."""
        ...

    def advance(self, steps: int) -> None:
        """Tell the planner that the first ``steps`` actions of its last plan were executed,
        so state carried between calls (iCEM's elites) is shifted in time."""
        ...

    def reset(self, seed: int | None = None) -> None:
        """Forget state carried between calls (start of an episode); reseed when ``seed``
        is given."""
        ...
