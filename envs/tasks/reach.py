"""``reach``: move the gripper to a floating marker."""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.base import TabletopEnv
from envs.experts import ExpertNoise, ReachExpert
from envs.scene import TabletopSim

MARKER_LOW = np.array([-0.15, -0.15, 0.05])  # m, box the marker is drawn from
MARKER_HIGH = np.array([0.15, 0.15, 0.22])
MIN_START_DIST = 0.10  # m, marker to initial grip site
SUCCESS_DIST = 0.03  # m, grip site to marker centre


class ReachEnv(TabletopEnv):
    """Reach: success when the grip site (between the fingertips) is within 3 cm of the red marker."""

    task_name = "reach"
    max_episode_steps = 40
    markers = ("red",)

    def _reset_task(self, options: dict[str, Any]) -> str:
        if options:
            raise ValueError(f"reach takes no reset options, got {sorted(options)}")
        ee = self.sim.ee_pos
        while True:
            marker = self.np_random.uniform(MARKER_LOW, MARKER_HIGH)
            if np.linalg.norm(marker - ee) >= MIN_START_DIST:
                break
        self.sim.set_marker("red", marker)
        return "move the gripper to the red marker"

    def _is_success(self, sim: TabletopSim) -> bool:
        return bool(np.linalg.norm(sim.ee_pos - sim.marker_pos("red")) < SUCCESS_DIST)

    def _expert(self, sim: TabletopSim, noise: ExpertNoise | None) -> ReachExpert:
        return ReachExpert(sim, noise, marker="red")
