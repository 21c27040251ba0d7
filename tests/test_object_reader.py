"""The object reader: reads a position from latents, round-trips, trains from a dataset's latent caches,
and charges plans by where it puts the object."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import envs
from jepa_wm.data import HELD_OUT_SEED_START, ClipDataset
from jepa_wm.data.hdf5 import demo_name, init_data_group, write_demo
from jepa_wm.object_reader import (
    ObjectFrames,
    ObjectReader,
    evaluate_object_motion,
    load_object_frames,
    on_table,
    train_object_reader,
)
from jepa_wm.plan_runner import PlanSetupError, build
from jepa_wm.planning import (
    EpisodeConfig, Goal, WorldModelCosts, encode_goals, image_tensor, load_planning_world_model, run_episode,
)
from planners import ObjectiveConfig
from tests.helpers import (
    ROOT,
    random_episode,
    run_script,
    save_predictor_checkpoint,
    tiny_planner,
    write_tiny_world_model,
)

IMG = 16
SEED = HELD_OUT_SEED_START


def _synthetic_frames(episodes: int = 40, per_episode: int = 10, seed: int = 0) -> ObjectFrames:
    """Latents (n, 16, 8): a fixed pattern per token plus noise, where the token under the object's
    xy (a 4x4 grid over the table, +-0.2 m) carries a marker channel and the offset within its cell."""
    rng = np.random.default_rng(seed)
    n = episodes * per_episode
    xyz = np.column_stack([rng.uniform(-0.2, 0.2, (n, 2)), rng.uniform(0.02, 0.03, n)])
    latents = (rng.normal(0, 1, (1, 16, 8)) + rng.normal(0, 0.05, (n, 16, 8))).astype(np.float32)
    cell = np.clip(((xyz[:, :2] + 0.2) / 0.1).astype(int), 0, 3)  # (n, 2)
    rows = np.arange(n)
    token = cell[:, 1] * 4 + cell[:, 0]
    latents[rows, token, 0] += 3.0
    latents[rows, token, 1:3] = ((xyz[:, :2] + 0.2) / 0.1 - cell - 0.5) * 2
    return ObjectFrames(torch.from_numpy(latents).half(), xyz, np.repeat(np.arange(episodes), per_episode))


def test_on_table_by_hand() -> None:
    positions = np.array([[0.1, -0.2, 0.025], [0.6, 0.0, 0.025], [0.0, 0.0, -0.3], [0.0, 0.49, 0.19]])
    assert on_table(positions).tolist() == [True, False, False, True]


def test_training_reads_the_position_and_round_trips(tmp_path: Path) -> None:
    frames = _synthetic_frames()
    reader, metrics = train_object_reader(frames, epochs=25, batch_size=32, lr=3e-3, width=4, hidden=64,
                                          held_out=0.2, progress=False)
    assert metrics["held_out_episodes"] == 8 and metrics["held_out_frames"] + metrics["train_frames"] == 400
    assert metrics["held_out_xy_error_cm_median"] < 0.3 * metrics["held_out_xy_error_cm_median_of_mean"]
    assert min(metrics["held_out_r2"][:2]) > 0.8
    path = reader.save(tmp_path / "reader.pt", {"encoder_fingerprint": "abc"})
    loaded, meta = ObjectReader.load(path)
    assert meta == {"encoder_fingerprint": "abc"} and loaded.shape == (16, 8)
    torch.testing.assert_close(loaded(frames.latents[:5]), reader(frames.latents[:5]))
    assert ObjectReader.load(path, encoder_fingerprint="abc")[1] == meta
    with pytest.raises(ValueError, match="trained on the latents of encoder abc, the world model's encoder is xyz"):
        ObjectReader.load(path, encoder_fingerprint="xyz")
    assert ObjectReader.load(path, target="object")[1] == meta  # no recorded target: it reads the object
    with pytest.raises(ValueError, match="reads the object, not the hand: .* target=hand"):
        ObjectReader.load(path, target="hand")
    with pytest.raises(FileNotFoundError, match="train_object_reader.py target=hand"):
        ObjectReader.load(tmp_path / "none.pt", target="hand")
    with pytest.raises(ValueError, match=r"takes latents \(B, 16, 8\)"):
        reader(torch.zeros(2, 4, 8))
    with pytest.raises(FileNotFoundError, match="train_object_reader.py"):
        ObjectReader.load(tmp_path / "none.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an object reader"):
        ObjectReader.load(tmp_path / "other.pt")
    one = ObjectFrames(frames.latents[:10], frames.positions[:10], frames.episodes[:10])
    with pytest.raises(ValueError, match="at least 2 episodes"):
        train_object_reader(one, epochs=1, progress=False)


def test_objects_cost_by_hand_in_the_planning_costs(tmp_path: Path) -> None:
    world_model = load_planning_world_model(*write_tiny_world_model(tmp_path, img_size=IMG), image_size=IMG)
    tokens, dim = world_model.encoder.grid_hw[0] * world_model.encoder.grid_hw[1], world_model.encoder.embed_dim
    reader = ObjectReader(tokens, dim)
    obs = {"image": np.zeros((IMG, IMG, 3), np.uint8), "state": np.zeros(7, np.float32)}
    goal = world_model.encode(torch.zeros(3, IMG, IMG))
    target = torch.tensor([0.1, -0.2, 5.0])  # z is not counted (object_dims x, y)
    objective = ObjectiveConfig(object_weight=2.0, action_weight=0.0)
    actions = torch.zeros(3, 1, 7)
    actions[1, 0, :3] = 1.0
    plain = WorldModelCosts(world_model).make_cost(obs, goal)(actions)
    cost = WorldModelCosts(world_model, objective, object_reader=reader)
    with_target = cost.make_cost(obs, Goal(goal, object_position=target))
    with torch.no_grad():
        predicted = with_target.rollout(actions)[:, -1]  # (B, N, D)
        expected = plain + 2.0 * (reader(predicted)[:, :2] - target[:2]).norm(dim=-1)
        torch.testing.assert_close(with_target(actions), expected)
        torch.testing.assert_close(cost.make_cost(obs, Goal(goal))(actions), plain)  # a goal without a position
        torch.testing.assert_close(cost.make_cost(obs, goal)(actions), plain)
    with pytest.raises(ValueError, match="object_weight"):
        ObjectiveConfig(object_weight=-1.0)
    with pytest.raises(ValueError, match="object_dims"):
        ObjectiveConfig(object_dims=(0, 3))
    with pytest.raises(ValueError, match="go together"):
        EpisodeConfig(objective=ObjectiveConfig(object_weight=1.0))
    with pytest.raises(ValueError, match="go together"):
        EpisodeConfig(object_reader=reader)


def test_hand_cost_by_hand_in_the_planning_costs(tmp_path: Path) -> None:
    world_model = load_planning_world_model(*write_tiny_world_model(tmp_path, img_size=IMG), image_size=IMG)
    scale = world_model.integration.pos_scale
    obs = {"image": np.zeros((IMG, IMG, 3), np.uint8), "state": np.array([0.1, 0.0, 0.2, 0, 0, 0, 0], np.float32)}
    goal = world_model.encode(torch.zeros(3, IMG, IMG))
    hand = torch.tensor([0.1, 0.0, 0.1])  # 10 cm below the observed grip site
    actions = torch.zeros(2, 2, 7)
    actions[1, :, 2] = -1.0  # two steps down: 2 x pos_scale
    plain = WorldModelCosts(world_model).make_cost(obs, goal)(actions)
    costs = WorldModelCosts(world_model, ObjectiveConfig(hand_weight=3.0))
    got = costs.make_cost(obs, Goal(goal, hand_position=hand))(actions)
    left = torch.tensor([0.1, 0.1 - 2 * scale])  # metres still to go: still, and after the two steps down
    torch.testing.assert_close(got, plain + 3.0 * left)
    torch.testing.assert_close(costs.make_cost(obs, Goal(goal))(actions), plain)  # a goal without a hand position
    margin = 0.1 - scale  # the first plan stays beyond it, the second comes within it
    within = WorldModelCosts(world_model, ObjectiveConfig(hand_weight=3.0, hand_margin=margin))
    got = within.make_cost(obs, Goal(goal, hand_position=hand))(actions)
    torch.testing.assert_close(got, plain + 3.0 * torch.tensor([scale, 0.0]))
    hand_xy = torch.tensor([0.13, 0.04, 0.1])  # 5 cm away in xy (a 3-4-5 triangle), 10 cm below
    flat = WorldModelCosts(world_model, ObjectiveConfig(hand_weight=3.0, hand_dims=(0, 1)))
    got = flat.make_cost(obs, Goal(goal, hand_position=hand_xy))(actions)
    torch.testing.assert_close(got, plain + 3.0 * 0.05)  # the height does not count, for either plan
    with pytest.raises(ValueError, match="hand_weight"):
        ObjectiveConfig(hand_weight=-1.0)
    with pytest.raises(ValueError, match="hand_margin"):
        ObjectiveConfig(hand_margin=-0.01)
    with pytest.raises(ValueError, match="hand_dims"):
        ObjectiveConfig(hand_dims=(2, 2))
    with pytest.raises(ValueError, match="go together"):
        EpisodeConfig(objective=ObjectiveConfig(hand_weight=1.0))


def test_episode_reads_each_goals_object_position(tmp_path: Path) -> None:
    world_model = load_planning_world_model(*write_tiny_world_model(tmp_path, img_size=IMG), image_size=IMG)
    tokens, dim = world_model.encoder.grid_hw[0] * world_model.encoder.grid_hw[1], world_model.encoder.embed_dim
    torch.manual_seed(0)
    reader = ObjectReader(tokens, dim)
    hand_reader = ObjectReader(tokens, dim)  # another random reader, as the hand's
    seen: list[tuple[torch.Tensor | None, torch.Tensor | None]] = []
    make_cost = WorldModelCosts.make_cost

    def recording(self, obs, goal):  # the goals the MPC plans toward
        seen.append((goal.object_position, goal.hand_position))
        return make_cost(self, obs, goal)

    env = envs.make("push", image_size=IMG)
    config = EpisodeConfig(objective=ObjectiveConfig(object_weight=1.0, hand_weight=1.0), steps_per_goal=(1, 1),
                           object_reader=reader, hand_reader=hand_reader, max_steps=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WorldModelCosts, "make_cost", recording)
        run_episode(env, world_model, tiny_planner(), config, seed=SEED, keep_frames=False)
    env.reset(seed=SEED)
    with torch.no_grad():
        latents = encode_goals(world_model, env.unwrapped.goal_images())
        expected = reader(latents), hand_reader(latents)  # (3, 3) each: one per goal
    assert len(seen) == 3
    for (position, hand), want, want_hand in zip(seen, *expected, strict=True):
        torch.testing.assert_close(position, want)
        torch.testing.assert_close(hand, want_hand)


def test_object_arrival_holds_while_the_read_object_is_at_the_final_goals(tmp_path: Path) -> None:
    world_model = load_planning_world_model(*write_tiny_world_model(tmp_path, img_size=IMG), image_size=IMG)
    tokens, dim = world_model.encoder.grid_hw[0] * world_model.encoder.grid_hw[1], world_model.encoder.embed_dim
    torch.manual_seed(0)
    reader = ObjectReader(tokens, dim)
    env = envs.make("push", image_size=IMG)
    obs, _ = env.reset(seed=SEED)
    with torch.no_grad():
        final = reader(encode_goals(world_model, env.unwrapped.goal_images()))[-1]  # (3,)
        observed = reader(world_model.encode(image_tensor(obs["image"]))[None])[0]
    costs = WorldModelCosts(world_model, object_reader=reader)
    torch.testing.assert_close(costs.object_position(obs), observed)
    apart = float((observed[:2] - final[:2]).norm())  # the random reader's xy distance, first observation
    results = {}
    for name, distance in (("near", apart * 1.01), ("far", apart * 0.99)):
        config = EpisodeConfig(steps_per_goal=(1, 1), object_reader=reader, object_arrival=distance, max_steps=2)
        results[name] = run_episode(env, world_model, tiny_planner(), config, seed=SEED, keep_frames=False)
    assert results["near"].mpc["arrived_steps"][0] == 0 and 0 not in results["near"].mpc["plan_steps"]
    assert results["far"].mpc["plan_steps"][0] == 0 and 0 not in results["far"].mpc["arrived_steps"]
    for bad in (0.0, -0.1, True):
        with pytest.raises(ValueError, match="object_arrival"):
            EpisodeConfig(object_reader=reader, object_arrival=bad)
    with pytest.raises(ValueError, match="go together"):
        EpisodeConfig(object_arrival=0.02)
    with pytest.raises(ValueError, match="object_position needs an object_reader"):
        WorldModelCosts(world_model).object_position(obs)


def _file_with_objects(path: Path, episodes: int = 6, steps: int = 9) -> Path:
    """Random 16x16 episodes whose obs/object is a position on the table (row 3 off it)."""
    with h5py.File(path, "w") as file:
        data = init_data_group(file, {"env_name": "push", "type": 2, "env_kwargs": {"image_size": IMG}},
                               {"task": "push", "seed": 0, "noise": [0.0, 0.0], "version": "test"})
        for i in range(episodes):
            episode = random_episode(steps, seed=i, size=IMG)
            objects = np.random.default_rng(i).uniform(-0.2, 0.2, (steps + 1, 3)).astype(np.float32)
            objects[:, 2] = 0.025
            objects[3, 2] = -1.0  # fell off the table: left out
            write_demo(data, demo_name(i), dataclasses.replace(episode, objects=objects))
    return path


def test_script_trains_from_latent_caches_and_plan_checks_the_encoder(tmp_path: Path, monkeypatch) -> None:
    encoder, predictor = write_tiny_world_model(tmp_path, img_size=IMG)
    data = _file_with_objects(tmp_path / "push.hdf5")
    out = tmp_path / "reader.pt"
    run_script("train_object_reader.py", f"encoder={encoder}", f"data.paths=[{data}]", "epochs=1", "held_out=0.34",
               "frame_stride=3", f"out={out}", "progress=false", monkeypatch=monkeypatch)
    reader, meta = ObjectReader.load(out)
    world_model = load_planning_world_model(encoder, predictor, image_size=IMG)
    assert meta["encoder_fingerprint"] == world_model.encoder.fingerprint()
    assert meta["held_out_episodes"] == 2 and meta["held_out_frames"] + meta["train_frames"] == 6 * 2  # rows 0, 6
    assert [d["path"] for d in meta["data"]] == [str(data)]
    episodes = ClipDataset(data, clip_len=2, split="all").episodes
    caches = list(tmp_path.glob("push.latents.*.hdf5"))
    assert len(caches) == 1  # built by the script
    frames = load_object_frames(episodes, {str(data): caches[0]}, frame_stride=3, progress=False)
    with h5py.File(data) as file:
        np.testing.assert_allclose(frames.positions[:2], file["data/demo_0/obs/object"][[0, 6]])
    assert frames.episodes.tolist()[:3] == [0, 0, 1] and frames.latents.shape[0] == 12
    with pytest.raises(SystemExit, match="no obs/object"):
        reach = tmp_path / "reach.hdf5"
        with h5py.File(reach, "w") as file:
            init_data_group(file, {"env_name": "reach", "type": 2, "env_kwargs": {"image_size": IMG}},
                            {"task": "reach", "seed": 0, "noise": [0.0, 0.0], "version": "test"})
            for i in range(2):
                write_demo(file["data"], demo_name(i), random_episode(4, seed=i, size=IMG))
        run_script("train_object_reader.py", f"encoder={encoder}", f"data.paths=[{reach}]", f"out={out}",
                   "progress=false", monkeypatch=monkeypatch)

    def resolve(*overrides: str) -> dict:
        base = ["task=push", f"task.image_size={IMG}", "world_model=tiny", f"world_model.encoder={encoder}",
                f"world_model.predictor={predictor}", "objective.object_weight=0.5",
                "objective.hand_weight=0"]  # push's own hand term needs a hand reader on this encoder
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            return OmegaConf.to_container(compose(config_name="plan", overrides=[*base, *overrides]), resolve=True)

    cpu = torch.device("cpu")
    with pytest.raises(PlanSetupError, match="need world_model.object_reader"):
        build(resolve(), cpu)
    with pytest.raises(PlanSetupError, match="train_object_reader.py"):
        build(resolve(f"world_model.object_reader={tmp_path / 'none.pt'}"), cpu)
    ObjectReader(reader.shape[0], reader.shape[1]).save(tmp_path / "other.pt", {"encoder_fingerprint": "other"})
    with pytest.raises(PlanSetupError, match="trained on the latents of encoder other"):
        build(resolve(f"world_model.object_reader={tmp_path / 'other.pt'}"), cpu)
    env, _, _, config, _ = build(resolve(f"world_model.object_reader={out}"), cpu)
    env.close()
    assert isinstance(config.object_reader, ObjectReader) and config.objective.object_weight == 0.5
    env, _, _, config, _ = build(resolve(f"world_model.object_reader={out}", "objective.object_weight=0",
                                         "subgoals.object_arrival=0.02"), cpu)  # the stop alone needs it too
    env.close()
    assert isinstance(config.object_reader, ObjectReader) and config.object_arrival == 0.02
    with pytest.raises(PlanSetupError, match="needs world_model.hand_reader.*objective.hand_weight=0"):
        build(resolve(f"world_model.object_reader={out}", "objective.hand_weight=1.0"), cpu)
    with pytest.raises(PlanSetupError, match="reads the object, not the hand"):
        build(resolve(f"world_model.object_reader={out}", f"world_model.hand_reader={out}",
                      "objective.hand_weight=1.0"), cpu)
    run_script("train_object_reader.py", f"encoder={encoder}", f"data.paths=[{data}]", "epochs=1", "held_out=0.34",
               "target=hand", f"out={tmp_path / 'hand.pt'}", "progress=false", monkeypatch=monkeypatch)
    assert ObjectReader.load(tmp_path / "hand.pt")[1]["target"] == "hand"
    with pytest.raises(PlanSetupError, match="reads the hand, not the object"):
        build(resolve(f"world_model.object_reader={tmp_path / 'hand.pt'}"), cpu)
    env, _, _, config, _ = build(resolve(f"world_model.object_reader={out}", f"world_model.hand_reader={tmp_path / 'hand.pt'}",
                                         "objective.hand_weight=1.0"), cpu)
    env.close()
    assert isinstance(config.hand_reader, ObjectReader) and config.objective.hand_weight == 1.0


class _CopyLast(torch.nn.Module):
    """A world model whose prediction is the observed latent: it moves nothing."""

    def __init__(self, world_model) -> None:
        super().__init__()
        self.encoder = world_model.encoder

    def rollout(self, z_context, states, actions):
        return z_context[:, -1:].expand(-1, actions.shape[1], -1, -1)


def test_object_motion_counts_moving_clips_and_reads_both_moves(tmp_path: Path, monkeypatch) -> None:
    encoder, predictor = write_tiny_world_model(tmp_path, img_size=IMG)
    data = _file_with_objects(tmp_path / "push.hdf5")
    world_model = load_planning_world_model(encoder, predictor, image_size=IMG)
    tokens, dim = world_model.encoder.grid_hw[0] * world_model.encoder.grid_hw[1], world_model.encoder.embed_dim
    torch.manual_seed(0)
    reader = ObjectReader(tokens, dim)
    dataset = ClipDataset(data, clip_len=2, split="all")
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    # every step moves the object (fresh uniform positions) except into and out of row 3, off the table
    expected = 6 * (9 - 2)
    result = evaluate_object_motion(world_model, reader, loader, dataset.episodes, device=torch.device("cpu"))
    assert result["clips"] == len(dataset) == 6 * 9 and result["moving_clips"] == expected
    assert set(result["predicted"]) == {"correlation_xy", "cosine_median", "read_move_cm_median"}
    assert result["next_frame"]["read_move_cm_median"] > 0
    still = evaluate_object_motion(_CopyLast(world_model), reader, loader, dataset.episodes, device=torch.device("cpu"))
    assert still["predicted"] == {"correlation_xy": [0.0, 0.0], "cosine_median": 0.0, "read_move_cm_median": 0.0}
    assert still["next_frame"] == result["next_frame"]  # the true frames' reading does not depend on the predictor

    reader.save(tmp_path / "reader.pt", {"encoder_fingerprint": world_model.encoder.fingerprint()})
    save_predictor_checkpoint(tmp_path / "run", world_model, data={
        "paths": [str(data)], "frame_skip": 1, "val_fraction": 0.34, "split_seed": 0, "flip_images": False})
    out = tmp_path / "eval.json"
    run_script("eval_predictor.py", f"checkpoint={tmp_path / 'run'}", f"encoder={encoder}", "horizons=[1]",
               "batch_size=2", f"object_reader={tmp_path / 'reader.pt'}", f"out={out}", monkeypatch=monkeypatch)
    report = json.loads(out.read_text())
    assert report["object_motion"]["moving_clips"] == 2 * 3  # 2 held-out episodes, clips at steps 0, 4, 8
