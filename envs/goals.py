"""Goal images: run the noiseless scripted expert in a copy of the simulation and photograph it.

The copy has its own ``MjData`` (model shared), so the environment's physics, random
generator and episode are untouched; only the renderer is borrowed, and every observation
re-renders from the environment's own data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np

from envs.experts import ScriptedExpert
from envs.interface import GoalImages
from envs.scene.sim import TabletopSim

log = logging.getLogger(__name__)


def expert_goal_images(
    sim: TabletopSim,
    expert: ScriptedExpert,
    capture: Mapping[str, str],
    render: Callable[[TabletopSim], np.ndarray],
    is_success: Callable[[TabletopSim], bool],
    max_steps: int,
) -> tuple[GoalImages, bool]:
    """Roll ``expert`` out in ``sim`` (a copy) and capture one image per goal name.

    Args:
        sim: the simulation copy the expert acts in (it is stepped).
        expert: a noiseless expert bound to ``sim``.
        capture: expert phase -> goal name, in goal order; the image is taken at the first
            step whose action is computed in that phase (before the action is applied), e.g.
            ``{"carry": "grasped", "lower": "above_target", "done": "final"}``.
        render: renders a simulation the way observations are rendered, uint8 ``(H, W, 3)``.
        is_success: the task's success test.
        max_steps: the episode length; the rollout never goes beyond it.

    Returns:
        The goal images, and whether the task was solved when the final image was taken.
        Goals the expert never reached get the last frame (a warning is logged).
    """
    names = tuple(capture.values())
    shots: dict[str, tuple[np.ndarray, int, np.ndarray]] = {}
    step = 0
    while True:
        action = expert.act()
        name = capture.get(expert.phase)
        if name is not None and name not in shots:
            shots[name] = (render(sim), step, sim.robot_state())
        if names[-1] in shots or step == max_steps:
            break
        sim.step(action)
        step += 1
    missing = [n for n in names if n not in shots]
    if missing:
        log.warning("expert did not reach goal(s) %s in %d steps; using the last frame", missing, max_steps)
        last = (render(sim), step, sim.robot_state())
        for n in missing:
            shots[n] = last
    ordered = [shots[n] for n in names]
    goals = GoalImages(
        images=tuple(s[0] for s in ordered),
        names=names,
        steps=tuple(s[1] for s in ordered),
        states=np.stack([s[2] for s in ordered]),
    )
    return goals, is_success(sim)
