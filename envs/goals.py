"""Goal images: photograph the noiseless scripted expert at given phases of its run.

One capture loop serves every simulator: the caller runs the expert in a copy of its
simulation (a second ``MjData`` for our tasks, a second robosuite instance for robosuite's)
and hands over how to step and observe that copy, so the environment itself is untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np

from envs.interface import Expert, GoalImages

log = logging.getLogger(__name__)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def expert_goal_images(
    expert: Expert,
    apply: Callable[[np.ndarray], object],
    observe: Callable[[], tuple[np.ndarray, np.ndarray]],
    is_success: Callable[[], bool],
    capture: Mapping[str, str],
    max_steps: int,
    restart_phase: str | None = None,
    label: str = "expert",
    every: int | None = None,
) -> GoalImages:
    """Roll ``expert`` out and capture one image per goal name.

    The image of a goal is taken at the first step whose action is computed in its phase
    (before that action is applied). When the expert changes into ``restart_phase`` (it lost
    the object and starts over), the images taken so far are dropped and captured again on the
    way. The rollout stops once the last goal is captured, or after ``max_steps`` actions.
    With ``every``, an extra sub-goal image is taken every ``every`` expert steps after the
    latest goal (or the start, or the expert's restart), named after it and the steps since
    (``"start+4"``, ``"behind+2"``): a denser trail of images along the expert's run. An extra
    image less than ``every / 2`` steps before the next image is left out (it would nearly
    repeat that goal).

    Args:
        expert: a noiseless expert acting in the simulation that ``apply`` steps.
        apply: applies one action, float32 ``(7,)``, for one control step (its result is unused).
        observe: the current image, uint8 ``(H, W, 3)`` rendered like the observations, and
            robot state, float32 ``(7,)``.
        is_success: the task's success test on the current state.
        capture: expert phase -> goal name, in goal order, the final goal last, e.g.
            ``{"carry": "grasped", "lower": "above_target", "done": "final"}``.
        max_steps: the most actions applied (the episode length).
        restart_phase: the phase the expert goes back to when it starts over; ``None`` keeps the
            first image of every goal.
        label: names the rollout in log messages (e.g. the task name).
        every: expert steps between the extra sub-goal images; ``None``: none.

    Returns:
        The goal images in the order they were taken, the final goal last. Goals the expert
        never reached get the last frame; that, and a last frame that does not show the task
        solved, are logged as warnings.
    """
    if not capture:
        raise ValueError("capture must map at least one expert phase to a goal name, got an empty mapping")
    if not _is_int(max_steps) or max_steps < 0:
        raise ValueError(f"max_steps must be a non-negative int, got {max_steps!r}")
    if every is not None and (not _is_int(every) or every < 1):
        raise ValueError(f"every must be a positive int or None, got {every!r}")
    names = tuple(capture.values())
    shots: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}  # name -> (image, state, step), in capture order
    latest = ("start", 0)  # the latest goal captured and its step, for naming the extra images
    previous = expert.phase
    step = 0
    while True:
        action = expert.act()
        phase = expert.phase
        if phase == restart_phase and phase != previous:
            shots.clear()
            latest = ("start", step)
        previous = phase
        name = capture.get(phase)
        if name is not None and name not in shots:
            shots[name] = (*observe(), step)
            latest = (name, step)
        elif every is not None and step > latest[1] and (step - latest[1]) % every == 0:
            shots[f"{latest[0]}+{step - latest[1]}"] = (*observe(), step)
        if names[-1] in shots or step == max_steps:
            break
        apply(action)
        step += 1
    missing = [n for n in names if n not in shots]
    if missing:
        log.warning("%s: the expert did not reach goal(s) %s in %d steps; using the last frame", label, missing, step)
        last = (*observe(), step)
        for n in missing:
            shots[n] = last
    if not is_success():
        log.warning("%s: the expert's final goal image does not show success", label)
    order = [n for n in shots if n not in names] + list(names)
    order.sort(key=lambda n: shots[n][2])  # stable: goals never reached (the last frame) keep their order
    if every is not None:  # extras are `every` apart; one just before a goal would nearly repeat it
        order = [n for n, after in zip(order, order[1:] + [None], strict=True)
                 if n in names or shots[after][2] - shots[n][2] >= every / 2]
    ordered = [shots[n] for n in order]
    return GoalImages(
        images=tuple(s[0] for s in ordered),
        names=tuple(order),
        steps=tuple(s[2] for s in ordered),
        states=np.stack([s[1] for s in ordered]),
    )
