"""The time budget as a deadline: how many candidates a plan call may still evaluate.

With ``time_budget_s`` set, :class:`~planners.base.Search` asks :meth:`ChunkTimes.next_chunk`
before each chunk of candidates how many it may send to the cost function, times the chunk
and records it with :meth:`ChunkTimes.add`. When not even one candidate is predicted to fit
before the deadline, ``next_chunk`` raises :class:`DeadlineReached`, and
:meth:`~planners.base.BasePlanner.plan` returns the best candidate evaluated so far.

The sizing rule (adaptive chunking):

* A chunk of ``B`` candidates is predicted to take at most ``min_i t_i * max(1, B / s_i)``
  over the recent chunks ``i`` (``s_i`` candidates in ``t_i`` seconds): the bound that holds
  when a chunk's time grows with its size and at most in proportion to it (a fixed overhead
  per call plus a time per candidate).
* The next chunk is the largest ``B`` predicted to take at most :data:`FRACTION` of the time
  left, so an estimate off by less than ``1 / FRACTION`` never crosses the deadline and the
  chunks shrink geometrically toward it; a single candidate may use all the time left.
* The first chunk a planner ever evaluates is one candidate (nothing is known yet). The
  timings are kept by the planner across calls, apart for evaluations with gradients.
"""

from __future__ import annotations

import math
import time
from collections import deque

#: share of the time left that the next chunk is predicted to take at most.
FRACTION = 0.5
#: recent chunk timings the prediction uses.
WINDOW = 32


class DeadlineReached(Exception):
    """No candidate fits before the deadline (raised by the search, caught by ``BasePlanner.plan``)."""


class ChunkTimes:
    """Wall-clock seconds of recent cost evaluations, by the number of candidates they took."""

    def __init__(self, window: int = WINDOW) -> None:
        self._seen: deque[tuple[int, float]] = deque(maxlen=window)

    def add(self, size: int, seconds: float) -> None:
        """Record that ``size`` candidates took ``seconds``."""
        self._seen.append((size, seconds))

    def predict(self, size: int) -> float | None:
        """An upper bound on the seconds ``size`` candidates take; ``None`` before any timing."""
        if not self._seen:
            return None
        return min(t * max(1.0, size / s) for s, t in self._seen)

    def largest_within(self, seconds: float, most: int) -> int:
        """The largest chunk ``<= most`` predicted to take at most ``seconds`` (0 if none does)."""
        fits = [math.floor(seconds * s / max(t, 1e-9)) for s, t in self._seen if t <= seconds]
        return min(most, max(fits, default=0))

    def next_chunk(self, wanted: int, deadline: float) -> int:
        """Candidates to evaluate next, out of ``wanted`` left, before ``deadline``
        (a ``time.perf_counter()`` value); see the module docstring.

        Raises:
            DeadlineReached: the deadline has passed, or not even one candidate is predicted to fit.
        """
        left = deadline - time.perf_counter()
        if left <= 0:
            raise DeadlineReached
        one = self.predict(1)
        if one is None:
            return 1
        size = self.largest_within(FRACTION * left, wanted)
        if size == 0 and one > left:
            raise DeadlineReached
        return max(size, 1)
