"""The shipped default world model: provenance, and plan.py end to end on the shipped configs."""

from __future__ import annotations

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from jepa_wm.encoders import load_encoder_checkpoint
from jepa_wm.plugins.object_model.dynamics import ObjectDynamics
from jepa_wm.plugins.object_reader.reader import ObjectReader
from jepa_wm.planning.runner import build
from jepa_wm.world_model import encoder_pool, load_world_model, read_predictor_checkpoint
from tests.helpers import ROOT, run_script

CHECKPOINTS = ROOT / "jepa_wm" / "checkpoints"
PREDICTOR, ENCODER = CHECKPOINTS / "predictor_tiny.pt", CHECKPOINTS / "encoder_tiny.pt"
PREDICTOR_2CAM, ENCODER_2CAM = CHECKPOINTS / "predictor_tiny_2cam.pt", CHECKPOINTS / "encoder_tiny_2cam.pt"
PREDICTOR_2CAM_6K = CHECKPOINTS / "predictor_tiny_2cam_6k.pt"
PREDICTOR_2CAM_PICK_PLACE = CHECKPOINTS / "predictor_tiny_2cam_pick_place.pt"
HAND_READER_2CAM = CHECKPOINTS / "hand_reader_tiny_2cam.pt"


def test_shipped_predictor_records_its_recipe_and_fits_the_shipped_encoder():
    assert PREDICTOR.stat().st_size < 10 * 2**20
    checkpoint = read_predictor_checkpoint(PREDICTOR)
    default = OmegaConf.load(ROOT / "configs" / "train_predictor.yaml")
    # README recipe: the default run (train.total_steps=3000), continued with train.total_steps=6000
    _assert_default_recipe(checkpoint, default, total_steps=6000)
    assert checkpoint["data"]["paths"] == list(default.data.paths)
    assert {f["meta"]["task"] for f in checkpoint["data"]["files"]} == {"reach", "push", "pick_place",
                                                                        "pick_place_multi"}
    assert set(checkpoint["data"]["normalization"]) >= {"state_mean", "state_std", "action_mean", "action_std"}
    assert encoder_pool(checkpoint) == default.encoder_pool
    _assert_rolls_out(checkpoint, ENCODER, image_hw=(64, 64), tokens=64)  # 8x8 tokens


def test_shipped_two_camera_pair_records_its_recipe_and_takes_stacked_views():
    """docs/models.md: the default recipe (3000 steps) on front+side recordings."""
    assert PREDICTOR_2CAM.stat().st_size < 10 * 2**20 and ENCODER_2CAM.stat().st_size < 20 * 2**20
    checkpoint = read_predictor_checkpoint(PREDICTOR_2CAM)
    default = OmegaConf.load(ROOT / "configs" / "train_predictor.yaml")
    _assert_default_recipe(checkpoint, default, total_steps=3000)
    assert checkpoint["data"]["paths"] == [p.replace("data/", "data/fs/") for p in default.data.paths]
    assert {f["env_args"]["env_kwargs"]["camera"] for f in checkpoint["data"]["files"]} == {"front+side"}
    assert encoder_pool(checkpoint) == default.encoder_pool
    _assert_rolls_out(checkpoint, ENCODER_2CAM, image_hw=(128, 64), tokens=128)  # front view above the side view


def test_shipped_two_camera_predictor_at_6000_steps_continues_the_same_run():
    """docs/models.md: the two-camera run continued to train.total_steps=6000."""
    assert PREDICTOR_2CAM_6K.stat().st_size < 10 * 2**20
    checkpoint, shorter = read_predictor_checkpoint(PREDICTOR_2CAM_6K), read_predictor_checkpoint(PREDICTOR_2CAM)
    _assert_default_recipe(checkpoint, OmegaConf.load(ROOT / "configs" / "train_predictor.yaml"), total_steps=6000)
    assert checkpoint["data"]["paths"] == shorter["data"]["paths"]
    assert checkpoint["data"]["files"] == shorter["data"]["files"]
    assert checkpoint["config"]["encoder"] == shorter["config"]["encoder"]
    _assert_rolls_out(checkpoint, ENCODER_2CAM, image_hw=(128, 64), tokens=128)


def test_shipped_pick_place_predictor_fine_tunes_the_6000_step_one_on_pick_place_episodes():
    """docs/models.md: train_predictor.py init=<the 6000-step run> on pick_place's files."""
    assert PREDICTOR_2CAM_PICK_PLACE.stat().st_size < 10 * 2**20
    checkpoint = read_predictor_checkpoint(PREDICTOR_2CAM_PICK_PLACE)
    start = read_predictor_checkpoint(PREDICTOR_2CAM_6K)
    _assert_default_recipe(checkpoint, OmegaConf.load(ROOT / "configs" / "train_predictor.yaml"), total_steps=3000)
    init = checkpoint["data"]["init"]
    assert init["step"] == start["step"] == 6000 and init["paths"] == start["data"]["paths"]
    assert checkpoint["data"]["paths"] == ["data/fs/pretrain_pick_place.hdf5", "data/fs/play_pick_place.hdf5"]
    assert {f["meta"]["task"] for f in checkpoint["data"]["files"]} == {"pick_place"}
    assert checkpoint["data"]["normalization"] == start["data"]["normalization"]  # the weights expect it
    assert checkpoint["config"]["encoder"] == start["config"]["encoder"]
    _assert_rolls_out(checkpoint, ENCODER_2CAM, image_hw=(128, 64), tokens=128)


def test_shipped_hand_reader_reads_the_two_camera_encoders_latents():
    """docs/models.md: train_object_reader.py target=hand on push's and pick_place's episodes."""
    assert HAND_READER_2CAM.stat().st_size < 10 * 2**20
    reader, meta = ObjectReader.load(HAND_READER_2CAM,
                                     encoder_fingerprint=load_encoder_checkpoint(ENCODER_2CAM).fingerprint())
    assert meta["target"] == "hand" and reader.shape == (128, 192)
    assert [d["path"] for d in meta["data"]] == [f"data/fs/{kind}_{task}.hdf5" for task in ("push", "pick_place")
                                                 for kind in ("pretrain", "play")]
    assert meta["held_out_xy_error_cm_median"] < 1.0  # recorded when it was trained, on 80 held-out episodes


def test_shipped_object_reader_and_object_model_record_their_recipes():
    """docs/models.md: the object reader trained on push's 1,000 two-camera episodes, the object model
    on 6,000 episodes of object play."""
    reader_path = ROOT / "jepa_wm" / "checkpoints" / "object_reader_tiny_2cam.pt"
    model_path = ROOT / "jepa_wm" / "checkpoints" / "object_dynamics_push.pt"
    assert reader_path.stat().st_size < 10 * 2**20 and model_path.stat().st_size < 10 * 2**20
    reader, meta = ObjectReader.load(reader_path, encoder_fingerprint=load_encoder_checkpoint(ENCODER_2CAM).fingerprint(),
                                     target="object")
    assert reader.shape == (128, 192) and meta["epochs"] == 24 and meta["config"]["frame_stride"] == 1
    assert [d["path"] for d in meta["data"]] == [f"data/fs/{kind}_push.hdf5" for kind in ("pretrain", "play", "play2")]
    assert meta["held_out_xy_error_cm_median"] < 1.0  # recorded when it was trained, on 100 held-out episodes
    model, meta = ObjectDynamics.load(model_path)
    assert meta["task"] == "push" and meta["data"] == {"path": "data/object_play_push.hdf5", "episodes": 6000,
                                                       "steps": 480000}
    assert len(model.members) == 2 and meta["cube_r2"] > 0.7 and meta["hand_r2"] > 0.99


def _assert_default_recipe(checkpoint: dict, default, total_steps: int) -> None:
    """The checkpoint was trained with configs/train_predictor.yaml's train settings to ``total_steps``."""
    recorded = checkpoint["config"]["train"]
    assert checkpoint["optimizer"] is None and checkpoint["step"] == recorded["total_steps"] == total_steps
    expected = {**OmegaConf.to_container(default.train), "total_steps": total_steps}
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in recorded.items()} == expected


def _assert_rolls_out(checkpoint: dict, encoder_path, image_hw: tuple[int, int], tokens: int) -> None:
    """The predictor loads on its encoder (weights hash checked) and rolls out finite (5, 2, tokens, 192)."""
    world_model = load_world_model(checkpoint, load_encoder_checkpoint(encoder_path, pool=encoder_pool(checkpoint)))
    z = world_model.encode(torch.zeros(3, *image_hw, dtype=torch.uint8))  # (N, D)
    future = world_model.rollout(z[None], torch.zeros(1, 7), torch.zeros(5, 2, 7))
    assert future.shape == (5, 2, tokens, 192) and torch.isfinite(future).all()


def _run_plan(out, monkeypatch, *overrides: str) -> dict:
    """`python experiments/plan.py overrides...` for one episode from the repository root; its results.json."""
    monkeypatch.chdir(ROOT)
    run_script("plan.py", "episodes=1", "progress=false", "threads=1", *overrides, f"run_dir={out}",
               monkeypatch=monkeypatch)
    return json.loads((out / "results.json").read_text())


def test_plan_script_runs_the_main_job_on_the_shipped_default(tmp_path, monkeypatch):
    """`python experiments/plan.py task=pick_place`, shortened to 3 steps, from the repository root."""
    out = tmp_path / "plan"
    record = _run_plan(out, monkeypatch, "task=pick_place", "max_steps=3")
    assert record["config"]["world_model"]["predictor"].endswith("predictor_tiny_2cam_pick_place.pt")
    (episode,) = record["episodes"]
    assert episode["steps"] == 3 and episode["goal_names"] == ["at_cube", "closed", "grasped", "above_target", "placed", "final"]
    assert episode["steps_per_goal"] == [30, 6, 6, 12, 6]  # at_cube left on arrival (energy below 0.03) or after 30
    assert (out / "energy.png").is_file() and any(out.glob("episode_000_seed_*.mp4"))


def test_plan_script_runs_reach_on_its_shipped_setup(tmp_path, monkeypatch):
    """`python experiments/plan.py task=reach`, shortened to 4 steps: the two-camera pair in bfloat16,
    horizon 2 while far (the start is far from the marker), the fingers held open."""
    record = _run_plan(tmp_path / "plan", monkeypatch, "task=reach", "max_steps=4", "video=false")
    assert record["config"]["world_model"]["predictor"].endswith("predictor_tiny_2cam.pt")
    (episode,) = record["episodes"]
    assert episode["steps"] == 4 and episode["mpc"]["far"][0]  # the first plan looked two steps ahead
    assert all(action[6] == -1.0 for action in episode["mpc"]["actions"])  # fingers open throughout


def test_plan_script_runs_push_with_its_object_model(tmp_path, monkeypatch):
    """`python experiments/plan.py task=push`, shortened to 6 steps: the object reader's cube, the object model's
    plans 3 steps ahead, the fingers held closed; the hand goes toward the cube."""
    record = _run_plan(tmp_path / "plan", monkeypatch, "task=push", "max_steps=6", "video=false")
    assert record["config"]["world_model"]["dynamics"].endswith("object_dynamics_push.pt")
    (episode,) = record["episodes"]
    assert episode["steps"] == 6 and all(action[6] == 1.0 for action in episode["mpc"]["actions"])
    import envs  # the hand's distance to the cube in the table plane shrinks

    env = envs.make("push", camera="front+side")
    env.reset(seed=episode["seed"])
    start = env.unwrapped.sim.ee_pos[:2] - env.unwrapped.sim.cube_pos("red")[:2]
    env.close()
    end = torch.tensor(episode["final_state"][:2]) - torch.tensor(episode["final_object_pos"][:2])
    assert float(end.norm()) < float(torch.tensor(start).norm()) - 0.05


WORLD_MODELS = ROOT / "configs" / "world_model"
PAIRS = sorted(p.stem for p in WORLD_MODELS.glob("*.yaml"))


def _plan_config(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return OmegaConf.to_container(compose(config_name="plan", overrides=list(overrides)), resolve=True)


@pytest.mark.parametrize("name", PAIRS)
def test_every_world_model_pair_builds_on_the_cameras_its_encoder_was_trained_on(name, monkeypatch):
    """`plan.py world_model=<pair>`: the pair loads (weights hash checked) on its cameras' images; its camera,
    precision and thresholds reach the env and the agent (reach's recipe, or push's for push's object model)."""
    monkeypatch.chdir(ROOT)
    task = {"object_model_push": "push", "tiny_2cam_pick_place": "pick_place"}.get(name, "reach")  # trained on
    resolved = _plan_config(f"task={task}", f"world_model={name}")
    world = resolved["world_model"]
    assert resolved["task"]["camera"] == world["camera"]
    assert resolved["mpc"]["arrival_energy"] == world["arrival_energy"] > 0 and world["far_energy"] > 0
    setup = build(resolved, torch.device("cpu"))
    setup.env.close()
    model, agent = setup.agent.model, setup.agent
    assert model.image_hw == setup.env.unwrapped.image_hw and model.prediction in ("latents", "object")
    assert model.world_model.encoder.img_hw == model.image_hw
    assert agent.mpc.config.arrival_energy == world["arrival_energy"]
    if world["predictor"] is not None:
        assert model.world_model.precision == world["precision"]


@pytest.mark.parametrize("task", sorted(p.stem for p in (ROOT / "configs" / "task").glob("*.yaml")))
def test_every_task_plans_with_its_recipe(task):
    """configs/recipe/<task>.yaml: reach plans with the two-camera pair, horizon 2 while far from the marker and the
    fingers held open; pick_place with the two-camera pair's predictor fine-tuned on its episodes, pick_place_multi
    with the 6000-step one, both with the gripper term and the grasp on arrival, pick_place with the hand pull on x
    and y beyond 6 cm; push with its object model (the two-camera encoder, the object reader, the object dynamics),
    CEM 256 x 4 at horizon 3, the object cost alone and the fingers held closed; every other task with the default
    pair; all at horizon 1 but reach while far and push, planning the gripper but reach and push."""
    resolved = _plan_config(f"task={task}")
    pairs = {"reach": "tiny_2cam", "pick_place": "tiny_2cam_pick_place", "pick_place_multi": "tiny_2cam_6k",
             "push": "object_model_push"}
    pair = pairs.get(task, "tiny")
    assert resolved["world_model"] == _plan_config(f"task={task}", f"world_model={pair}")["world_model"]
    costs = {name for name, term in resolved["costs"].items() if term is not None}
    if task in ("pick_place", "pick_place_multi"):
        trained = "pick_place" if task == "pick_place" else "6k"
        assert resolved["world_model"]["predictor"].endswith(f"predictor_tiny_2cam_{trained}.pt")
        assert resolved["costs"]["gripper"]["reader"].endswith("gripper_reader_tiny_2cam.pt")
        assert resolved["costs"]["gripper"]["weight"] == 0.05
        assert resolved["goal"]["energy_threshold"] == [0.03] and resolved["goal"]["steps_per_goal"] == [30, 6, 6, 12, 6]
        assert resolved["planner"]["config"]["init_std"] == 0.5  # planner/cem_cpu_pick_place.yaml
        # another planner keeps its own settings (the half spread is the preset's)
        assert _plan_config(f"task={task}", "planner=cem")["planner"]["config"]["init_std"] == 1.0
    if task == "pick_place":  # the hand reader's pull, horizontal and beyond 6 cm
        hand = resolved["costs"]["hand"]
        assert hand["reader"].endswith("hand_reader_tiny_2cam.pt")
        assert (hand["weight"], hand["margin"], hand["dims"]) == (3.0, 0.06, [0, 1])
        assert costs == {"energy", "workspace", "gripper", "hand"}
    elif task == "pick_place_multi":
        assert costs == {"energy", "workspace", "gripper"}
    elif task == "push":
        world = resolved["world_model"]
        assert world["predictor"].endswith("predictor_tiny_2cam_6k.pt") and world["dynamics"].endswith(
            "object_dynamics_push.pt")
        assert world["object_reader"].endswith("object_reader_tiny_2cam.pt") and world["model_error"] == 0.6
        assert costs == {"object"}
        config = resolved["planner"]["config"]
        assert (config["horizon"], config["num_samples"], config["iterations"]) == (3, 256, 4)
        assert _plan_config(f"task={task}", "planner=cem")["planner"]["config"]["num_samples"] == 800
        space = instantiate(resolved["planner"], seed=0).action_space
        assert space.num_planned == 3 and space.held_value[-1] == 1  # delta xyz; the fingers held closed
    else:
        assert costs == {"energy", "action", "workspace"}
    if task == "reach":
        assert resolved["far_planner"] == {"config": {"horizon": 2}}
        assert resolved["mpc"]["far_energy"] == resolved["world_model"]["far_energy"] == 0.106
        assert resolved["task"]["camera"] == "front+side" and resolved["world_model"]["precision"] == "bfloat16"
        space = instantiate(resolved["planner"], seed=0).action_space
        assert space.num_planned == 3 and space.held_value[-1] == -1  # delta xyz; the gripper held open
    elif task != "push":
        assert resolved["far_planner"] is None and resolved["mpc"]["far_energy"] is None
        assert instantiate(resolved["planner"], seed=0).action_space.num_planned == 4  # delta xyz + gripper
