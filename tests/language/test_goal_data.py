"""Language-goal data (jepa_wm/language/goal_data.py): every instruction pair's goals per seed,
resuming, refusals that change nothing, the reader's checks and the collection script."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import envs
from envs.interface import HELD_OUT_SEED_START
from jepa_wm.language.goal_data import (
    EPISODES,
    UNCOMMITTED_PREFIX,
    GoalDataError,
    GoalEpisodes,
    collect_goal_episodes,
    lock_path,
)
from jepa_wm.language.instructions import episode_roles
from jepa_wm.locks import LockedError, hold
from tests.helpers import run_script

LANG = {"name": "pick_place_multi", "palette": "lang", "image_size": 16}  # 16 px: ~0.5 s per seed
REACH = {"name": "reach", "image_size": 16}
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def lang_file(tmp_path_factory) -> Path:
    """Seeds 0, 1, 2 of pick_place_multi (palette=lang), collected in one run."""
    out = tmp_path_factory.mktemp("goals") / "lang.hdf5"
    summary = collect_goal_episodes(LANG, SEEDS, out)
    assert (summary.collected, summary.skipped, summary.split) == (3, 0, "training")
    return out


def _assert_goals_equal(found, expected) -> None:
    assert found.names == expected.names and found.steps == expected.steps
    np.testing.assert_array_equal(np.stack(found.images), np.stack(expected.images))
    np.testing.assert_array_equal(found.states, expected.states)


def _contents(path: Path) -> dict:
    """Every dataset and attribute of ``path``, by HDF5 name (for comparing two files)."""
    items: dict = {}

    def visit(name: str, node) -> None:
        items[name] = node[()] if isinstance(node, h5py.Dataset) else None
        for key, value in node.attrs.items():
            items[f"{name}@{key}"] = value

    with h5py.File(path, "r") as file:
        file.visititems(visit)
        items.update({f"@{key}": value for key, value in file.attrs.items()})
    return items


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {p.name: (p.read_bytes() if p.is_file() else None) for p in sorted(folder.iterdir())}


def test_every_pair_has_goals_and_the_own_pair_matches_the_env(lang_file):
    data = GoalEpisodes(lang_file)
    assert (len(data), data.seeds, data.split) == (3, SEEDS, "training")
    assert data.task_config == {"image_size": 16, "name": "pick_place_multi", "palette": "lang"}
    env = envs.make_from_config(LANG)
    for seed in SEEDS:
        obs, _ = env.reset(seed=seed)
        episode = data.episode(seed)
        assert episode.pairs == list(env.unwrapped.instruction_pairs) and len(episode.pairs) > 1
        assert episode.own_pair == episode_roles(env) and episode.own_pair in episode.pairs
        assert set(episode.goals) == set(episode.pairs) and episode.own_pair not in episode.negatives
        np.testing.assert_array_equal(episode.obs_image, obs["image"])
        np.testing.assert_array_equal(episode.obs_state, obs["state"])
        _assert_goals_equal(episode.goals[episode.own_pair], env.unwrapped.goal_images())
        other = episode.negatives[0]
        _assert_goals_equal(episode.goals[other], env.unwrapped.goal_images_for(*other))
        assert episode.goals[episode.own_pair].images[0].shape == (16, 16, 3)
        finals = {pair: goals.final.tobytes() for pair, goals in episode.goals.items()}
        assert len(set(finals.values())) == len(finals)  # every instruction ends in a different scene
    with pytest.raises(KeyError):
        data.episode(7)
    data.close()
    assert not lock_path(lang_file).exists()


def test_reach_has_its_one_pair(tmp_path):
    out = tmp_path / "reach.hdf5"
    collect_goal_episodes(REACH, [0, 1], out)
    env = envs.make_from_config(REACH)
    with GoalEpisodes(out) as data:
        for seed in (0, 1):
            env.reset(seed=seed)
            episode = data.episode(seed)
            assert episode.pairs == [episode.own_pair] and episode.own_pair == episode_roles(env)
            assert episode.own_pair[0] is None and episode.negatives == []
            _assert_goals_equal(episode.goals[episode.own_pair], env.unwrapped.goal_images())


def test_an_interrupted_collection_resumes_to_the_same_file(lang_file, tmp_path):
    out = tmp_path / "lang.hdf5"
    first = collect_goal_episodes(LANG, [0, 1], out)
    with h5py.File(out, "a") as file:  # a seed being written when the run died
        file[EPISODES].create_group(UNCOMMITTED_PREFIX + "seed_2").create_dataset("obs_image", data=np.zeros(3))
    with pytest.raises(GoalDataError, match=f"{out}:{EPISODES}/{UNCOMMITTED_PREFIX}seed_2: an uncommitted"):
        GoalEpisodes(out)
    second = collect_goal_episodes(LANG, SEEDS, out)
    assert (first.collected, second.collected, second.skipped) == (2, 1, 2)
    found, expected = _contents(out), _contents(lang_file)
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(found[key], value, err_msg=key)
    again = collect_goal_episodes(LANG, SEEDS, out)
    assert (again.collected, again.skipped) == (0, 3)


def test_a_damaged_group_is_collected_again(lang_file, tmp_path):
    out = tmp_path / "lang.hdf5"
    shutil.copy(lang_file, out)
    with h5py.File(out, "a") as file:
        del file[f"{EPISODES}/seed_1/goals/2"]
    with pytest.raises(GoalDataError, match=rf"^{out}:{EPISODES}/seed_1: expected goals/0 \.\. goals/\d+"):
        GoalEpisodes(out)
    assert collect_goal_episodes(LANG, SEEDS, out).collected == 1
    assert GoalEpisodes(out).episode(1).goals.keys() == GoalEpisodes(lang_file).episode(1).goals.keys()


@pytest.mark.parametrize("case", ["other_config", "directory", "text_file", "held_out_seeds", "evaluation_into_training"])
def test_refusals_are_one_line_and_change_nothing(lang_file, tmp_path, case):
    out = tmp_path / "lang.hdf5"
    shutil.copy(lang_file, out)
    config, seeds, evaluation = LANG, SEEDS, False
    if case == "other_config":
        config = {**LANG, "image_size": 32}
    elif case == "directory":
        out = tmp_path / "folder"
        out.mkdir()
    elif case == "text_file":
        out = tmp_path / "notes.hdf5"
        out.write_text("not an HDF5 file\n")
    elif case == "held_out_seeds":
        seeds = [3, HELD_OUT_SEED_START]
    else:
        seeds, evaluation = [HELD_OUT_SEED_START], True
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError) as refused:
        collect_goal_episodes(config, seeds, out, evaluation=evaluation)
    message = str(refused.value)
    assert "\n" not in message and (case == "held_out_seeds" or str(out) in message), message
    assert _snapshot(tmp_path) == before


def test_a_file_another_run_writes_is_refused(lang_file, tmp_path):
    out = tmp_path / "lang.hdf5"
    shutil.copy(lang_file, out)
    before = out.read_bytes()
    with hold(lock_path(out), "test"), pytest.raises(LockedError, match="in use by another running process"):
        collect_goal_episodes(LANG, [*SEEDS, 3], out)
    assert out.read_bytes() == before


def test_the_reader_refuses_other_files_with_one_line(tmp_path):
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as file:
        file.create_group("data")
    text = tmp_path / "text.hdf5"
    text.write_text("hello\n")
    for path, reason in ((other, "is not a language-goal file"), (text, "cannot be opened as HDF5"),
                         (tmp_path, "found a directory")):
        with pytest.raises(GoalDataError, match=f"^{path}.*{reason}") as refused:
            GoalEpisodes(path)
        assert "\n" not in str(refused.value)


def test_evaluation_files_hold_held_out_seeds_only(tmp_path):
    out = tmp_path / "eval.hdf5"
    with pytest.raises(ValueError, match="evaluation data uses seeds >="):
        collect_goal_episodes(REACH, [HELD_OUT_SEED_START, 4], out, evaluation=True)
    assert not out.exists()
    collect_goal_episodes(REACH, [HELD_OUT_SEED_START], out, evaluation=True)
    with GoalEpisodes(out) as data:
        assert (data.split, data.seeds) == ("evaluation", [HELD_OUT_SEED_START])
    with pytest.raises(ValueError, match="holds evaluation seeds, this run collects training seeds"):
        collect_goal_episodes(REACH, [0], out)


def test_the_script_collects_and_stops_with_one_line(tmp_path, monkeypatch):
    out = tmp_path / "reach.hdf5"
    base = ("task=reach", "task.image_size=16", f"out={out}", "progress=false")
    run_script("collect_language_goals.py", *base, "episodes=2", "seed=5", monkeypatch=monkeypatch)
    with GoalEpisodes(out) as data:
        assert data.seeds == [5, 6] and data.task_config == REACH
    for bad in ("episodes=0", f"seed={HELD_OUT_SEED_START}", "task.image_size=32"):
        with pytest.raises(SystemExit) as stop:
            run_script("collect_language_goals.py", *base, "episodes=1", bad, monkeypatch=monkeypatch)
        message = str(stop.value.code)
        assert message.startswith("error: ") and "\n" not in message, message
