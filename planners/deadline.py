"""The time budget as a deadline: how many candidates a plan call may still evaluate.

With ``time_budget_s`` set, :class:`~planners.base.Search` asks :meth:`ChunkTimes.next_chunk`
before each chunk of candidates how many it may send to the cost function, times the chunk
and records it with :meth:`ChunkTimes.add`. When not even one candidate is predicted to fit
before the deadline, ``next_chunk`` raises :class:`DeadlineReached`, and
:meth:`~planners.base.BasePlanner.plan` returns the best candidate evaluated so far.

The sizing rule (adaptive chunking):

* A chunk of ``B`` candidates is predicted to take ``(a + b * B) * m`` seconds: ``a`` (the
  overhead of a cost call) and ``b`` (the time per candidate) are fitted by least squares,
  non-negative, to the last :data:`WINDOW` chunks but their slowest :data:`TRIM` (relative to
  a first fit: the stalls of a loaded machine, which no chunk size avoids), and the margin
  ``m >= 1`` is the :data:`QUANTILE` of the kept chunks' measured over fitted times, so that
  a noisy machine makes the prediction cautious.
* The next chunk is the largest ``B`` predicted to take at most :data:`FRACTION` of the time
  left, with ``m`` raised to the latest chunk's measured over fitted time if that is larger
  (a slow spell makes the next chunk small at once), so the chunks shrink geometrically
  toward the deadline; a single candidate may use all the time left. When not even one is
  predicted to fit (with ``m`` alone), the search stops.
* With nothing known, the next chunk is one candidate: a probe. The first chunk a planner
  ever evaluates is not timed (it carries one-time costs: lazy initialisation, caches), so
  its first two chunks are probes. Timings are kept by the planner across calls (apart for
  evaluations with gradients) and forgotten after :data:`MAX_AGE_S`, so a planner that a slow
  spell left with no room for a candidate probes again later instead of never evaluating again.
"""

from __future__ import annotations

import math
import time
from collections import deque

#: share of the time left that the next chunk is predicted to take at most.
FRACTION = 0.5
#: recent chunk timings the prediction is fitted to.
WINDOW = 32
#: quantile of measured over fitted chunk times that predictions are scaled by.
QUANTILE = 0.9
#: share of the timings (rounded up, all but one at most), the slowest relative to a first fit,
#: left out of the fit.
TRIM = 0.1
#: seconds after which a chunk timing is forgotten.
MAX_AGE_S = 10.0


class DeadlineReached(Exception):
    """No candidate fits before the deadline (raised by the search, caught by ``BasePlanner.plan``)."""


class ChunkTimes:
    """Wall-clock seconds of recent cost evaluations, by the number of candidates they took.

    Args:
        window: most timings kept.
        max_age_s: seconds after which a timing is forgotten.
        skip_first: leave the first timing out (one-time costs).
    """

    def __init__(self, window: int = WINDOW, max_age_s: float = MAX_AGE_S, skip_first: bool = True) -> None:
        self._seen: deque[tuple[int, float, float]] = deque(maxlen=window)  # (size, seconds, when)
        self._max_age_s = max_age_s
        self._skip = skip_first

    def add(self, size: int, seconds: float) -> None:
        """Record that ``size`` candidates took ``seconds``."""
        if self._skip:
            self._skip = False
            return
        self._seen.append((size, seconds, time.perf_counter()))

    def _recent(self) -> list[tuple[int, float]]:
        """The timings younger than ``max_age_s``, as ``(size, seconds)``."""
        oldest = time.perf_counter() - self._max_age_s
        while self._seen and self._seen[0][2] < oldest:
            self._seen.popleft()
        return [(s, t) for s, t, _ in self._seen]

    def _fit(self) -> tuple[float, float, float, float] | None:
        """Overhead ``a`` and time per candidate ``b`` (seconds, ``>= 0``), the margin ``m >= 1``
        and the latest timing's measured over fitted time; ``None`` without recent timings. The
        slowest :data:`TRIM` of the timings relative to a first fit (stalls of a loaded machine,
        which chunk sizes cannot avoid) are left out of the fit and the margin."""
        seen = self._recent()
        if not seen:
            return None
        a, b = _line(seen)
        ratios = sorted((t / max(a + b * s, 1e-9), s, t) for s, t in seen)
        kept = [(s, t) for _, s, t in ratios[: len(seen) - min(math.ceil(TRIM * len(seen)), len(seen) - 1)]]
        a, b = _line(kept)
        ratios = sorted(t / max(a + b * s, 1e-9) for s, t in kept)
        last_size, last_time = seen[-1]
        return a, b, max(1.0, ratios[math.ceil(QUANTILE * len(kept)) - 1]), last_time / max(a + b * last_size, 1e-9)

    def predict(self, size: int) -> float | None:
        """Seconds ``size`` candidates are predicted to take; ``None`` without recent timings."""
        fit = self._fit()
        if fit is None:
            return None
        a, b, margin, _ = fit
        return (a + b * size) * margin

    def largest_within(self, seconds: float, most: int) -> int:
        """The largest chunk ``<= most`` predicted to take at most ``seconds`` (0 if none), the
        prediction scaled up further when the latest chunk was slower than it."""
        fit = self._fit()
        if fit is None:
            return 0
        a, b, margin, latest = fit
        margin = max(margin, latest)
        if (a + b) * margin > seconds:
            return 0
        return most if b == 0 else min(most, math.floor((seconds / margin - a) / b))

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
        if one > left:
            raise DeadlineReached
        return max(self.largest_within(FRACTION * left, wanted), 1)


def _line(seen: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares ``seconds ~ a + b * size`` over ``(size, seconds)`` pairs, with ``a, b >= 0``."""
    n = len(seen)
    mean_s, mean_t = sum(s for s, _ in seen) / n, sum(t for _, t in seen) / n
    var_s = sum((s - mean_s) ** 2 for s, _ in seen)
    if var_s == 0:  # one size seen: all of it counted per candidate
        return 0.0, mean_t / mean_s
    b = sum((s - mean_s) * (t - mean_t) for s, t in seen) / var_s
    a = mean_t - b * mean_s
    if a < 0:  # through the origin
        return 0.0, sum(s * t for s, t in seen) / sum(s * s for s, _ in seen)
    if b < 0:  # no slower with more candidates: all overhead
        return mean_t, 0.0
    return a, b
