"""The gripper reader: trains on labelled frames, round-trips, and its cost term charges plans for the other gripper."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import envs
from jepa_wm.data import HELD_OUT_SEED_START
from jepa_wm.data.hdf5 import demo_name, init_data_group, write_demo
from jepa_wm.planning.agent import MPCAgent
from jepa_wm.planning.costs import Candidates, LatentEnergy, WeightedSum
from jepa_wm.planning.episode import run_episode
from jepa_wm.planning.goals import ImageGoal, ImageGoals
from jepa_wm.planning.latent_model import LatentModel
from jepa_wm.planning.loading import load_planning_world_model
from jepa_wm.planning.runner import PlanSetupError, build
from jepa_wm.plugins.gripper_reader import train as gripper_train
from jepa_wm.plugins.gripper_reader.cost import GripperTarget
from jepa_wm.plugins.gripper_reader.reader import GripperReader, closed_labels
from jepa_wm.plugins.gripper_reader.train import goal_agreement, train_gripper_reader
from jepa_wm.training.loop import NonFiniteLossError
from planners import SubgoalConfig
from tests.helpers import ROOT, random_episode, run_script, tiny_planner, write_tiny_world_model
from tests.plugins.divergence import diverging

IMG = 16
SEED = HELD_OUT_SEED_START


def _frames(n: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Noisy 16x16 frames; the "closed" ones hold a bright 3x3 square somewhere."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (n, 3, IMG, IMG), dtype=np.uint8)
    closed = rng.random(n) < 0.4
    for i in np.flatnonzero(closed):
        y, x = rng.integers(0, IMG - 3, 2)
        images[i, :, y : y + 3, x : x + 3] = 250
    return torch.from_numpy(images), closed, np.arange(n) // 8  # 8 frames per episode


def test_labels_and_training_reach_the_pattern(tmp_path):
    np.testing.assert_array_equal(closed_labels(np.array([0.0, 0.048, 0.0719, 0.0721, 0.09]), 0.09),
                                  [True, True, True, False, False])  # below 80% of fully open
    images, closed, episodes = _frames(400)
    reader, metrics = train_gripper_reader(images, closed, episodes, epochs=8, progress=False)
    assert metrics["held_out_accuracy"] > 0.9 > metrics["held_out_closed_fraction"]
    assert metrics["held_out_frames"] + metrics["train_frames"] == 400
    path = reader.save(tmp_path / "reader.pt", {"note": "test"})
    loaded, meta = GripperReader.load(path)
    assert meta == {"note": "test"} and loaded.image_hw == (IMG, IMG)
    torch.testing.assert_close(loaded(images[:5]), reader(images[:5]))
    hwc = [image.permute(1, 2, 0).numpy() for image in images[:6]]
    assert reader.targets(hwc) == [1.0 if c else -1.0 for c in (reader(images[:6]) > 0).tolist()]
    with pytest.raises(ValueError, match=r"takes images \(B, 3, 16, 16\)"):
        reader(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(FileNotFoundError, match="train_gripper_reader.py"):
        GripperReader.load(tmp_path / "none.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a gripper reader"):
        GripperReader.load(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="at least 2 episodes"):
        train_gripper_reader(images[:8], closed[:8], episodes[:8], epochs=1, progress=False)


def _episodes_file(path: Path, episodes: int = 4, steps: int = 8) -> Path:
    """Random 16x16 pick_place episodes (the gripper opening: the state's 7th value)."""
    with h5py.File(path, "w") as file:
        data = init_data_group(file, {"env_name": "pick_place", "type": 2, "env_kwargs": {"image_size": IMG}},
                               {"task": "pick_place", "seed": 0, "noise": [0.0, 0.0], "version": "test"})
        for i in range(episodes):
            write_demo(data, demo_name(i), random_episode(steps, seed=i, size=IMG))
    return path


def test_training_and_the_script_stop_at_the_first_non_finite_loss(tmp_path, monkeypatch):
    images, closed, episodes = _frames(80)  # 64 training frames: 4 steps of 16 per epoch
    monkeypatch.setattr(gripper_train, "GripperReader", diverging(GripperReader, at=3))
    with pytest.raises(NonFiniteLossError, match=r"^training stopped at step 3: the training loss is not finite "
                                                 r"\(loss nan, gradient norm nan\); the weights were not updated$"):
        train_gripper_reader(images, closed, episodes, epochs=2, batch_size=16, progress=False)
    data, out = _episodes_file(tmp_path / "episodes.hdf5"), tmp_path / "reader.pt"  # 27 training frames: 4 steps
    monkeypatch.setattr(gripper_train, "GripperReader", diverging(GripperReader, at=2))
    stopped = r"^error: training stopped at step 2: the training loss is not finite"
    with pytest.raises(SystemExit, match=stopped) as caught:
        run_script("train_gripper_reader.py", f"data.paths=[{data}]", "epochs=1", "batch_size=8", f"out={out}",
                   "progress=false", monkeypatch=monkeypatch)
    assert "\n" not in str(caught.value) and not out.exists()


def test_gripper_target_charges_each_step_of_the_other_command():
    torch.manual_seed(0)
    reader = GripperReader((IMG, IMG))
    images, _, _ = _frames(3, seed=1)
    hwc = tuple(image.permute(1, 2, 0).numpy() for image in images)
    targets = reader.targets(hwc)
    goal = ImageGoal(("a", "b", "final"), torch.zeros(3, 4, 8), hwc, SubgoalConfig(steps_per_goal=(1, 1)))
    term = GripperTarget(reader, weight=0.5)
    term.reset(goal, model=None)
    assert term.targets == targets
    actions = torch.zeros(2, 3, 7)
    actions[0, :, 6] = torch.tensor([1.0, -1.0, 0.0])
    actions[1, :, 6] = torch.tensor([-1.0, -1.0, -1.0])
    for stage, target in enumerate(targets):
        expected = [(abs(1.0 - target) + abs(-1.0 - target) + abs(0.0 - target)) / 3 / 2, abs(-1.0 - target) / 2]
        costs = term(Candidates(actions, {}, goal, stage, model=None))  # (B,) unweighted
        torch.testing.assert_close(costs, torch.tensor(expected))
    with pytest.raises(ValueError, match="costs.gripper.dim must be a non-negative action index"):
        GripperTarget(reader, dim=-1)
    with pytest.raises(ValueError, match=r"costs.gripper.weight must be a number >= 0"):
        GripperTarget(reader, weight=-1.0)
    with pytest.raises(ValueError, match=r"neither images nor gripper commands: drop the term \(costs.gripper=null\)"):
        term.reset(ImageGoal(("final",), torch.zeros(1, 4, 8), None, SubgoalConfig()), model=None)
    term.reset(ImageGoal(("a", "final"), torch.zeros(2, 4, 8), None, SubgoalConfig(), gripper=(1.0, -1.0)), None)
    assert term.targets == [1.0, -1.0]  # a goal from a sentence carries the expert's commands


def test_reader_sets_each_goals_gripper_target(tmp_path):
    world_model = load_planning_world_model(*write_tiny_world_model(tmp_path, img_size=IMG), image_size=IMG)
    torch.manual_seed(0)
    reader = GripperReader((IMG, IMG))
    env = envs.make("pick_place", image_size=IMG)
    env.reset(seed=SEED)
    expected = reader.targets(env.unwrapped.goal_images().images)
    cost = WeightedSum({"energy": LatentEnergy(), "gripper": GripperTarget(reader, weight=10.0)})
    agent = MPCAgent(LatentModel(world_model), tiny_planner(), cost)
    result = run_episode(env, agent, ImageGoals(steps_per_goal=(1, 1, 1, 1, 1)), seed=SEED, max_steps=6,
                         keep_frames=False)
    assert result.mpc["goal_indices"] == [0, 1, 2, 3, 4, 5]  # one step per goal
    assert [float(np.sign(a[6])) for a in result.mpc["actions"]] == expected
    env.close()


def test_plan_config_loads_the_reader_or_says_what_is_missing(tmp_path):
    encoder, predictor = write_tiny_world_model(tmp_path, img_size=IMG)
    base = ["task=pick_place", f"task.image_size={IMG}", "world_model=tiny", f"world_model.encoder={encoder}",
            f"world_model.predictor={predictor}",
            "costs.hand=null"]  # pick_place's hand term needs a hand reader on this encoder

    def resolve(*overrides: str) -> dict:
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            return OmegaConf.to_container(compose(config_name="plan", overrides=[*base, *overrides]), resolve=True)

    cpu = torch.device("cpu")
    resolved = resolve()
    assert resolved["world_model"]["gripper_reader"] == "jepa_wm/checkpoints/gripper_reader_tiny.pt"  # shipped
    assert resolved["costs"]["gripper"]["reader"] == resolved["world_model"]["gripper_reader"]  # pick_place's recipe
    with pytest.raises(PlanSetupError, match=r"the world model pair has none \(world_model.gripper_reader=null\)"):
        build(resolve("world_model.gripper_reader=null"), cpu)
    with pytest.raises(PlanSetupError, match="train_gripper_reader.py"):
        build(resolve(f"world_model.gripper_reader={tmp_path / 'none.pt'}"), cpu)
    GripperReader((8, 8)).save(tmp_path / "small.pt")
    with pytest.raises(PlanSetupError, match="reads 8x8 images, task 'pick_place' renders 16x16"):
        build(resolve(f"world_model.gripper_reader={tmp_path / 'small.pt'}"), cpu)
    GripperReader((IMG, IMG)).save(tmp_path / "reader.pt")
    with pytest.raises(PlanSetupError, match="costs.gripper.dim 7 out of range for 7-D actions"):
        build(resolve(f"world_model.gripper_reader={tmp_path / 'reader.pt'}", "+costs.gripper.dim=7"), cpu)
    setup = build(resolve(f"world_model.gripper_reader={tmp_path / 'reader.pt'}"), cpu)
    setup.env.close()
    term = setup.agent.cost.terms["gripper"]
    assert isinstance(term, GripperTarget) and isinstance(term.reader, GripperReader)
    assert (term.weight, term.dim) == (0.05, 6)
    setup = build(resolve("world_model.gripper_reader=null", "costs.gripper=null"), cpu)  # no term, no reader
    setup.env.close()
    assert "gripper" not in setup.agent.cost.terms


@pytest.mark.parametrize("name, camera", [("gripper_reader_tiny.pt", "front"),
                                          ("gripper_reader_tiny_2cam.pt", "front+side")])
def test_shipped_reader_reads_the_goal_images_gripper(name, camera, tmp_path, monkeypatch):
    """A shipped reader against the expert's gripper on 3 held-out pick_place episodes' goal images,
    rendered by the cameras of the episodes it was trained on (which its check mode finds in its record)."""
    reader, meta = GripperReader.load(ROOT / "jepa_wm/checkpoints" / name)
    assert {d["env_args"]["env_kwargs"]["camera"] for d in meta["data"]} == {camera}
    env = envs.make("pick_place", image_size=reader.image_hw[1], camera=camera)
    assert env.unwrapped.image_hw == reader.image_hw
    agreement = goal_agreement(reader, env, [SEED, SEED + 1, SEED + 2], 0.09)
    assert list(agreement) == ["at_cube", "closed", "grasped", "above_target", "placed", "final", "all"]
    assert agreement["all"] == 1.0
    with pytest.raises(ValueError, match="at least one seed"):
        goal_agreement(reader, env, [], 0.09)
    monkeypatch.chdir(ROOT)  # the check mode of the script runs (it logs the same agreement)
    run_script("train_gripper_reader.py", f"check=jepa_wm/checkpoints/{name}", "check_seeds=1", monkeypatch=monkeypatch)
    with pytest.raises(SystemExit, match="train_gripper_reader.py"):
        run_script("train_gripper_reader.py", f"check={tmp_path / 'none.pt'}", monkeypatch=monkeypatch)
