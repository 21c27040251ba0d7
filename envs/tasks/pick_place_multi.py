"""``pick_place_multi``: two cubes, two pads; the instruction names which cube goes on which pad."""

from __future__ import annotations

from envs.tasks.pick_place import PickPlaceEnv


class PickPlaceMultiEnv(PickPlaceEnv):
    """Pick and place among distractors: red and green cubes, blue and yellow pads.

    The pair is drawn per episode from ``self.np_random`` or chosen with
    ``reset(options={"object": "red", "target": "blue"})``; ``instruction`` reads
    e.g. "put the red cube on the blue pad". Success: the named cube rests on the named pad.
    """

    task_name = "pick_place_multi"
    max_episode_steps = 100
    cubes = ("red", "green")
    pads = ("blue", "yellow")
