"""Instruction templates (jepa_wm/language/instructions.py): shipped sets, users' files, colour checks."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import envs
from envs.tasks.pick_place_multi import PickPlaceMultiEnv
from jepa_wm.language.instructions import (
    SPLITS,
    Scene,
    TemplateSet,
    check_sentence,
    episode_roles,
    normalized_template,
    resolve_templates,
    shipped_tasks,
    template_path,
)

TASKS = envs.registered_tasks(backend="mujoco")


def test_every_mujoco_task_ships_templates() -> None:
    assert set(TASKS) >= {"reach", "push", "pick_place", "pick_place_multi"}
    assert set(TASKS) <= set(shipped_tasks())


@pytest.mark.parametrize("task", TASKS)
def test_train_and_heldout_are_varied_and_disjoint_across_all_tasks(task: str) -> None:
    train, heldout = TemplateSet.for_task(task, "train"), TemplateSet.for_task(task, "heldout")
    assert len(train) >= 20 and len(heldout) >= 8
    every_train = {normalized_template(t) for other in TASKS for t in TemplateSet.for_task(other, "train")}
    leaked = [t for t in heldout if normalized_template(t) in every_train]
    assert not leaked, f"held-out templates of {task} also in a training set: {leaked}"
    # variety: many different leading words (verbs, "please", the colour itself, ...)
    assert len({t.split()[0].lower() for t in train}) >= 10


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("task", TASKS)
def test_every_shipped_template_renders_and_passes_the_colour_check(task: str, split: str) -> None:
    templates, scene = TemplateSet.for_task(task, split), Scene.of_task(task)
    assert templates.placeholders == scene.roles
    for obj, target in scene.pairs():
        for sentence in templates.render_all(object=obj, target=target):
            assert "{" not in sentence and "}" not in sentence
            assert target in re.findall(r"[a-z]+", sentence)
            assert obj is None or obj in re.findall(r"[a-z]+", sentence)
            assert check_sentence(sentence, task) == sentence


def test_render_is_deterministic_per_seed_and_covers_the_set() -> None:
    templates = TemplateSet.for_task("pick_place_multi", "train")

    def draws(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return [templates.render(rng, object="green", target="yellow") for _ in range(200)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
    assert set(draws(3)) == set(templates.render_all(object="green", target="yellow"))
    assert templates.render(0, object="green", target="yellow") == "put the green cube on the yellow pad"


def test_render_needs_each_used_colour_and_a_valid_choice() -> None:
    templates = TemplateSet.for_task("pick_place", "train")
    with pytest.raises(ValueError, match=r"pass target= a colour, got None"):
        templates.render(0, object="red")
    with pytest.raises(ValueError, match=r"template index must be in \[0, 32\)"):
        templates.render(len(templates), object="red", target="blue")
    with pytest.raises(TypeError, match="numpy Generator or an int index, got float"):
        templates.render(0.5, object="red", target="blue")  # type: ignore[arg-type]
    reach = TemplateSet.for_task("reach", "heldout")  # no {object}: an object colour is ignored
    assert reach.render(1, object="green", target="red") == "navigate the gripper to the red marker"


def test_a_users_template_file_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("# my phrasings\n\nkindly relocate the {object} brick to the {target} pad  # polite\n"
                    "{target} pad <- {object} cube\nliteral {{braces}} and {object} on {target}\n")
    templates = resolve_templates("pick_place_multi", "heldout", path)
    assert templates.lines == (3, 4, 5) and templates.source == str(path)
    assert templates.render_all(object="red", target="blue") == [
        "kindly relocate the red brick to the blue pad", "blue pad <- red cube", "literal {braces} and red on blue",
    ]
    rng = np.random.default_rng(0)
    assert templates.render(rng, object="red", target="blue") in templates.render_all(object="red", target="blue")
    assert resolve_templates("pick_place_multi", "heldout") == TemplateSet.for_task("pick_place_multi", "heldout")
    # without a task, either placeholder is fine (no role is required)
    assert TemplateSet.load(path).placeholders == ("object", "target")


@pytest.mark.parametrize(
    ("task", "text", "line", "says"),
    [
        ("pick_place", "put the {object} cube on the {target} pad\nput the {colour} cube on the {target} pad\n", 2,
         r"unknown placeholder \{colour\}"),
        ("pick_place", "# header\nput the {object cube on the {target} pad\n", 2, "unbalanced braces"),
        ("push", "push it } onto the {target} pad\n", 1, "unbalanced braces"),
        ("pick_place_multi", "\n\nput the {object} cube down\n", 3, r"lacks \{target\}"),
        ("reach", "reach the {target} marker\ntouch the {object} cube\n", 2,
         r"unknown placeholder \{object\}.*reach templates use \{target\}"),
        ("reach", "reach the {target:>5} marker\n", 1, "takes no format spec"),
        ("push", "push the {object} cube onto the {target} pad\nPush the {object} cube onto the {target} pad.\n", 2,
         "repeats line 1"),
    ],
)
def test_a_bad_template_file_gives_a_one_line_error_with_file_and_line(
    tmp_path: Path, task: str, text: str, line: int, says: str
) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:{line}: .*{says}") as error:
        TemplateSet.load(path, task=task)
    assert "\n" not in str(error.value)


def test_an_empty_or_missing_template_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("# only a comment\n\n   \n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: no templates"):
        TemplateSet.load(path, task="pick_place")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TemplateSet.load(tmp_path / "absent.txt")
    with pytest.raises(ValueError, match="no shipped templates for task 'robosuite_lift'"):
        template_path("robosuite_lift", "train")
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'heldout'\], got 'test'"):
        template_path("reach", "test")


@pytest.mark.parametrize("sentence", ["", "   ", "\n\t"])
def test_an_empty_sentence_is_refused(sentence: str) -> None:
    with pytest.raises(ValueError, match="empty or blank sentence"):
        check_sentence(sentence, "pick_place_multi")


@pytest.mark.parametrize(
    ("task", "sentence", "names"),
    [
        ("pick_place_multi", "put the purple cube on the blue pad", "purple cube"),
        ("pick_place_multi", "put the blue block on the red mat", "blue block"),  # right colours, wrong roles
        ("pick_place_multi", "the red one goes next to the orange thing", "orange"),
        ("push", "push the green cube onto the blue pad", "green cube"),
        ("reach", "Reach the Blue marker!", "blue marker"),
    ],
)
def test_a_colour_the_scene_lacks_is_refused(task: str, sentence: str, names: str) -> None:
    with pytest.raises(ValueError, match=rf"names '{names}', but the scene's object colours are") as error:
        check_sentence(sentence, task)
    assert "\n" not in str(error.value)


def test_check_sentence_accepts_the_scene_and_reads_colours_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_sentence("  Put the GREEN cube on the yellow pad. ", "pick_place_multi") == (
        "Put the GREEN cube on the yellow pad."
    )
    assert check_sentence("move the gripper to the red marker", "reach")
    # a scene given explicitly (e.g. the colours present this episode) narrows the choice
    with pytest.raises(ValueError, match="names 'green cube'"):
        check_sentence("put the green cube on the blue pad", "pick_place_multi", Scene(("red",), ("blue",)))
    # colours added to the environment class are picked up without touching this module
    monkeypatch.setattr(PickPlaceMultiEnv, "cubes", ("red", "green", "purple"))
    assert check_sentence("put the purple cube on the blue pad", "pick_place_multi")
    assert ("purple", "yellow") in Scene.of_task("pick_place_multi").pairs()


def test_scene_pairs_swaps_and_negatives() -> None:
    assert Scene.of_task("reach").pairs() == [(None, "red")] and Scene.of_task("reach").roles == ("target",)
    two_by_two = Scene.of_task("pick_place_multi")
    assert len(two_by_two.pairs()) == len(PickPlaceMultiEnv.cubes) * len(PickPlaceMultiEnv.pads)
    shared = Scene(objects=("red", "green", "blue"), targets=("blue", "red"))
    assert shared.pairs() == [("red", "blue"), ("red", "red"), ("green", "blue"), ("green", "red"),
                              ("blue", "blue"), ("blue", "red")]
    assert shared.swapped("red", "blue") == ("blue", "red")
    assert shared.swapped("green", "red") is None  # no green pad
    assert shared.swapped("red", "red") is None
    negatives = shared.negatives("red", "blue")
    assert negatives[0] == ("blue", "red") and ("red", "blue") not in negatives and len(negatives) == 5
    assert Scene(("red",), ("blue",)).negatives("red", "blue") == []
    with pytest.raises(ValueError, match=r"\(object, target\) must be one of"):
        shared.swapped("purple", "blue")
    with pytest.raises(ValueError, match="distinct non-empty colour names"):
        Scene(("red", "red"), ("blue",))
    with pytest.raises(ValueError, match="no coloured cubes, pads or markers"):
        Scene.of_env(SimpleNamespace())


def test_episode_roles_reads_the_env_or_its_only_props() -> None:
    multi = SimpleNamespace(cubes=("red", "green"), pads=("blue", "yellow"), object="green", target="yellow")
    assert episode_roles(multi) == ("green", "yellow")
    push = SimpleNamespace(unwrapped=SimpleNamespace(cubes=("red",), pads=("blue",)))
    assert episode_roles(push) == ("red", "blue")
    assert episode_roles(SimpleNamespace(markers=("red",))) == (None, "red")


def test_scene_of_an_env_is_the_episode_scene_not_the_palette() -> None:
    import envs

    env = envs.make("pick_place_multi", image_size=16, palette="lang")
    env.reset(seed=3)
    scene = Scene.of_env(env)
    assert scene.objects == tuple(env.unwrapped.scene_cubes) and scene.targets == tuple(env.unwrapped.scene_pads)
    assert len(scene.objects) == 3 and len(env.unwrapped.cubes) == 4  # 3 of the palette's 4 cube colours
    env.close()
