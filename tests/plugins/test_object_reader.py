"""The object reader: reads a position from latents, round-trips, trains from a dataset's latent caches;
as a hand reader it pulls plans toward the hand each goal shows (costs.hand), as an object reader it feeds the
object model."""

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
from jepa_wm.planning.agent import MPCAgent
from jepa_wm.planning.costs import BuildContext, Candidates, LatentEnergy, WeightedSum
from jepa_wm.planning.episode import run_episode
from jepa_wm.planning.goals import ImageGoal, ImageGoals
from jepa_wm.planning.latent_model import LatentModel
from jepa_wm.planning.loading import load_planning_world_model
from jepa_wm.planning.runner import PlanSetupError, build
from jepa_wm.plugins.object_model.model import ObjectModel
from jepa_wm.plugins.object_reader import train as object_reader_train
from jepa_wm.plugins.object_reader.cost import HandPull
from jepa_wm.plugins.object_reader.reader import ObjectReader
from jepa_wm.plugins.object_reader.train import (
    ObjectFrames,
    evaluate_object_motion,
    load_object_frames,
    on_table,
    train_object_reader,
)
from jepa_wm.training.loop import NonFiniteLossError
from planners import SubgoalConfig
from tests.helpers import (
    ROOT,
    random_episode,
    run_script,
    save_predictor_checkpoint,
    tiny_planner,
    write_tiny_world_model,
)
from tests.plugins.divergence import diverging

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


def test_training_stops_at_the_first_non_finite_loss(monkeypatch) -> None:
    frames = _synthetic_frames()  # 320 training frames: 5 steps of 64 per epoch
    monkeypatch.setattr(object_reader_train, "ObjectReader", diverging(ObjectReader, at=7, part="net"))
    with pytest.raises(NonFiniteLossError, match=r"^training stopped at step 7: the training loss is not finite "
                                                 r"\(loss inf, gradient norm nan\); the weights were not updated$"):
        train_object_reader(frames, epochs=3, batch_size=64, width=4, hidden=16, held_out=0.2, progress=False)


class _FixedReader(torch.nn.Module):
    """A "hand reader" that reads ``hand`` ``(3,)`` from any latent."""

    def __init__(self, hand: torch.Tensor) -> None:
        super().__init__()
        self.hand = hand

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.hand.expand(len(latents), 3)


def test_hand_pull_by_hand(tmp_path: Path) -> None:
    world_model = load_planning_world_model(*write_tiny_world_model(tmp_path, img_size=IMG), image_size=IMG)
    model = LatentModel(world_model)
    scale = model.pos_scale
    obs = {"image": np.zeros((IMG, IMG, 3), np.uint8), "state": np.array([0.1, 0.0, 0.2, 0, 0, 0, 0], np.float32)}
    goal = ImageGoal(("final",), model.encode_goal([np.zeros((IMG, IMG, 3), np.uint8)]), None, SubgoalConfig())
    actions = torch.zeros(2, 2, 7)
    actions[1, :, 2] = -1.0  # two steps down: 2 x pos_scale

    def pull(hand: torch.Tensor, **settings) -> torch.Tensor:
        term = HandPull(_FixedReader(hand), **settings)
        term.reset(goal, model)
        torch.testing.assert_close(term.hands, hand[None])  # (G, 3): one per goal stage
        return term(Candidates(actions, obs, goal, 0, model))

    hand = torch.tensor([0.1, 0.0, 0.1])  # 10 cm below the observed grip site
    left = torch.tensor([0.1, 0.1 - 2 * scale])  # metres still to go: still, and after the two steps down
    torch.testing.assert_close(pull(hand, weight=3.0), left)  # unweighted
    margin = 0.1 - scale  # the first plan stays beyond it, the second comes within it
    torch.testing.assert_close(pull(hand, margin=margin, weight=3.0), torch.tensor([scale, 0.0]))
    hand_xy = torch.tensor([0.13, 0.04, 0.1])  # 5 cm away in xy (a 3-4-5 triangle), 10 cm below
    torch.testing.assert_close(pull(hand_xy, dims=(0, 1)), torch.full((2,), 0.05))  # the height counts for neither
    # in the weighted sum: the energy plus weight x the pull
    term = HandPull(_FixedReader(hand), weight=3.0)
    cost = WeightedSum({"energy": LatentEnergy(), "hand": term})
    cost.reset(goal, model)
    plain = LatentEnergy()(Candidates(actions, obs, goal, 0, model))
    torch.testing.assert_close(cost(Candidates(actions, obs, goal, 0, model)), plain + 3.0 * left)
    with pytest.raises(ValueError, match=r"costs.hand.weight must be a number >= 0"):
        HandPull(_FixedReader(hand), weight=-1.0)
    with pytest.raises(ValueError, match="costs.hand.margin must be >= 0"):
        HandPull(_FixedReader(hand), margin=-0.01)
    with pytest.raises(ValueError, match="costs.hand.dims must be distinct axes"):
        HandPull(_FixedReader(hand), dims=(2, 2))
    with pytest.raises(ValueError, match="costs.hand.dims must be distinct axes"):
        HandPull(_FixedReader(hand), dims=(0, 3))


def test_an_episode_pulls_toward_each_goals_read_hand(tmp_path: Path) -> None:
    world_model = load_planning_world_model(*write_tiny_world_model(tmp_path, img_size=IMG), image_size=IMG)
    tokens, dim = world_model.encoder.grid_hw[0] * world_model.encoder.grid_hw[1], world_model.encoder.embed_dim
    torch.manual_seed(0)
    hand_reader = ObjectReader(tokens, dim)  # a random reader, as the hand's
    seen: list[tuple[int, torch.Tensor]] = []
    call = HandPull.__call__

    def recording(self, candidates):  # the read hand each plan is pulled toward
        seen.append((candidates.stage, self.hands[candidates.stage]))
        return call(self, candidates)

    env = envs.make("push", image_size=IMG)
    model = LatentModel(world_model)
    agent = MPCAgent(model, tiny_planner(), WeightedSum({"energy": LatentEnergy(),
                                                         "hand": HandPull(hand_reader, weight=1.0)}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HandPull, "__call__", recording)
        result = run_episode(env, agent, ImageGoals(steps_per_goal=(1, 1)), seed=SEED, max_steps=3,
                             keep_frames=False)
    assert result.mpc["goal_indices"] == [0, 1, 2]
    env.reset(seed=SEED)
    with torch.no_grad():
        expected = hand_reader(model.encode_goal(env.unwrapped.goal_images().images))  # (3, 3): one per goal
    assert sorted({stage for stage, _ in seen}) == [0, 1, 2]  # one plan toward each goal
    for stage, hand in seen:
        torch.testing.assert_close(hand, expected[stage])
    env.close()


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

    def resolve(*overrides: str, task: str = "pick_place") -> dict:
        if task == "push":  # push's recipe: the object model on the encoder, its object reader and shipped dynamics
            base = ["task=push", "world_model.camera=null", "world_model.precision=float32"]
        else:  # pick_place's recipe on the tiny pair: its hand term (the gripper term needs a 16x16 gripper reader)
            base = ["task=pick_place", "world_model=tiny", "costs.gripper=null"]
        base += [f"task.image_size={IMG}", f"world_model.encoder={encoder}", f"world_model.predictor={predictor}"]
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            return OmegaConf.to_container(compose(config_name="plan", overrides=[*base, *overrides]), resolve=True)

    cpu = torch.device("cpu")
    run_script("train_object_reader.py", f"encoder={encoder}", f"data.paths=[{data}]", "epochs=1", "held_out=0.34",
               "target=hand", f"out={tmp_path / 'hand.pt'}", "progress=false", monkeypatch=monkeypatch)
    assert ObjectReader.load(tmp_path / "hand.pt")[1]["target"] == "hand"
    ObjectReader(reader.shape[0], reader.shape[1]).save(tmp_path / "other.pt", {"encoder_fingerprint": "other"})
    # costs.hand reads the goals' hand with a hand reader on the pair's encoder
    with pytest.raises(PlanSetupError, match=r"costs.hand reads .* the world model pair has none "
                                             r"\(world_model.hand_reader=null\).*target=hand.*costs.hand=null"):
        build(resolve(), cpu)
    with pytest.raises(PlanSetupError, match="train_object_reader.py target=hand"):
        build(resolve(f"world_model.hand_reader={tmp_path / 'none.pt'}"), cpu)
    with pytest.raises(PlanSetupError, match="trained on the latents of encoder other"):
        build(resolve(f"world_model.hand_reader={tmp_path / 'other.pt'}"), cpu)
    with pytest.raises(PlanSetupError, match="reads the object, not the hand"):
        build(resolve(f"world_model.hand_reader={out}"), cpu)
    setup = build(resolve(f"world_model.hand_reader={tmp_path / 'hand.pt'}"), cpu)
    setup.env.close()
    term = setup.agent.cost.terms["hand"]
    assert isinstance(term, HandPull) and isinstance(term.reader, ObjectReader)
    assert (term.weight, term.margin, term.dims) == (3.0, 0.06, (0, 1))  # pick_place's recipe
    setup = build(resolve("costs.hand=null"), cpu)  # no term, no reader needed
    setup.env.close()
    assert "hand" not in setup.agent.cost.terms
    env = envs.make("pick_place", image_size=IMG)
    with pytest.raises(ValueError, match=r"the world model \(object\) has none: drop the term \(costs.hand=null\)"):
        HandPull.build(BuildContext(env, cpu, "pick_place"), object(), weight=1.0, reader=str(tmp_path / "hand.pt"))
    env.close()
    # the object model reads the cube with an object reader on the pair's encoder
    with pytest.raises(PlanSetupError, match=r"the world model pair has none \(world_model.object_reader=null\)"):
        build(resolve("world_model.object_reader=null", task="push"), cpu)
    with pytest.raises(PlanSetupError, match="train_object_reader.py"):
        build(resolve(f"world_model.object_reader={tmp_path / 'none.pt'}", task="push"), cpu)
    with pytest.raises(PlanSetupError, match="trained on the latents of encoder other"):
        build(resolve(f"world_model.object_reader={tmp_path / 'other.pt'}", task="push"), cpu)
    with pytest.raises(PlanSetupError, match="reads the hand, not the object"):
        build(resolve(f"world_model.object_reader={tmp_path / 'hand.pt'}", task="push"), cpu)
    setup = build(resolve(f"world_model.object_reader={out}", task="push"), cpu)
    setup.env.close()
    assert isinstance(setup.agent.model, ObjectModel) and isinstance(setup.agent.model.object_reader, ObjectReader)


def test_script_exits_with_one_line_when_the_loss_turns_non_finite(tmp_path: Path, monkeypatch) -> None:
    encoder, _ = write_tiny_world_model(tmp_path, img_size=IMG)
    data, out = _file_with_objects(tmp_path / "push.hdf5"), tmp_path / "reader.pt"  # 20 training frames: 3 steps
    monkeypatch.setattr(object_reader_train, "ObjectReader", diverging(ObjectReader, at=2, part="net"))
    stopped = r"^error: training stopped at step 2: the training loss is not finite"
    with pytest.raises(SystemExit, match=stopped) as caught:
        run_script("train_object_reader.py", f"encoder={encoder}", f"data.paths=[{data}]", "epochs=1", "held_out=0.34",
                   "batch_size=8", f"out={out}", "progress=false", monkeypatch=monkeypatch)
    assert "\n" not in str(caught.value) and not out.exists()


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
