"""Goals from images: step hints, the stages' schedule, task checks and the goal itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.interface import GoalImages
from jepa_wm.planning.goals import ImageGoal, ImageGoals, hint_steps
from jepa_wm.protocols import Goal
from planners import SubgoalConfig
from tests.planning.fakes import FakeModel, latent_of, render

POSITIONS = [(0.0, 0.0, 0.1), (0.05, 0.0, 0.1), (0.05, 0.05, 0.15)]


def goal_images(steps=(4, 14, 18), names=("grasped", "above_target", "final")) -> GoalImages:
    """Goal images at :data:`POSITIONS` (as many as ``names``), captured at the expert's ``steps``."""
    count = len(names)
    return GoalImages(images=tuple(render(p) for p in POSITIONS[:count]), names=tuple(names), steps=tuple(steps),
                      states=np.zeros((count, 7), dtype=np.float32))


def test_hint_steps_by_hand() -> None:
    goals = goal_images(steps=(4, 14, 18))  # the expert spent 4 steps on the first sub-goal, 10 on the second
    assert hint_steps(goals.steps, 1.0) == (4, 10)
    assert hint_steps(goals.steps, 3.0) == (12, 30)
    assert hint_steps(goals.steps, 0.2) == (1, 2)  # 0.8 -> 1, 2.0 -> 2
    assert hint_steps(goals.steps, 0.01) == (1, 1)  # at least one step each
    assert hint_steps(goal_images(steps=(7,), names=("final",)).steps, 3.0) == ()  # the final goal has none


def test_schedule_for_one_and_several_stages() -> None:
    settings = ImageGoals(steps_per_goal=(5, 6), energy_threshold=0.03)
    assert settings.schedule(goal_images(steps=(9,), names=("final",))) == SubgoalConfig()  # one goal never switches
    assert settings.schedule(goal_images()) == SubgoalConfig(steps_per_goal=(5, 6), energy_threshold=0.03)
    hinted = ImageGoals(hint_scale=2.0, energy_threshold=(0.1, None)).schedule(goal_images())
    assert hinted.steps_per_goal == (8, 20) and hinted.energy_threshold == (0.1, None)
    assert ImageGoals().schedule(goal_images()).steps_per_goal == (12, 30)  # default: 3 x the expert's steps


def test_check_task_refuses_steps_that_do_not_fit_the_stages() -> None:
    three = ("grasped", "above_target", "final")
    ImageGoals(steps_per_goal=(5, 6)).check_task(three, "pick_place")  # one per sub-goal
    ImageGoals(steps_per_goal=(5, 6, 7)).check_task(three, "pick_place")  # the final goal's entry may be given
    with pytest.raises(ValueError, match=r"task 'pick_place' has the goal stages \['grasped', 'above_target', "
                                         r"'final'\]; steps_per_goal"):
        ImageGoals(steps_per_goal=(5, 6, 7, 8)).check_task(three, "pick_place")
    with pytest.raises(ValueError, match="task 'pick_place'.*steps_per_goal"):
        ImageGoals(steps_per_goal=(5,)).check_task(three, "pick_place")
    with pytest.raises(ValueError, match="task 'pick_place'.*energy_threshold has 4 entries"):
        ImageGoals(energy_threshold=(0.1, 0.1, 0.1, 0.1)).check_task(three, "pick_place")
    ImageGoals(energy_threshold=(0.1, 0.1)).check_task(three, "pick_place")
    ImageGoals(energy_threshold=0.1).check_task(three, "pick_place")  # one number fits any stages
    ImageGoals().check_task(three, "pick_place")  # steps from the hints always fit
    # a single-goal task ignores the schedule settings
    ImageGoals(steps_per_goal=(5, 6, 7, 8), energy_threshold=(0.1, 0.1, 0.1, 0.1)).check_task(("final",), "reach")


def test_bad_settings_are_refused() -> None:
    for bad in (0, -1.0, True, "3", None):
        with pytest.raises(ValueError, match="goal.hint_scale must be a number > 0"):
            ImageGoals(hint_scale=bad)
    with pytest.raises(ValueError, match="steps_per_goal must be positive"):
        ImageGoals(steps_per_goal=(3, 0))
    with pytest.raises(ValueError, match="energy_threshold"):
        ImageGoals(energy_threshold=[None, None])
    settings = ImageGoals(steps_per_goal=[5, 6], energy_threshold=[0.1, None])  # lists (omegaconf) become tuples
    assert settings.steps_per_goal == (5, 6) and settings.energy_threshold == (0.1, None)


def test_image_goal_refuses_mismatched_lengths() -> None:
    latents, images = torch.zeros(2, 4, 3), (render(POSITIONS[0]), render(POSITIONS[1]))
    assert isinstance(ImageGoal(("a", "b"), latents, images, SubgoalConfig()), Goal)
    ImageGoal(("a", "b"), latents, None, SubgoalConfig())  # a goal without images (e.g. from a sentence)
    with pytest.raises(ValueError, match=r"one latent and one image per goal stage \(3\), got 2 latents and 2 images"):
        ImageGoal(("a", "b", "c"), latents, images, SubgoalConfig())
    with pytest.raises(ValueError, match="got 2 latents and 1 images"):
        ImageGoal(("a", "b"), latents, images[:1], SubgoalConfig())
    with pytest.raises(ValueError, match="got 3 latents and None images"):
        ImageGoal(("a", "b"), torch.zeros(3, 4, 3), None, SubgoalConfig())


def test_goal_encodes_the_goal_images_once() -> None:
    model = FakeModel()
    goals = goal_images()
    goal = ImageGoals(steps_per_goal=(5, 6)).goal(model, goals)
    assert model.calls["encode_goal"] == 1
    assert goal.names == ("grasped", "above_target", "final") and len(goal.images) == 3
    assert all(a is b for a, b in zip(goal.images, goals.images, strict=True))
    torch.testing.assert_close(goal.latents, latent_of(torch.tensor(POSITIONS)))  # (G, N, D)
    assert goal.schedule == SubgoalConfig(steps_per_goal=(5, 6))
    final = ImageGoals(steps_per_goal=(5, 6)).goal(model, goal_images(steps=(9,), names=("final",)))
    assert final.latents.shape == (1, 4, 3) and final.schedule == SubgoalConfig()


def test_config_build_refuses_sentence_settings_with_one_line() -> None:
    assert ImageGoals.build(None, FakeModel(), steps_per_goal=[5, 6]) == ImageGoals(steps_per_goal=(5, 6))
    for given, shown in (({"instruction": "put the red cube on the blue pad"}, "instruction set"),
                         ({"templates": "mine.txt"}, "language.templates set")):
        with pytest.raises(ValueError, match=f"{shown}, but goal=image plans toward the env's goal images") as err:
            ImageGoals.build(None, FakeModel(), **given)
        assert "goal=text" in str(err.value) and "\n" not in str(err.value)
