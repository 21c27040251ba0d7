"""Latent MPC episodes toward goal images: library, shipped config and experiments/plan.py end to end."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import OmegaConf

import envs
from envs.interface import GoalImages
from jepa_wm.data import HELD_OUT_SEED_START
from jepa_wm.gripper_reader import GripperReader
from jepa_wm.plan_runner import PlanSetupError, build, run_episodes, workspace_box
from jepa_wm.planning import (
    EpisodeConfig, Goal, WorldModelCosts, demo_gripper_targets, encode_goals, load_planning_world_model, planning_goals,
    plot_energies, run_episode, subgoal_config, summarize, write_episode_video,
)
from planners import MPCConfig, ObjectiveConfig, available_planners, change_token_weights, make_planner
from tests.helpers import (
    ROOT, SPACE, run_script, save_predictor_checkpoint, tiny_planner, tiny_world_model, write_tiny_world_model,
)

IMG = 16
SEED = HELD_OUT_SEED_START


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    return write_tiny_world_model(tmp_path_factory.mktemp("world_model"), img_size=IMG)


def test_episode_reads_success_from_the_env_after_the_last_step(checkpoints, tmp_path):
    world_model = load_planning_world_model(*checkpoints, image_size=IMG)
    env = envs.make("reach", image_size=IMG, max_episode_steps=3)
    result = run_episode(env, world_model, tiny_planner(), EpisodeConfig(), seed=SEED)
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


def test_pick_place_walks_through_its_sub_goals(checkpoints):
    world_model = load_planning_world_model(*checkpoints, image_size=IMG)
    env = envs.make("pick_place", image_size=IMG)
    config = EpisodeConfig(steps_per_goal=(1, 2, 1, 1, 1), max_steps=7)
    result = run_episode(env, world_model, tiny_planner(), config, seed=SEED + 1, keep_frames=False)
    assert result.goal_names == ("at_cube", "closed", "grasped", "above_target", "placed", "final") and result.steps == 7
    assert result.mpc["goal_indices"] == [0, 1, 1, 2, 3, 4, 5] and result.frames == []


def test_extra_sub_goals_every_k_expert_steps(checkpoints):
    world_model = load_planning_world_model(*checkpoints, image_size=IMG)
    env = envs.make("push", image_size=IMG)
    config = EpisodeConfig(every=4, hint_scale=0.5, max_steps=6)
    result = run_episode(env, world_model, tiny_planner(), config, seed=SEED + 2, keep_frames=False)
    dense = env.unwrapped.goal_images(4)
    assert result.goal_names == dense.names and len(dense.names) > 3 and dense.names[-1] == "final"
    assert result.steps_per_goal == subgoal_config(dense, config).steps_per_goal  # half the expert's gaps
    with pytest.raises(ValueError, match="steps_per_goal.*every=None"):
        EpisodeConfig(every=4, steps_per_goal=(2, 2))
    with pytest.raises(ValueError, match="every must be a positive int"):
        EpisodeConfig(every=0)


def test_change_weighted_goals_weigh_each_goal_by_its_change_from_the_one_before(checkpoints):
    world_model = load_planning_world_model(*checkpoints, image_size=IMG)
    env = envs.make("push", image_size=IMG)
    obs, _ = env.reset(seed=SEED)
    latents = encode_goals(world_model, env.unwrapped.goal_images())  # (3, N, D): behind, pushed, final
    first = WorldModelCosts(world_model).latent(obs)
    goals = planning_goals(latents, first, 0.5)
    torch.testing.assert_close(torch.stack([g.latent for g in goals]), latents)
    for goal, before in zip(goals, [first, latents[0], latents[1]], strict=True):
        torch.testing.assert_close(goal.token_weights, change_token_weights(goal.latent, before, 0.5))
        torch.testing.assert_close(goal.token_weights.mean(), torch.tensor(1.0))
    # the costs use the weights: the observation's energy toward a weighted goal is the weighted one
    costs = WorldModelCosts(world_model)
    weights = goals[1].token_weights
    per_token = (costs.latent(obs) - latents[1]).abs().mean(-1)  # (N,)
    assert costs.energy(obs, goals[1]) == pytest.approx(float((per_token * weights).mean()), rel=1e-5)
    assert costs.energy(obs, latents[1]) == pytest.approx(float(per_token.mean()), rel=1e-5)
    assert isinstance(goals[0], Goal) and goals[0].gripper is None
    assert planning_goals(latents, first)[0].token_weights is None  # no weighting: no weights
    # and an episode runs with them
    config = EpisodeConfig(objective=ObjectiveConfig(change_weight=0.5), steps_per_goal=(1, 1), max_steps=3)
    result = run_episode(env, world_model, tiny_planner(), config, seed=SEED, keep_frames=False)
    assert result.steps == 3 and result.mpc["goal_indices"] == [0, 1, 2]
    assert all(np.isfinite(result.mpc["observed_energies"]))


def test_demo_gripper_targets_follow_the_experts_fingers_and_set_the_command(checkpoints):
    env = envs.make("pick_place", image_size=IMG)
    env.reset(seed=SEED)
    goals = env.unwrapped.goal_images()  # at_cube (open), closed, grasped, above_target, placed (on the cube), final (open)
    assert demo_gripper_targets(goals, 0.09) == [-1.0, 1.0, 1.0, 1.0, 1.0, -1.0]
    world_model = load_planning_world_model(*checkpoints, image_size=IMG)
    config = EpisodeConfig(objective=ObjectiveConfig(gripper_weight=10.0), steps_per_goal=(1, 1, 1, 1, 1),
                           gripper_goals="demo", max_steps=6)
    result = run_episode(env, world_model, tiny_planner(), config, seed=SEED, keep_frames=False)
    # a weight far above the micro model's energies: each step commands its goal's gripper (the micro
    # planner's gripper is continuous: the command's sign)
    assert [float(np.sign(a[6])) for a in result.mpc["actions"]] == [-1.0, 1.0, 1.0, 1.0, 1.0, -1.0]
    with pytest.raises(ValueError, match="gripper_goals must be one of"):
        EpisodeConfig(gripper_goals="probe")
    with pytest.raises(ValueError, match="one gripper target per goal"):
        planning_goals(torch.zeros(2, 4, 3), torch.zeros(4, 3), grippers=[1.0])


def test_far_planner_plans_while_the_goal_is_far(checkpoints):
    world_model = load_planning_world_model(*checkpoints, image_size=IMG)
    env = envs.make("reach", image_size=IMG)
    far = make_planner("cem", SPACE, num_samples=16, iterations=2, topk=4, horizon=2, seed=0)
    config = EpisodeConfig(mpc=MPCConfig(far_energy=1e-9), max_steps=3)  # any energy counts as far
    result = run_episode(env, world_model, tiny_planner(), config, seed=SEED, keep_frames=False, far_planner=far)
    assert result.mpc["far"] == [True, True, True] and result.steps == 3
    config = EpisodeConfig(mpc=MPCConfig(far_energy=1e9), max_steps=2)  # none
    result = run_episode(env, world_model, tiny_planner(), config, seed=SEED, keep_frames=False, far_planner=far)
    assert result.mpc["far"] == [False, False]


def test_sub_goal_steps_come_from_the_goal_images_hint():
    def goals(steps):
        n = len(steps)
        return GoalImages(images=(np.zeros((IMG, IMG, 3), np.uint8),) * n, names=tuple(f"g{i}" for i in range(n)),
                          steps=steps, states=np.zeros((n, 7), np.float32))

    assert subgoal_config(goals((9, 13, 20)), EpisodeConfig(hint_scale=2.0)).steps_per_goal == (18, 8)
    assert subgoal_config(goals((9, 13, 20)), EpisodeConfig(steps_per_goal=[4, 10])).steps_per_goal == (4, 10)
    assert subgoal_config(goals((3,)), EpisodeConfig()).steps_per_goal is None
    per_goal = EpisodeConfig(energy_threshold=[0.03, None])  # one threshold per goal, from hydra's lists
    assert per_goal.energy_threshold == (0.03, None)
    assert subgoal_config(goals((9, 13, 20)), per_goal).threshold(0) == 0.03
    assert subgoal_config(goals((3,)), per_goal).energy_threshold is None  # a single goal never switches


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
    big = GoalImages(images=(np.zeros((32, 32, 3), np.uint8),), names=("final",), steps=(1,),
                     states=np.zeros((1, 7), np.float32))
    with pytest.raises(ValueError, match=r"goal image 'final' must be uint8 \(16, 16, 3\)"):
        encode_goals(world_model, big)
    env = envs.make("reach", image_size=IMG, max_episode_steps=2)
    with pytest.raises(ValueError, match="held out"):
        run_episode(env, world_model, tiny_planner(), EpisodeConfig(), seed=0)


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
    # pick_place reads each goal image's gripper with the shipped reader (task_planning/pick_place.yaml)
    assert cfg.subgoals.gripper_goals == "reader" and cfg.objective.gripper_weight > 0
    reader, meta = GripperReader.load(ROOT / cfg.world_model.gripper_reader)
    views = len(cfg.task.camera.split("+"))  # camera views stacked in height (pick_place: front+side)
    assert reader.image_hw == (views * cfg.task.image_size, cfg.task.image_size) and meta["held_out_accuracy"] > 0.5
    EpisodeConfig(**cfg.subgoals, gripper_reader=reader)


@pytest.mark.parametrize("name", available_planners())
def test_plan_config_builds_every_planner_with_its_own_settings(name):
    """The CPU budget of the default (cem_cpu) must not leak into the other planners' configs."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="plan", overrides=[f"planner={name}", "planner/action_space=full"])
        alone = compose(overrides=[f"+planner={name}", "planner/action_space=full"])
    planner = instantiate(cfg.planner, seed=cfg.seed)
    assert planner.config == instantiate(alone.planner.config) and planner.action_space.num_planned == 7


def test_script_writes_results_video_and_plot(checkpoints, tmp_path, monkeypatch):
    encoder, predictor = checkpoints
    out = tmp_path / "plan"
    run_script("plan.py", "task=reach", "world_model=tiny", f"task.image_size={IMG}", "task.max_episode_steps=3", "episodes=1",
               "planner.config.num_samples=16", "planner.config.iterations=2", "planner.config.topk=4",
               f"world_model.encoder={encoder}", f"world_model.predictor={predictor}", "progress=false",
               "video_scale=2", "threads=1", f"hydra.run.dir={out}", monkeypatch=monkeypatch)
    record = json.loads((out / "results.json").read_text())
    assert record["config"]["task"]["name"] == "reach" and record["config"]["planner"]["config"]["num_samples"] == 16
    (episode,) = record["episodes"]
    assert episode["seed"] == SEED and episode["steps"] == 3 and isinstance(episode["success"], bool)
    assert len(episode["time_per_action_s"]) == 3 and episode["median_time_per_action_s"] > 0
    assert set(record["summary"]) == {"episodes", "success_rate", "median_time_per_action_s", "p95_time_per_action_s"}
    assert (out / f"episode_000_seed_{SEED}.mp4").stat().st_size > 0
    assert (out / "energy.png").stat().st_size > 0


def test_worker_processes_give_the_sequential_results(checkpoints, tmp_path):
    encoder, predictor = checkpoints
    overrides = ["task=reach", "world_model=tiny", f"task.image_size={IMG}", "max_steps=2", "episodes=2", "video=false",
                 "planner.config.num_samples=16", "planner.config.iterations=2", "planner.config.topk=4",
                 f"world_model.encoder={encoder}", f"world_model.predictor={predictor}"]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        resolved = OmegaConf.to_container(compose(config_name="plan", overrides=overrides), resolve=True)
    cpu = torch.device("cpu")
    sequential = run_episodes(resolved, tmp_path, device=cpu, workers=1, threads=1, progress=False)
    seen = []
    parallel = run_episodes(resolved, tmp_path, device=cpu, workers=2, on_result=seen.append, progress=False)
    assert [r.seed for r in parallel] == [SEED, SEED + 1] and len(seen) == 2
    for a, b in zip(sequential, parallel, strict=True):
        assert a.success == b.success
        np.testing.assert_allclose(a.mpc["actions"], b.mpc["actions"], rtol=0, atol=1e-6)
    with pytest.raises(PlanSetupError, match="workers must be an int >= 1"):
        run_episodes(resolved, tmp_path, device=cpu, workers=0)


def test_settings_that_do_not_fit_the_task_fail_before_any_episode(checkpoints, tmp_path, monkeypatch, caplog):
    encoder, predictor = checkpoints
    base = ["task=pick_place", f"task.image_size={IMG}", "max_steps=1", "video=false", "world_model=tiny",
            f"world_model.encoder={encoder}", f"world_model.predictor={predictor}",
            "subgoals.gripper_goals=null",  # the shipped gripper reader reads 64x64 goal images
            "objective.hand_weight=0"]  # pick_place's hand term needs a hand reader on this encoder

    def resolve(*overrides: str) -> dict:
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            return OmegaConf.to_container(compose(config_name="plan", overrides=[*base, *overrides]), resolve=True)

    cpu = torch.device("cpu")
    with pytest.raises(PlanSetupError, match=r"task 'pick_place' has the goals \['at_cube'.*one entry per goal"):
        run_episodes(resolve("subgoals.steps_per_goal=[8,10]"), tmp_path, device=cpu)
    with pytest.raises(PlanSetupError, match=r"task 'pick_place' has the goals .*7 entries for 6 goals"):
        run_episodes(resolve("subgoals.energy_threshold=[0.1,0.1,0.1,0.1,0.1,0.1,0.1]"), tmp_path, device=cpu)
    with pytest.raises(PlanSetupError, match="energy_threshold as a list needs at least one number"):
        run_episodes(resolve("subgoals.energy_threshold=[null]"), tmp_path, device=cpu)
    with pytest.raises(PlanSetupError, match="episodes must be an int >= 1, got 0"):
        run_episodes(resolve("episodes=0"), tmp_path, device=cpu)
    with pytest.raises(PlanSetupError, match="MPPIConfig.*topk"):
        run_episodes(resolve("planner=mppi", "+planner.config.topk=8"), tmp_path, device=cpu)
    with pytest.raises(PlanSetupError, match="far_planner and mpc.far_energy go together"):
        run_episodes(resolve("mpc.far_energy=0.1"), tmp_path, device=cpu)
    with pytest.raises(PlanSetupError, match="predictor=null .* world_model.oracle=true"):
        run_episodes(resolve("world_model.predictor=null"), tmp_path, device=cpu)
    env, _, planner, _, far = build(resolve("far_planner={config: {horizon: 2}}", "mpc.far_energy=0.1"), cpu)
    env.close()
    assert (planner.horizon, far.horizon) == (1, 2) and far.config.num_samples == planner.config.num_samples
    with caplog.at_level(logging.WARNING, logger="jepa_wm.plan_runner"):
        build(resolve("task=reach", "max_steps=500", "subgoals.steps_per_goal=[3]"), cpu)[0].close()
    assert "beyond the task's time limit: episodes end after 40 steps" in caplog.text
    assert "steps_per_goal is ignored: task 'reach' has a single goal" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jepa_wm.plan_runner"):
        build(resolve("objective.gripper_weight=0.05"), cpu)[0].close()
    assert "gripper_weight=0.05 with subgoals.gripper_goals=None does nothing" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jepa_wm.plan_runner"):
        build(resolve("objective.gripper_weight=0.05", "subgoals.gripper_goals=demo"), cpu)[0].close()
    assert "gripper" not in caplog.text
    # the script prints the message without a traceback
    with pytest.raises(SystemExit, match=r"error: .*one entry per goal"):
        run_script("plan.py", *base, "subgoals.steps_per_goal=[8,10]", f"hydra.run.dir={tmp_path / 'run'}",
                   monkeypatch=monkeypatch)


def test_workspace_box_settings():
    env = envs.make("reach", image_size=IMG)
    try:
        box = workspace_box({"box": "view", "weight": 0.5}, env)
        low, high = env.unwrapped.view_box
        assert box.low == tuple(low) and box.high == tuple(high) and box.weight == 0.5
        assert workspace_box({"box": None}, env) is None and workspace_box(None, env) is None
        box = workspace_box({"box": [[0, 0, 0], [1, 1, 1]]}, env)
        assert box.low == (0.0, 0.0, 0.0) and box.weight == 1.0
        with pytest.raises(ValueError, match="view"):
            workspace_box({"box": "camera"}, env)
    finally:
        env.close()


def test_shipped_config_keeps_the_hand_in_view(checkpoints):
    """plan.yaml's default box is the camera's; an episode's cost charges plans leaving it."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="plan", overrides=["task=reach", f"task.image_size={IMG}"])
    assert cfg.workspace.box == "view"
    world_model = load_planning_world_model(*checkpoints, image_size=IMG)
    env = envs.make("reach", image_size=IMG)
    obs, _ = env.reset(seed=SEED)
    box = workspace_box(OmegaConf.to_container(cfg.workspace), env)
    costs = WorldModelCosts(world_model, workspace=box)
    goal = encode_goals(world_model, env.unwrapped.goal_images())[-1]
    stay, leave = torch.zeros(1, 1, 7), torch.zeros(1, 1, 7)
    leave[0, 0, 2] = (box.high[2] - obs["state"][2]) / 0.05 + 1.0  # 1 unit (5 cm) above the box
    without = WorldModelCosts(world_model).make_cost(obs, goal)
    with_box = costs.make_cost(obs, goal)
    torch.testing.assert_close(with_box(stay), without(stay))
    torch.testing.assert_close(with_box(leave), without(leave) + box.weight, atol=1e-4, rtol=0)
    env.close()
