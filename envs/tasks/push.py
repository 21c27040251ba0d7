"""``push``: push a cube across the table onto a target pad (it is never lifted)."""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.base import TabletopEnv, sample_separated
from envs.experts import ExpertNoise, PushExpert
from envs.scene import TabletopSim
from envs.scene.props import CUBE_HALF

LAYOUT_HALF = 0.13  # m, cube and pad centres are drawn in [-LAYOUT_HALF, LAYOUT_HALF]^2
MIN_DIST = 0.12  # m, initial cube-to-target distance
SUCCESS_DIST = 0.04  # m, cube centre to pad centre (in the table plane)


class PushEnv(TabletopEnv):
    """Push: success when the red cube's centre, on the table, is within 4 cm of the blue pad's centre."""

    task_name = "push"
    max_episode_steps = 80
    cubes = ("red",)
    pads = ("blue",)
    # sub-goals: gripper lowered behind the cube, then the cube pushed onto the pad, then retreated
    goal_phases = {"push": "behind", "retreat": "pushed", "done": "final"}

    def _reset_task(self, options: dict[str, Any]) -> str:
        if options:
            raise ValueError(f"push takes no reset options, got {sorted(options)}")
        cube, pad = sample_separated(self.np_random, 2, LAYOUT_HALF, MIN_DIST)
        self.sim.place_cube("red", cube, self.np_random.uniform(-np.pi / 4, np.pi / 4))
        self.sim.set_pad("blue", pad)
        return "push the red cube onto the blue pad"

    def _is_success(self, sim: TabletopSim) -> bool:
        cube = sim.cube_pos("red")
        on_table = cube[2] < CUBE_HALF + 0.01
        return bool(on_table and np.linalg.norm(cube[:2] - sim.pad_pos("blue")[:2]) < SUCCESS_DIST)

    def _expert(self, sim: TabletopSim, noise: ExpertNoise | None) -> PushExpert:
        return PushExpert(sim, noise, cube="red", pad="blue")
