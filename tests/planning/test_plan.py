"""Planning episodes toward goal images: the episode loop, the runner, the shipped configs and experiments/plan.py."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor

import envs
from envs.interface import HELD_OUT_SEED_START, GoalImages
from jepa_wm.planning.agent import MPCAgent
from jepa_wm.planning.costs import (
    BuildContext,
    Candidates,
    LatentEnergy,
    WeightedSum,
    WorkspaceCost,
    check_weight,
)
from jepa_wm.planning.episode import run_episode, summarize
from jepa_wm.planning.goals import ImageGoals
from jepa_wm.planning.latent_model import LatentModel
from jepa_wm.planning.loading import load_planning_world_model
from jepa_wm.planning.outputs import plot_energies, write_episode_video
from jepa_wm.planning.runner import PlanSetupError, build, resolve_device, run_episodes
from jepa_wm.plugins.gripper_reader.reader import GripperReader
from jepa_wm.protocols import CostModel, Goal
from planners import MPCConfig, available_planners, make_planner
from tests.helpers import (
    ROOT,
    SPACE,
    run_script,
    save_predictor_checkpoint,
    tiny_planner,
    tiny_world_model,
    write_tiny_world_model,
)

IMG = 16
SEED = HELD_OUT_SEED_START
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    return write_tiny_world_model(tmp_path_factory.mktemp("world_model"), img_size=IMG)


def _agent(checkpoints, mpc: MPCConfig = MPCConfig(), far_planner=None) -> MPCAgent:
    model = LatentModel(load_planning_world_model(*checkpoints, image_size=IMG))
    return MPCAgent(model, tiny_planner(), WeightedSum({"energy": LatentEnergy()}), mpc=mpc, far_planner=far_planner)


def _resolve(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return OmegaConf.to_container(compose(config_name="plan", overrides=list(overrides)), resolve=True)


def test_episode_reads_success_from_the_env_after_the_last_step(checkpoints, tmp_path):
    env = envs.make("reach", image_size=IMG, max_episode_steps=3)
    result = run_episode(env, _agent(checkpoints), ImageGoals(), seed=SEED)
    assert result.steps == 3 and len(result.frames) == 4 and result.goal_names == ("final",)
    assert isinstance(result.success, bool)
    assert len(result.time_per_action_s) == 3 and all(t > 0 for t in result.time_per_action_s)
    log = result.mpc
    assert len(log["plan_times_s"]) == len(log["observed_energies"]) == 3 and log["goal_indices"] == [0, 0, 0]
    assert all(np.isfinite(log["observed_energies"])) and all(np.isfinite(log["energies"]))
    # replaying the logged actions in a fresh env gives the same frames and the same success flag
    replay = envs.make("reach", image_size=IMG, max_episode_steps=3)
    obs, _ = replay.reset(seed=SEED)
    for action, frame in zip(log["actions"], result.frames[1:], strict=True):
        assert SPACE.contains(torch.tensor(action))
        obs, _, _, _, info = replay.step(np.asarray(action, dtype=np.float32))
        np.testing.assert_array_equal(obs["image"], frame)
    assert info["is_success"] == result.success
    np.testing.assert_allclose(result.final_state, obs["state"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.final_object_pos, info["object_pos"], rtol=0, atol=1e-6)
    assert json.loads(json.dumps(result.as_dict()))["final_object_pos"] == result.final_object_pos
    summary = summarize([result])
    assert summary["success_rate"] == float(result.success) and summary["p95_time_per_action_s"] > 0
    video = write_episode_video(tmp_path / "episode.mp4", result, scale=2)
    frames = imageio.mimread(video)
    assert len(frames) == 4 and frames[0].shape == (2 * IMG, 2 * 3 * IMG, 3)
    assert plot_energies(tmp_path / "energy.png", [result]).stat().st_size > 0


def test_a_loop_written_here_reproduces_run_episode_step_by_step(checkpoints):
    """The Agent step API is what run_episode calls: a robot loop of our own gets the same actions."""
    env = envs.make("pick_place", image_size=IMG)
    goals = ImageGoals(steps_per_goal=(1, 2, 1, 1, 1))
    expected = run_episode(env, _agent(checkpoints), goals, seed=SEED + 1, max_steps=8, keep_frames=False)
    agent = _agent(checkpoints)  # a fresh agent, as a robot would build one
    obs, _ = env.reset(seed=SEED + 1)
    goal: Goal = goals.goal(agent.model, env.unwrapped.goal_images())
    agent.reset(goal, obs, seed=SEED + 1)
    actions, stages = [], []
    for _ in range(8):
        step = agent.act(obs)
        assert step.action.shape == (7,) and step.time_s > 0 and step.energy is not None
        assert step.plan is not None and step.plan.shape == (1, 7) and step.cost is not None
        actions.append(step.action)
        stages.append(step.goal_index)
        obs, *_ = env.step(step.action)
    np.testing.assert_array_equal(np.stack(actions), np.asarray(expected.mpc["actions"], dtype=np.float32))
    assert stages == expected.mpc["goal_indices"] == [0, 1, 1, 2, 3, 4, 5, 5]
    assert expected.goal_names == ("at_cube", "closed", "grasped", "above_target", "placed", "final")


def test_far_planner_plans_while_the_goal_is_far(checkpoints):
    env = envs.make("reach", image_size=IMG)
    far = make_planner("cem", SPACE, num_samples=16, iterations=2, topk=4, horizon=2, seed=0)
    agent = _agent(checkpoints, MPCConfig(far_energy=1e-9), far)  # any energy counts as far
    result = run_episode(env, agent, ImageGoals(), seed=SEED, max_steps=3, keep_frames=False)
    assert result.mpc["far"] == [True, True, True] and result.steps == 3
    agent = _agent(checkpoints, MPCConfig(far_energy=1e9), far)  # none
    result = run_episode(env, agent, ImageGoals(), seed=SEED, max_steps=2, keep_frames=False)
    assert result.mpc["far"] == [False, False]


def test_arrival_holds_still_without_planning(checkpoints):
    env = envs.make("reach", image_size=IMG)
    result = run_episode(env, _agent(checkpoints, MPCConfig(arrival_energy=1e9)), ImageGoals(), seed=SEED,
                         max_steps=2, keep_frames=False)
    assert result.mpc["arrived_steps"] == [0, 1] and result.mpc["plan_steps"] == []
    assert all(a[:6] == [0.0] * 6 for a in result.mpc["actions"])


def test_bad_inputs_give_clear_errors(checkpoints, tmp_path):
    encoder, predictor = checkpoints
    with pytest.raises(FileNotFoundError, match="pretrain_encoder.py.*train_predictor.py"):
        load_planning_world_model(tmp_path / "missing.pt", predictor, image_size=IMG)
    with pytest.raises(FileNotFoundError, match="train_predictor.py"):
        load_planning_world_model(encoder, tmp_path / "no_run", image_size=IMG)
    with pytest.raises(FileNotFoundError, match="train_predictor.py"):
        load_planning_world_model(encoder, tmp_path, image_size=IMG)  # a directory without checkpoints
    with pytest.raises(ValueError, match=r"task.image_size=16"):
        load_planning_world_model(encoder, predictor, image_size=64)
    with pytest.raises(ValueError, match=r"renders 32x16 .*task.image_size=16 and one camera in task.camera .*"
                                         r"world_model=tiny plans on one camera"):
        load_planning_world_model(encoder, predictor, image_size=(32, 16))  # two stacked camera views
    save_predictor_checkpoint(tmp_path / "other", tiny_world_model(IMG, seed=3))  # another encoder's latents
    with pytest.raises(ValueError, match="does not fit.*weights hash"):
        load_planning_world_model(encoder, tmp_path / "other", image_size=IMG)
    with pytest.raises(ValueError, match="7-D actions"):
        load_planning_world_model(encoder, predictor, image_size=IMG, action_dim=4)
    world_model = load_planning_world_model(encoder, predictor, image_size=IMG)
    save_predictor_checkpoint(tmp_path / "reach_only", world_model, data={"files": [{"meta": {"task": "reach"}}]})
    assert load_planning_world_model(encoder, tmp_path / "reach_only", image_size=IMG, task="reach") is not None
    with pytest.raises(ValueError, match=r"trained on tasks \['reach'\], not on 'robosuite_lift'.*collect.py"):
        load_planning_world_model(encoder, tmp_path / "reach_only", image_size=IMG, task="robosuite_lift")
    with pytest.raises(ValueError, match=r"goal image 0 must be uint8 \(16, 16, 3\)"):
        LatentModel(world_model).encode_goal([np.zeros((32, 32, 3), np.uint8)])
    env = envs.make("reach", image_size=IMG, max_episode_steps=2)
    with pytest.raises(ValueError, match="held out"):
        run_episode(env, _agent(checkpoints), ImageGoals(), seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        _agent(checkpoints).act(env.reset(seed=SEED)[0])


def test_shipped_config_builds_and_lists_choices():
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="plan")
        with pytest.raises(HydraException, match="cem"):
            compose(config_name="plan", overrides=["planner=nope"])
        with pytest.raises(HydraException, match="pick_place"):
            compose(config_name="plan", overrides=["task=nope"])
    assert cfg.task.name == "pick_place" and cfg.seed == HELD_OUT_SEED_START and cfg.video
    planner = instantiate(cfg.planner, seed=cfg.seed)
    assert planner.config.num_samples < 800 and planner.horizon == 1
    # pick_place reads each goal image's gripper with the pair's reader (recipe/pick_place.yaml)
    assert cfg.costs.gripper.weight > 0 and cfg.costs.gripper.reader == cfg.world_model.gripper_reader
    reader, meta = GripperReader.load(ROOT / cfg.world_model.gripper_reader)
    views = len(cfg.task.camera.split("+"))  # camera views stacked in height (pick_place: front+side)
    assert reader.image_hw == (views * cfg.task.image_size, cfg.task.image_size) and meta["held_out_accuracy"] > 0.5
    assert len(OmegaConf.to_yaml(OmegaConf.load(ROOT / "configs" / "plan.yaml")).splitlines()) < 80


@pytest.mark.parametrize("name", available_planners())
def test_plan_config_builds_every_planner_with_its_own_settings(name):
    """The CPU budget of the default (cem_cpu) must not leak into the other planners' configs."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="plan", overrides=[f"planner={name}", "planner/action_space=full"])
        alone = compose(overrides=[f"+planner={name}", "planner/action_space=full"])
    planner = instantiate(cfg.planner, seed=cfg.seed)
    assert planner.config == instantiate(alone.planner.config) and planner.action_space.num_planned == 7


def _tiny_overrides(checkpoints, task: str = "reach", small_planner: bool = True) -> list[str]:
    encoder, predictor = checkpoints
    planner = ["planner.config.num_samples=16", "planner.config.iterations=2", "planner.config.topk=4"]
    return [f"task={task}", "world_model=tiny", f"task.image_size={IMG}", *(planner if small_planner else []),
            f"world_model.encoder={encoder}", f"world_model.predictor={predictor}", "world_model.gripper_reader=null",
            "video=false"]


def test_script_writes_results_video_and_plot(checkpoints, tmp_path, monkeypatch):
    out = tmp_path / "plan"
    run_script("plan.py", *_tiny_overrides(checkpoints), "task.max_episode_steps=3", "episodes=1", "video=true",
               "progress=false", "video_scale=2", "threads=1", f"run_dir={out}", monkeypatch=monkeypatch)
    record = json.loads((out / "results.json").read_text())
    assert record["config"]["task"]["name"] == "reach" and record["config"]["planner"]["config"]["num_samples"] == 16
    (episode,) = record["episodes"]
    assert episode["seed"] == SEED and episode["steps"] == 3 and isinstance(episode["success"], bool)
    assert len(episode["time_per_action_s"]) == 3 and episode["median_time_per_action_s"] > 0
    assert set(record["summary"]) == {"episodes", "success_rate", "median_time_per_action_s", "p95_time_per_action_s"}
    assert (out / f"episode_000_seed_{SEED}.mp4").stat().st_size > 0
    assert (out / "energy.png").stat().st_size > 0


def test_worker_processes_give_the_sequential_results(checkpoints, tmp_path):
    resolved = _resolve(*_tiny_overrides(checkpoints), "max_steps=2", "episodes=2")
    sequential = run_episodes(resolved, tmp_path, device=CPU, workers=1, threads=1, progress=False)
    seen = []
    parallel = run_episodes(resolved, tmp_path, device=CPU, workers=2, on_result=seen.append, progress=False)
    assert [r.seed for r in parallel] == [SEED, SEED + 1] and len(seen) == 2
    for a, b in zip(sequential, parallel, strict=True):
        assert a.success == b.success
        np.testing.assert_allclose(a.mpc["actions"], b.mpc["actions"], rtol=0, atol=1e-6)
    with pytest.raises(PlanSetupError, match="workers must be a positive int, got 0"):
        run_episodes(resolved, tmp_path, device=CPU, workers=0)


def test_settings_that_do_not_fit_fail_before_any_episode(checkpoints, tmp_path, monkeypatch, caplog):
    base = [*_tiny_overrides(checkpoints, "pick_place", small_planner=False), "max_steps=1", "costs.gripper=null",
            "costs.hand=null"]

    def fails(match: str, *overrides: str) -> None:
        with pytest.raises(PlanSetupError, match=match):
            run_episodes(_resolve(*base, *overrides), tmp_path, device=CPU)

    fails(r"task 'pick_place' has the goal stages \['at_cube'.*one entry per goal", "goal.steps_per_goal=[8,10]")
    fails(r"task 'pick_place' has the goal stages .*7 entries for 6 goals",
          "goal.energy_threshold=[0.1,0.1,0.1,0.1,0.1,0.1,0.1]")
    fails("energy_threshold as a list needs at least one number", "goal.energy_threshold=[null]")
    fails("goal.hint_scale must be a number > 0", "goal.hint_scale=0")
    fails("episodes must be a positive int, got 0", "episodes=0")
    fails("max_steps must be a positive int", "max_steps=0")
    fails("MPPIConfig.*topk", "planner=mppi", "+planner.config.topk=8")
    fails("far_planner and mpc.far_energy go together", "mpc.far_energy=0.1")
    fails("predictor=null.*world_model=oracle_tiny_2cam", "world_model.predictor=null")
    fails("energy.distance must be one of", "energy.distance=cosine")
    fails(r"costs.action.weight must be a number >= 0, got -1", "+costs.action={_target_: "
          "jepa_wm.planning.costs.ActionCost.build, weight: -1}")
    fails(r"costs.hand reads each goal's hand pose with a hand reader.*world_model.hand_reader=null.*costs.hand=null",
          "costs.hand={_target_: jepa_wm.plugins.object_reader.cost.HandPull.build, weight: 3, reader: null}")
    fails(r"costs.gripper: the gripper reader .* reads 128x64 images, task 'pick_place' renders 16x16",
          "costs.gripper={_target_: jepa_wm.plugins.gripper_reader.cost.GripperTarget.build, weight: 0.05, "
          "reader: jepa_wm/checkpoints/gripper_reader_tiny_2cam.pt}")
    fails(r"costs.object scores predicted object; the world model \(LatentModel\) predicts latents",
          "+costs.object={_target_: jepa_wm.plugins.object_model.model.ObjectCost.build}")
    fails(r"costs.nope must be a mapping with a _target_", "+costs.nope=3")
    fails(r"costs.extra: .*unexpected keyword argument 'wieght'",
          "+costs.extra={_target_: jepa_wm.planning.costs.ActionCost.build, wieght: 1}")
    setup = build(_resolve(*base, "far_planner={config: {horizon: 2}}", "mpc.far_energy=0.1"), CPU)
    setup.env.close()
    planner, far = setup.agent.mpc.near_planner, setup.agent.mpc.far_planner
    assert (planner.horizon, far.horizon) == (1, 2) and far.config.num_samples == planner.config.num_samples
    with caplog.at_level(logging.WARNING, logger="jepa_wm.planning.runner"):
        build(_resolve(*base, "max_steps=500"), CPU).env.close()
    assert "beyond the task's time limit: episodes end after 80 steps" in caplog.text
    # the script prints the message without a traceback
    with pytest.raises(SystemExit, match=r"error: .*one entry per goal"):
        run_script("plan.py", *base, "goal.steps_per_goal=[8,10]", f"run_dir={tmp_path / 'run'}",
                   monkeypatch=monkeypatch)


@pytest.mark.parametrize(("override", "message"), [
    ("seed=abc", r"seed must be an int >= 1000000 \(a held-out seed\), got 'abc'"),
    ("seed=5", r"planning seeds must be held out \(>= 1000000\), got 5"),
    ("threads=0", "threads must be a positive int, got 0"),
    ("video_scale=0", "video_scale must be a positive int, got 0"),
    ("workers=1.5", "workers must be a positive int, got 1.5"),
    ("task.camera=nosuch", "unknown camera 'nosuch': expected one of"),
    ("planner.action_space.planned_dims=[0,9]", r"planner.action_space: planned_dims must be distinct indices in \[0, 7\)"),
    ("world_model.precision=float16", r"world_model.precision must be one of \['bfloat16', 'float32'\], got 'float16'"),
])
def test_a_bad_setting_is_one_line_before_any_episode(checkpoints, tmp_path, override, message):
    resolved = _resolve(*_tiny_overrides(checkpoints), "max_steps=1", override)
    with pytest.raises(PlanSetupError, match=message) as error:
        run_episodes(resolved, tmp_path, device=CPU, workers=resolved["workers"], threads=resolved["threads"])
    assert "\n" not in str(error.value) and not any(tmp_path.iterdir())


def test_a_device_this_machine_lacks_is_one_line():
    for name, message in (("foo", "device must be a torch device such as cpu, cuda or cuda:1, got 'foo'"),
                          ("mps", "device must be cpu or cuda"), ("cuda:99", "cuda")):
        if name.startswith("cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 99:
            continue
        with pytest.raises(PlanSetupError, match=message):
            resolve_device(name)
    if not torch.cuda.is_available():
        with pytest.raises(PlanSetupError, match="device=cuda asks for a CUDA GPU but"):
            resolve_device("cuda")
    assert resolve_device("cpu") == CPU and resolve_device(None).type in ("cpu", "cuda")


def test_a_failed_run_leaves_no_run_dir_and_a_used_one_is_refused(checkpoints, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=r"^error: seed must be an int"):
        run_script("plan.py", *_tiny_overrides(checkpoints), "seed=abc", f"run_dir={out}", monkeypatch=monkeypatch)
    assert not out.exists()
    out.mkdir()
    (out / "results.json").write_text("earlier")
    with pytest.raises(SystemExit, match="already holds results.json of an earlier run"):
        run_script("plan.py", *_tiny_overrides(checkpoints), "max_steps=1", f"run_dir={out}", monkeypatch=monkeypatch)
    assert (out / "results.json").read_text() == "earlier" and [p.name for p in out.iterdir()] == ["results.json"]


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _running(pid: int) -> bool:
    try:  # a zombie (exited, waiting for init to reap it) is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_takes_its_workers_with_it(checkpoints, tmp_path, sig):
    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, str(ROOT / "experiments" / "plan.py"), *_tiny_overrides(checkpoints),
                            "episodes=200", "workers=2", "progress=false", f"run_dir={out}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (out / "results.json").exists() and time.monotonic() < deadline:  # the workers are planning
            time.sleep(0.2)
        children = _children(run.pid)
        assert (out / "results.json").exists() and len(children) >= 2
        run.send_signal(sig)
        run.wait(timeout=60)
        deadline = time.monotonic() + 20
        while any(map(_running, children)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_running, children))
        assert json.loads((out / "results.json").read_text())["episodes"]  # whole, never half written
        assert not (out / ".lock").exists() or sig == signal.SIGKILL
    finally:
        run.kill()


@pytest.mark.parametrize(("task", "pair", "lacks"), [
    ("pick_place", "tiny", r"costs.hand reads each goal's hand pose.*world_model.hand_reader=null"),
    ("push", "tiny_2cam_6k", r"costs.object scores predicted object; the world model \(LatentModel\) predicts latents"),
    ("reach", "object_model_push", r"the object model .* was trained on 'push' episodes, not 'reach'"),
])
def test_a_pair_that_lacks_what_a_task_needs_stops_with_one_line(task, pair, lacks, monkeypatch):
    """`plan.py task=<task> world_model=<pair>`: the pair loads, then the recipe's term or model says what it lacks."""
    monkeypatch.chdir(ROOT)
    with pytest.raises(PlanSetupError, match=lacks) as error:
        build(_resolve(f"task={task}", f"world_model={pair}"), CPU)
    assert "\n" not in str(error.value)


def test_workspace_term_charges_plans_that_leave_the_view(checkpoints):
    env = envs.make("reach", image_size=IMG)
    context = BuildContext(env, CPU, "reach")
    model = LatentModel(load_planning_world_model(*checkpoints, image_size=IMG))
    term = WorkspaceCost.build(context, model, weight=2.0, box="view")
    low, high = env.unwrapped.view_box
    assert term.box.low == tuple(low) and term.box.high == tuple(high) and term.weight == 2.0
    assert WorkspaceCost.build(context, model, box=[[0, 0, 0], [1, 1, 1]]).box.low == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="'view' or"):
        WorkspaceCost.build(context, model, box="camera")
    obs, _ = env.reset(seed=SEED)
    goal = ImageGoals().goal(model, env.unwrapped.goal_images())
    stay, leave = torch.zeros(1, 1, 7), torch.zeros(1, 1, 7)
    leave[0, 0, 2] = (high[2] - obs["state"][2]) / 0.05 + 1.0  # 1 unit (5 cm) above the box
    energy = LatentEnergy()
    with_box = WeightedSum({"energy": energy, "workspace": term}).bind(model, obs, goal, 0)
    without = WeightedSum({"energy": energy}).bind(model, obs, goal, 0)
    torch.testing.assert_close(with_box(stay), without(stay))
    torch.testing.assert_close(with_box(leave), without(leave) + 2.0, atol=1e-4, rtol=0)
    env.close()


class PreferDown:
    """A cost term written outside the package: the plan's mean height change (action units), lower is better."""

    def __init__(self, weight: float) -> None:
        self.weight = check_weight(weight, "down")

    @classmethod
    def build(cls, context: BuildContext, model: CostModel, *, weight: float) -> PreferDown:
        return cls(weight)

    def reset(self, goal: Goal, model: CostModel) -> None:
        pass

    def __call__(self, candidates: Candidates) -> Tensor:
        return candidates.actions[..., 2].mean(-1)  # (B,)


def test_a_cost_term_added_through_config_alone_changes_the_plan(checkpoints, tmp_path):
    """`+costs.down={_target_: ..., weight: ...}`: a term from the user's own module, no edit of the package."""
    overrides = [*_tiny_overrides(checkpoints), "max_steps=3", "episodes=1", "far_planner=null", "mpc.far_energy=null"]
    plain = run_episodes(_resolve(*overrides), tmp_path, device=CPU, progress=False)[0]
    term = f"+costs.down={{_target_: {__name__}.PreferDown.build, weight: 100.0}}"
    down = run_episodes(_resolve(*overrides, term), tmp_path, device=CPU, progress=False)[0]
    heights = [a[2] for a in down.mpc["actions"]]
    assert all(z < -0.5 for z in heights)  # the weight dwarfs the micro model's energies: the hand goes down
    assert heights != [a[2] for a in plain.mpc["actions"]]


def test_plan_script_imports_no_training_collection_or_diagnostic_module():
    """`python experiments/plan.py` (the script, then building every task's shipped setup) loads the policy
    path only: no training loop, data collection, evaluation tool or privileged diagnostic."""
    probe = f"""
import runpy, sys, torch
sys.argv = ["plan.py"]
runpy.run_path("experiments/plan.py", run_name="probe")  # imports only, main() not called
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from jepa_wm.planning.runner import build
for task in ("reach", "push", "pick_place", "pick_place_multi"):
    with initialize_config_dir(config_dir="{ROOT / 'configs'}", version_base="1.3"):
        cfg = compose(config_name="plan", overrides=["task=" + task])
    build(OmegaConf.to_container(cfg, resolve=True), torch.device("cpu")).env.close()
print("\\n".join(sorted(m for m in sys.modules if m.split(".")[0] in ("jepa_wm", "planners", "envs"))))
"""
    modules = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
                             timeout=600).stdout.split()
    forbidden = ("jepa_wm.training.loop", "jepa_wm.training.distributed", "jepa_wm.training.schedule",
                 "jepa_wm.predictor_training", "jepa_wm.pretrain", "jepa_wm.data", "jepa_wm.evaluation",
                 "jepa_wm.diagnostics", "jepa_wm.plugins.object_model.play", "jepa_wm.plugins.object_model.train",
                 "jepa_wm.plugins.object_reader.train", "jepa_wm.plugins.gripper_reader.train")
    assert "jepa_wm.planning.agent" in modules and "jepa_wm.plugins.object_model.model" in modules
    assert [m for m in modules if m.startswith(forbidden)] == []


def test_sub_goal_steps_come_from_the_goal_images_hint():
    def goals(steps):
        n = len(steps)
        return GoalImages(images=(np.zeros((IMG, IMG, 3), np.uint8),) * n, names=tuple(f"g{i}" for i in range(n)),
                          steps=steps, states=np.zeros((n, 7), np.float32))

    assert ImageGoals(hint_scale=2.0).schedule(goals((9, 13, 20))).steps_per_goal == (18, 8)
    assert ImageGoals(steps_per_goal=[4, 10]).schedule(goals((9, 13, 20))).steps_per_goal == (4, 10)
    assert ImageGoals().schedule(goals((3,))).steps_per_goal is None
    per_goal = ImageGoals(energy_threshold=[0.03, None])  # one threshold per goal, from hydra's lists
    assert per_goal.energy_threshold == (0.03, None)
    assert per_goal.schedule(goals((9, 13, 20))).threshold(0) == 0.03
    assert per_goal.schedule(goals((3,))).energy_threshold is None  # a single goal never switches
