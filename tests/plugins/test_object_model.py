"""Object play (jepa_wm/plugins/object_model/play.py), the object dynamics (.../dynamics.py, .../train.py) and the
object model that plans with them (.../model.py): its filter, its cost term and an episode."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import envs
from jepa_wm.data import HELD_OUT_SEED_START
from jepa_wm.planning.agent import MPCAgent
from jepa_wm.planning.costs import BuildContext, Candidates, LatentEnergy, WeightedSum
from jepa_wm.planning.episode import run_episode
from jepa_wm.planning.goals import ImageGoal, ImageGoals
from jepa_wm.planning.latent_model import LatentModel
from jepa_wm.planning.loading import load_planning_world_model
from jepa_wm.planning.runner import PlanSetupError, build
from jepa_wm.plugins.object_model import train as object_model_train
from jepa_wm.plugins.object_model.dynamics import ObjectDynamics, transition_features
from jepa_wm.plugins.object_model.model import ObjectCost, ObjectModel, ObjectRollout
from jepa_wm.plugins.object_model.play import ObjectPlayConfig, collect_object_play
from jepa_wm.plugins.object_model.train import load_object_play, train_object_dynamics
from jepa_wm.plugins.object_reader.reader import ObjectReader
from jepa_wm.training.loop import NonFiniteLossError
from planners import SubgoalConfig
from tests.helpers import ROOT, run_script, tiny_planner, write_tiny_world_model
from tests.plugins.divergence import diverging

IMG = 16


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


def test_training_and_the_script_stop_at_the_first_non_finite_loss(tmp_path, monkeypatch, play_file):
    data = load_object_play(play_file)  # 32 training episodes: 2560 steps, 5 batches of 512 per epoch
    monkeypatch.setattr(object_model_train, "ObjectDynamics", diverging(ObjectDynamics, at=3, part="members.1"))
    with pytest.raises(NonFiniteLossError, match=r"^object model member 2 of 2: training stopped at step 3: the "
                                                 r"training loss is not finite \(loss nan, loss_cube nan, "
                                                 r"loss_hand inf, gradient norm nan\); the weights were not updated$"):
        train_object_dynamics(data, members=2, hidden=8, layers=1, epochs=2, held_out=0.2, progress=False)
    out = tmp_path / "model.pt"  # the play file holds the config's 40 episodes: nothing is collected
    with pytest.raises(SystemExit, match=r"^error: object model member 2 of 2: training stopped at step 3: ") as caught:
        run_script("train_object_dynamics.py", "play.episodes=40", f"play.out={play_file}", "model.hidden=8",
                   "model.layers=1", "train.epochs=2", "train.held_out=0.2", "progress=false", f"out={out}",
                   monkeypatch=monkeypatch)
    assert "\n" not in str(caught.value) and not out.exists()


def _constant_model(cube_move: float, hand_move: float) -> ObjectDynamics:
    """A 2-member model whose members predict fixed moves (action units): the cube's x, the hand's x."""
    model = ObjectDynamics(members=2, hidden=4, layers=1).requires_grad_(False)
    for member in model.members:
        torch.nn.init.zeros_(member[-1].weight)
        member[-1].bias.copy_(torch.tensor([cube_move, 0.0, hand_move, 0.0, 0.0]))
    return model


def _model(tmp_path, dynamics, **kwargs):
    """The object model on a tiny encoder with a random object reader: (model, reader, world model)."""
    world_model = load_planning_world_model(*write_tiny_world_model(tmp_path, img_size=IMG), image_size=IMG)
    tokens, dim = world_model.encoder.grid_hw[0] * world_model.encoder.grid_hw[1], world_model.encoder.embed_dim
    torch.manual_seed(0)
    reader = ObjectReader(tokens, dim)
    return ObjectModel(world_model, reader, dynamics, **kwargs), reader, world_model


def _obs(hand, value=0):
    return {"image": np.full((IMG, IMG, 3), value, np.uint8), "state": np.array([*hand, 0, 0, 0, 0], np.float32)}


def test_object_model_cost_by_hand(tmp_path):
    model, reader, world_model = _model(tmp_path, _constant_model(0.2, 0.4))
    obs = _obs([0.03, 0.02, 0.04])
    with torch.no_grad():
        read = reader(world_model.encode(torch.zeros(3, IMG, IMG))[None])[0]
    cube, before, hand, hand_before = model.readings(obs)
    assert torch.allclose(cube, read) and torch.equal(before, cube)  # the first reading is its own "before"
    assert torch.equal(hand_before, hand) and hand.tolist() == pytest.approx([0.03, 0.02, 0.04])
    # the cube's target: the reader's reading of the final goal stage
    goal_images = [np.full((IMG, IMG, 3), value, np.uint8) for value in (40, 200)]
    goal = ImageGoal(("sub", "final"), model.encode_goal(goal_images), tuple(goal_images),
                     SubgoalConfig(steps_per_goal=(1,)))
    term = ObjectCost(contact_weight=0.5, height_weight=2.0, weight=3.0)
    term.reset(goal, model)
    with torch.no_grad():
        target = reader(goal.latents)[-1, :2]
    torch.testing.assert_close(term.target, target)
    actions = torch.zeros(3, 2, 7)
    candidates = Candidates(actions, obs, goal, 0, model)
    predicted = candidates.predicted
    assert isinstance(predicted, ObjectRollout) and predicted.cubes.shape == (2, 3, 2, 2)  # (K, B, H, 2)
    cost = term(candidates)  # unweighted, whichever the stage: toward the final goal's cube
    # two steps: the hand moves 0.4 x 0.05 m in x per step; the cube 0.2 x 0.05 m per step if the hand is within
    # 12 cm of it (or it moved more than 2 mm in the last step)
    c, c_prev, h = read[:2].clone(), read[:2].clone(), hand.clone()
    for _ in range(2):
        moves = (c - h[:2]).norm() < 0.12 or (c - c_prev).norm() > 0.002
        c_prev, c = c, c + torch.tensor([0.01 if moves else 0.0, 0.0])
        h = h + torch.tensor([0.02, 0.0, 0.0])
    want = (c - target).norm() + 0.5 * (h[:2] - c).norm() + 2.0 * (h[2] - read[2]).abs()
    assert cost.tolist() == pytest.approx([float(want)] * 3, abs=1e-5)
    assert WeightedSum({"object": term})(candidates).tolist() == pytest.approx([3.0 * float(want)] * 3, abs=1e-5)
    with pytest.raises(ValueError, match="costs.object.contact_weight and height_weight must be >= 0"):
        ObjectCost(contact_weight=-1)
    with pytest.raises(ValueError, match="world_model.model_error and still_noise must be >= 0 and reading_noise > 0"):
        ObjectModel(world_model, reader, _constant_model(0, 0), reading_noise=0.0)


def test_each_term_refuses_a_world_model_that_predicts_otherwise(tmp_path):
    model, _, world_model = _model(tmp_path, _constant_model(0, 0))
    env = envs.make("push", image_size=IMG)
    context = BuildContext(env, torch.device("cpu"), "push")
    with pytest.raises(ValueError, match=r"costs.object scores predicted object; the world model \(LatentModel\) "
                                         r"predicts latents: drop the term \(costs.object=null\)"):
        ObjectCost.build(context, LatentModel(world_model))
    with pytest.raises(ValueError, match=r"costs.energy scores predicted latents; the world model \(ObjectModel\) "
                                         r"predicts object"):
        LatentEnergy.build(context, model)
    assert isinstance(ObjectCost.build(context, model, weight=2.0), ObjectCost)
    env.close()
    # in the plan config: push's recipe (costs.object) on a latent pair
    encoder, predictor = write_tiny_world_model(tmp_path / "pair", img_size=IMG)
    overrides = ["task=push", f"task.image_size={IMG}", "world_model=tiny", f"world_model.encoder={encoder}",
                 f"world_model.predictor={predictor}"]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        resolved = OmegaConf.to_container(compose(config_name="plan", overrides=overrides), resolve=True)
    with pytest.raises(PlanSetupError, match=r"costs.object scores predicted object; the world model \(LatentModel\)"):
        build(resolved, torch.device("cpu"))


def test_a_still_cubes_readings_are_averaged_and_a_moving_cubes_followed(tmp_path):
    model, _, _ = _model(tmp_path, _constant_model(0.0, 0.0), reading_noise=0.01, still_noise=0.0, model_error=0.5)
    readings = iter(torch.tensor([[0.10, 0.0, 0.02], [0.12, 0.0, 0.02], [0.08, 0.03, 0.02], [0.11, 0.0, 0.02]]))
    model.read_object = lambda latents: next(readings)[None]
    observations = [_obs([0.3, 0.3, 0.1], value) for value in range(4)]
    estimates = [model.readings(obs)[0] for obs in observations]
    # a still cube (the model predicts no move, no process noise): the running mean of the readings
    assert estimates[-1].tolist() == pytest.approx([0.1025, 0.0075, 0.02], abs=1e-6)
    assert torch.equal(model.readings(observations[-1])[1], estimates[2])  # the same image: read once
    model.reset()  # a new episode: the first reading is the estimate again
    model.read_object = lambda latents: torch.tensor([[0.2, 0.1, 0.02]])
    assert model.readings(observations[0])[0].tolist() == pytest.approx([0.2, 0.1, 0.02])
    # a model that moves the cube 1 unit (5 cm) in x per step when the hand is near: the prediction, then a gain
    # of P / (P + R) with P = R + (0.5 x 0.05)^2 toward the reading
    model, _, _ = _model(tmp_path, _constant_model(1.0, 0.0), reading_noise=0.01, still_noise=0.0, model_error=0.5)
    readings = iter(torch.tensor([[0.0, 0.0, 0.02], [0.06, 0.0, 0.02]]))
    model.read_object = lambda latents: next(readings)[None]
    model.readings(_obs([-0.03, 0.0, 0.02], 0))
    estimate = model.readings(_obs([-0.01, 0.0, 0.02], 1))[0]
    prior = 1e-4 + 0.025 ** 2
    gain = prior / (prior + 1e-4)
    assert estimate[0].item() == pytest.approx(0.05 + gain * 0.01, abs=1e-6)
    assert estimate[1:].tolist() == pytest.approx([0.0, 0.02], abs=1e-6)


def test_an_episode_plans_with_the_object_model_toward_the_final_goals_reading(tmp_path):
    model, reader, _ = _model(tmp_path, _constant_model(0.0, 1.0), reading_noise=0.01)
    term = ObjectCost(contact_weight=0.1)
    targets = []
    reset = ObjectCost.reset

    def recording(self, goal, cost_model):
        reset(self, goal, cost_model)
        targets.append(self.target)

    env = envs.make("push", image_size=IMG)
    agent = MPCAgent(model, tiny_planner(), WeightedSum({"object": term}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ObjectCost, "reset", recording)
        result = run_episode(env, agent, ImageGoals(), seed=HELD_OUT_SEED_START, max_steps=3, keep_frames=False)
    env.reset(seed=HELD_OUT_SEED_START)
    with torch.no_grad():
        final = reader(model.encode_goal(env.unwrapped.goal_images().images))[-1]
    assert result.steps == 3 and result.mpc["plan_steps"] == [0, 1, 2]
    assert len(targets) == 1 and torch.allclose(targets[0], final[:2])  # read once per episode
    env.close()
