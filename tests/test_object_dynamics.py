"""Object play (jepa_wm/data/object_play.py) and the object model (jepa_wm/object_dynamics.py)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from jepa_wm.data import HELD_OUT_SEED_START
from jepa_wm.data.object_play import ObjectPlayConfig, collect_object_play
from jepa_wm.object_dynamics import (ObjectDynamics, load_object_play, train_object_dynamics,
                                     transition_features)
from tests.helpers import run_script


def _play(path, episodes, **kwargs):
    return collect_object_play(ObjectPlayConfig(episodes=episodes, out=str(path), **kwargs), progress=False)


def _arrays(path):
    with h5py.File(path, "r") as file:
        return {name: file[name][:] for name in ("object", "hand", "action")}


@pytest.fixture(scope="module")
def play_file(tmp_path_factory):
    return _play(tmp_path_factory.mktemp("play") / "play.hdf5", 40, flush_every=16)


def test_features_match_a_hand_computation():
    # hand at the origin moving +x by 4 cm (0.8 action units), cube 2 cm ahead and 1 cm to the side
    obj, obj_prev = torch.tensor([[0.02, 0.01]]), torch.tensor([[0.019, 0.01]])
    hand, hand_prev = torch.tensor([[0.0, 0.0, 0.03]]), torch.tensor([[-0.01, 0.0, 0.03]])
    action = torch.tensor([[0.8, 0.0, -0.2]])
    features = transition_features(obj, obj_prev, hand, hand_prev, action, pos_scale=0.05)[0]
    expected = [0.4, 0.2,  # cube - hand, /0.05
                0.0, 0.0, 0.3,  # hand / 0.1
                0.8, 0.0, -0.2,  # action
                0.02, 0.0,  # cube's last move /0.05
                0.2, 0.0, 0.0,  # hand's last move /0.05
                0.0, -0.2,  # closest point of the path (0.02, 0) - cube, /0.05
                0.2,  # its distance
                0.4, -0.2,  # path's end (0.04, 0) - cube
                0.5]  # halfway along the path
    assert features.tolist() == pytest.approx(expected, abs=1e-3)  # the path length squared has 1e-6 added


def test_a_far_still_cube_never_moves_and_rollout_shapes():
    torch.manual_seed(0)
    model = ObjectDynamics(members=3, hidden=8, layers=1).requires_grad_(False)
    for member in model.members:  # every member predicts a large move of everything
        torch.nn.init.zeros_(member[-1].weight)
        torch.nn.init.constant_(member[-1].bias, 1.0)
    actions = torch.zeros(4, 2, 7)
    cube = torch.tensor([0.1, 0.1])
    far = torch.tensor([-0.1, -0.1, 0.05])  # 28 cm away
    cubes, hands = model.rollout(cube, cube, far, far, actions)
    assert cubes.shape == (3, 4, 2, 2) and hands.shape == (3, 4, 2, 3)
    assert torch.equal(cubes, cube.expand(3, 4, 2, 2))  # gated: the far, still cube stays
    assert torch.allclose(hands[:, :, 1], (far + 2 * 0.05).expand(3, 4, 3))  # 1 unit per step on each axis
    near = torch.tensor([0.05, 0.1, 0.05])
    cubes, _ = model.rollout(cube, cube, near, near, actions)
    assert torch.allclose(cubes[:, :, 0], (cube + 0.05).expand(3, 4, 2))  # within the gate radius it moves


def test_object_play_is_seeded_and_resumes_to_the_same_file(tmp_path, play_file):
    whole = _arrays(play_file)
    assert whole["object"].shape == (40, 81, 3) and whole["action"].shape == (40, 80, 7)
    assert np.all(whole["action"][..., 6] == 1.0) and np.abs(whole["action"]).max() <= 1.0
    moved = np.linalg.norm(np.diff(whole["object"][..., :2], axis=1), axis=2) > 0.01
    assert 0.02 < moved.mean() < 0.5  # pokes and pushes move the cube in some steps, not all
    _play(tmp_path / "resumed.hdf5", 9, flush_every=4)  # interrupted after 9 episodes ...
    _play(tmp_path / "resumed.hdf5", 40, flush_every=16)  # ... and run again
    resumed = _arrays(tmp_path / "resumed.hdf5")
    for name in whole:
        assert np.array_equal(resumed[name], whole[name]), name


def test_object_play_refuses_other_settings_and_held_out_seeds(tmp_path, play_file):
    with pytest.raises(ValueError, match="holds object play of other settings"):
        _play(play_file, 50, seed=5)
    with pytest.raises(ValueError, match="seeds must lie in"):
        ObjectPlayConfig(episodes=10, seed=HELD_OUT_SEED_START - 5)
    with pytest.raises(ValueError, match="mode_probs"):
        ObjectPlayConfig(mode_probs=(0.5, 0.5, 0.5))


def test_transitions_pair_each_step_with_the_one_before(play_file):
    data = load_object_play(play_file)
    arrays = _arrays(play_file)
    assert len(data) == 40 * 80
    step = 80 + 5  # episode 1, step 5
    assert data.obj[step].tolist() == pytest.approx(arrays["object"][1, 5, :2].tolist())
    assert data.obj_prev[step].tolist() == pytest.approx(arrays["object"][1, 4, :2].tolist())
    assert data.next_hand[step].tolist() == pytest.approx(arrays["hand"][1, 6].tolist())
    assert torch.equal(data.obj_prev[80], data.obj[80])  # an episode's first step has no step before


def test_training_learns_the_hand_and_the_checkpoint_round_trips(tmp_path, play_file):
    data = load_object_play(play_file)
    model, metrics = train_object_dynamics(data, members=2, hidden=64, layers=2, epochs=6, batch_size=128,
                                           held_out=0.2, progress=False)
    assert metrics["hand_r2"] > 0.6 and metrics["held_out_steps"] == 8 * 80
    path = model.save(tmp_path / "model.pt", metrics)
    loaded, meta = ObjectDynamics.load(path)
    assert meta["hand_r2"] == metrics["hand_r2"]
    actions = torch.rand(5, 3, 7) * 2 - 1
    args = (data.obj[10], data.obj_prev[10], data.hand[10], data.hand_prev[10], actions)
    for ours, theirs in zip(model.rollout(*args), loaded.rollout(*args)):
        assert torch.equal(ours, theirs)
    with pytest.raises(FileNotFoundError, match="train_object_dynamics.py"):
        ObjectDynamics.load(tmp_path / "missing.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not an object model"):
        ObjectDynamics.load(tmp_path / "other.pt")


def test_script_collects_trains_and_records_its_data(tmp_path, monkeypatch):
    out = tmp_path / "model.pt"
    run_script("train_object_dynamics.py", "play.episodes=12", f"play.out={tmp_path / 'play.hdf5'}",
               "model.hidden=16", "train.epochs=1", "train.batch_size=64", "train.held_out=0.2", "progress=false",
               f"out={out}", monkeypatch=monkeypatch)
    _model, meta = ObjectDynamics.load(out)
    assert meta["task"] == "push" and meta["data"]["episodes"] == 12 and meta["data"]["steps"] == 12 * 80
    assert meta["config"]["model"]["hidden"] == 16 and "cube_r2" in meta


def _constant_model(cube_move: float, hand_move: float) -> ObjectDynamics:
    """A 2-member model whose members predict fixed moves (action units): the cube's x, the hand's x."""
    model = ObjectDynamics(members=2, hidden=4, layers=1).requires_grad_(False)
    for member in model.members:
        torch.nn.init.zeros_(member[-1].weight)
        member[-1].bias.copy_(torch.tensor([cube_move, 0.0, hand_move, 0.0, 0.0]))
    return model


def _costs(tmp_path, model, **kwargs):
    from jepa_wm.object_model_costs import ObjectModelCosts
    from jepa_wm.object_reader import ObjectReader
    from jepa_wm.planning import load_planning_world_model
    from tests.helpers import write_tiny_world_model

    world_model = load_planning_world_model(*write_tiny_world_model(tmp_path, img_size=16), image_size=16)
    tokens, dim = world_model.encoder.grid_hw[0] * world_model.encoder.grid_hw[1], world_model.encoder.embed_dim
    torch.manual_seed(0)
    reader = ObjectReader(tokens, dim)
    return ObjectModelCosts(world_model, reader, model, torch.tensor([0.1, -0.1, 0.0]), **kwargs), reader, world_model


def _obs(hand, value=0):
    return {"image": np.full((16, 16, 3), value, np.uint8), "state": np.array([*hand, 0, 0, 0, 0], np.float32)}


def test_object_model_cost_by_hand(tmp_path):
    costs, reader, world_model = _costs(tmp_path, _constant_model(0.2, 0.4), contact_weight=0.5, height_weight=2.0)
    obs = _obs([0.03, 0.02, 0.04])
    with torch.no_grad():
        read = reader(world_model.encode(torch.zeros(3, 16, 16))[None])[0]
    cube, before, hand, hand_before = costs.readings(obs)
    assert torch.allclose(cube, read) and torch.equal(before, cube)  # the first reading is its own "before"
    assert torch.equal(hand_before, hand) and hand.tolist() == pytest.approx([0.03, 0.02, 0.04])
    cost = costs.make_cost(obs, None)(torch.zeros(3, 2, 7))
    # two steps: the hand moves 0.4 x 0.05 m in x per step; the cube 0.2 x 0.05 m per step if the hand is within
    # 12 cm of it (or it moved more than 2 mm in the last step)
    c, c_prev, h = read[:2].clone(), read[:2].clone(), hand.clone()
    for _ in range(2):
        moves = (c - h[:2]).norm() < 0.12 or (c - c_prev).norm() > 0.002
        c_prev, c = c, c + torch.tensor([0.01 if moves else 0.0, 0.0])
        h = h + torch.tensor([0.02, 0.0, 0.0])
    want = (c - torch.tensor([0.1, -0.1])).norm() + 0.5 * (h[:2] - c).norm() + 2.0 * (h[2] - read[2]).abs()
    assert cost.tolist() == pytest.approx([float(want)] * 3, abs=1e-5)
    with pytest.raises(ValueError, match="reading_noise"):
        _costs(tmp_path, _constant_model(0, 0), contact_weight=-1)


def test_a_still_cubes_readings_are_averaged_and_a_moving_cubes_followed(tmp_path):
    costs, _, _ = _costs(tmp_path, _constant_model(0.0, 0.0), reading_noise=0.01, still_noise=0.0, model_error=0.5)
    readings = iter(torch.tensor([[0.10, 0.0, 0.02], [0.12, 0.0, 0.02], [0.08, 0.03, 0.02], [0.11, 0.0, 0.02]]))
    costs.object_position = lambda obs: next(readings)
    observations = [_obs([0.3, 0.3, 0.1], value) for value in range(4)]
    estimates = [costs.readings(obs)[0] for obs in observations]
    # a still cube (the model predicts no move, no process noise): the running mean of the readings
    assert estimates[-1].tolist() == pytest.approx([0.1025, 0.0075, 0.02], abs=1e-6)
    assert torch.equal(costs.readings(observations[-1])[1], estimates[2])  # the same image: read once
    # a model that moves the cube 1 unit (5 cm) in x per step when the hand is near: the prediction, then a gain
    # of P / (P + R) with P = R + (0.5 x 0.05)^2 toward the reading
    costs, _, _ = _costs(tmp_path, _constant_model(1.0, 0.0), reading_noise=0.01, still_noise=0.0, model_error=0.5)
    readings = iter(torch.tensor([[0.0, 0.0, 0.02], [0.06, 0.0, 0.02]]))
    costs.object_position = lambda obs: next(readings)
    costs.readings(_obs([-0.03, 0.0, 0.02], 0))
    estimate = costs.readings(_obs([-0.01, 0.0, 0.02], 1))[0]
    prior = 1e-4 + 0.025 ** 2
    gain = prior / (prior + 1e-4)
    assert estimate[0].item() == pytest.approx(0.05 + gain * 0.01, abs=1e-6)
    assert estimate[1:].tolist() == pytest.approx([0.0, 0.02], abs=1e-6)


def test_an_episode_plans_with_the_object_model_toward_the_final_goals_reading(tmp_path):
    import envs
    from jepa_wm.object_model_costs import ObjectModelCosts
    from jepa_wm.object_reader import ObjectReader
    from jepa_wm.planning import EpisodeConfig, encode_goals, load_planning_world_model, run_episode
    from tests.helpers import tiny_planner, write_tiny_world_model

    world_model = load_planning_world_model(*write_tiny_world_model(tmp_path, img_size=16), image_size=16)
    tokens, dim = world_model.encoder.grid_hw[0] * world_model.encoder.grid_hw[1], world_model.encoder.embed_dim
    torch.manual_seed(0)
    reader = ObjectReader(tokens, dim)
    targets = []
    init = ObjectModelCosts.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        targets.append(self.target)

    env = envs.make("push", image_size=16)
    config = EpisodeConfig(object_reader=reader, object_model=_constant_model(0.0, 1.0), max_steps=3,
                           object_model_options={"contact_weight": 0.1, "reading_noise": 0.01})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ObjectModelCosts, "__init__", recording)
        result = run_episode(env, world_model, tiny_planner(), config, seed=HELD_OUT_SEED_START, keep_frames=False)
    env.reset(seed=HELD_OUT_SEED_START)
    with torch.no_grad():
        final = reader(encode_goals(world_model, env.unwrapped.goal_images()))[-1]
    assert result.steps == 3 and len(targets) == 1 and torch.allclose(targets[0], final[:2])
    with pytest.raises(ValueError, match="go together"):
        EpisodeConfig(object_model=_constant_model(0, 0))
    with pytest.raises(ValueError, match="does not take an object model"):
        EpisodeConfig(object_reader=reader, object_model=_constant_model(0, 0), oracle=True)
    env.close()
