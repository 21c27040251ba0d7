"""``pick_place``: pick a cube up and put it down on a target pad."""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.base import TabletopEnv, sample_separated
from envs.experts import ExpertNoise, PickPlaceExpert
from envs.scene import TabletopSim
from envs.scene.props import CUBE_HALF

LAYOUT_HALF = 0.15  # m, cube and pad centres are drawn in [-LAYOUT_HALF, LAYOUT_HALF]^2
MIN_DIST = 0.12  # m, between any two cube / pad centres
SUCCESS_DIST = 0.035  # m, cube centre to pad centre (in the table plane)
REST_SPEED = 0.05  # m/s, a resting cube moves slower than this


class PickPlaceEnv(TabletopEnv):
    """Pick and place: success when the named cube rests on the named pad.

    "Rests on" means: centre within 3.5 cm of the pad centre in the table plane, sitting on
    the table (not lifted), slower than 5 cm/s and touched by neither finger.
    Reset options ``{"object": colour, "target": colour}`` choose the pair; by default it is
    drawn from ``self.np_random`` (this task has one cube and one pad).
    """

    task_name = "pick_place"
    max_episode_steps = 80
    cubes = ("red",)
    pads = ("blue",)
    # Sub-goal images at the expert's phase changes. A horizon-1 planner needs every stage shown:
    # toward the lifted "grasped" image alone the hand hovers over the cube (going down only
    # raises the energy); "at_cube" (open hand around it) and "closed" bring it down and shut.
    goal_phases = {
        "grasp": "at_cube", "lift": "closed", "carry": "grasped", "lower": "above_target", "release": "placed",
        "done": "final",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.object, self.target = self.cubes[0], self.pads[0]

    def _reset_task(self, options: dict[str, Any]) -> str:
        unknown = set(options) - {"object", "target"}
        if unknown:
            raise ValueError(f"{self.task_name} reset options are 'object' and 'target', got {sorted(unknown)}")
        self.object = self._choose(options.get("object"), self.cubes, "object")
        self.target = self._choose(options.get("target"), self.pads, "target")
        layout = sample_separated(self.np_random, len(self.cubes) + len(self.pads), LAYOUT_HALF, MIN_DIST)
        for color, xy in zip(self.cubes, layout):
            self.sim.place_cube(color, xy, self.np_random.uniform(-np.pi / 4, np.pi / 4))
        for color, xy in zip(self.pads, layout[len(self.cubes) :]):
            self.sim.set_pad(color, xy)
        return f"put the {self.object} cube on the {self.target} pad"

    def _choose(self, requested: str | None, choices: tuple[str, ...], what: str) -> str:
        if requested is None:
            return choices[int(self.np_random.integers(len(choices)))]
        if requested not in choices:
            raise ValueError(f"{what} must be one of {list(choices)}, got {requested!r}")
        return requested

    def _is_success(self, sim: TabletopSim) -> bool:
        cube = sim.cube_pos(self.object)
        return bool(
            np.linalg.norm(cube[:2] - sim.pad_pos(self.target)[:2]) < SUCCESS_DIST
            and cube[2] < CUBE_HALF + 0.005
            and sim.cube_speed(self.object) < REST_SPEED
            and sim.fingers_touching(self.object) == 0
        )

    def _expert(self, sim: TabletopSim, noise: ExpertNoise | None) -> PickPlaceExpert:
        return PickPlaceExpert(sim, noise, cube=self.object, pad=self.target)
