"""`plan.py goal=text` on the shipped files: every stage's goal latents from the episode's sentence and first
frame, a user's template file, one instruction, and the one-line refusals."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_script
from tests.test_shipped_world_model import ROOT

FLOAT32 = "world_model.precision=float32"  # bfloat16 is emulated (slow) on CPUs without native bf16


def _run_plan(out, monkeypatch, *overrides: str) -> dict:
    monkeypatch.chdir(ROOT)
    goal = () if any(o.startswith("goal=") for o in overrides) else ("goal=text",)
    run_script("plan.py", "episodes=1", "progress=false", "threads=1", *goal, FLOAT32, *overrides,
               f"run_dir={out}", monkeypatch=monkeypatch)
    return json.loads((out / "results.json").read_text())


def test_plan_from_a_held_out_phrasing_of_the_episodes_colours(tmp_path, monkeypatch):
    """pick_place_multi (language scene) for 2 steps: the sentence is a held-out phrasing naming the episode's
    cube and pad; sub-goals follow the expert's steps and carry its gripper; no goal image is rendered."""
    import envs.base

    def no_goal_images(self, *args, **kwargs):
        raise AssertionError("goal=text rendered goal images")

    monkeypatch.setattr(envs.base.TabletopEnv, "goal_images", no_goal_images)
    record = _run_plan(tmp_path / "plan", monkeypatch, "task=pick_place_multi", "task.palette=lang", "max_steps=2")
    (episode,) = record["episodes"]
    sentence = episode["goal"]["instruction"]
    assert episode["goal"]["source"] == "text" and episode["steps"] == 2
    import envs

    env = envs.make("pick_place_multi", palette="lang")
    env.reset(seed=episode["seed"])
    object, target = env.unwrapped.object, env.unwrapped.target
    env.close()
    assert object in sentence and target in sentence
    assert episode["goal_names"] == ["at_cube", "closed", "grasped", "above_target", "placed", "final"]
    assert episode["steps_per_goal"] == [30, 6, 6, 12, 6]  # the recipe's schedule applies to sentences too
    assert any((tmp_path / "plan").glob("episode_000_seed_*.mp4"))


def test_a_users_template_file_and_one_instruction(tmp_path, monkeypatch):
    templates = tmp_path / "mine.txt"
    templates.write_text("# my phrasing\nplease touch the {target} marker with the gripper\n")
    record = _run_plan(tmp_path / "a", monkeypatch, "task=reach", "max_steps=1", "video=false",
                       f"language.templates={templates}")
    assert record["episodes"][0]["goal"]["instruction"] == "please touch the red marker with the gripper"
    record = _run_plan(tmp_path / "b", monkeypatch, "task=pick_place_multi", "task.palette=lang", "max_steps=1",
                       "video=false", "task.object=blue", "task.target=green",
                       "instruction=place the blue cube onto the green pad")
    assert record["episodes"][0]["goal"]["instruction"] == "place the blue cube onto the green pad"


@pytest.mark.parametrize("overrides, message", [
    (("task=pick_place_multi", "instruction=put the purple cube on the blue pad"), "names 'purple cube'"),
    (("task=reach", "instruction=   "), "empty or blank sentence"),
    (("task=pick_place_multi", "task.palette=lang", "task.object=red", "task.target=blue",
      "instruction=put the green cube on the blue pad"), "does not name red"),
    (("task=pick_place_multi", "task.palette=lang", "instruction=put the green cube on the blue pad"),
     "set task.object= too"),
    (("task=reach", "language.predictor=missing.pt"), "missing.pt"),
    (("task=reach", "goal=image", "instruction=reach the red marker"), "add goal=text"),
])
def test_bad_sentences_and_settings_are_one_line(tmp_path, monkeypatch, overrides, message):
    with pytest.raises(SystemExit) as stop:
        _run_plan(tmp_path / "plan", monkeypatch, "max_steps=1", "video=false", *overrides)
    text = str(stop.value.code)
    assert text.startswith("error: ") and message in text and "\n" not in text, text
    assert not (tmp_path / "plan").exists()
