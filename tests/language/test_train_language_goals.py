"""Training the language-goal predictor: the goal-latent cache, the sentence bank, retrieval scores
and experiments/train_language_goals.py (trains, resumes, writes a predictor that records its data)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
import torch

from envs.interface import HELD_OUT_SEED_START
from jepa_wm.encoders.checkpoint import load_encoder_checkpoint, save_encoder_checkpoint
from jepa_wm.encoders.vit import VisionTransformer, vit_config
from jepa_wm.language.evaluation import retrieval
from jepa_wm.language.goal_data import GoalDataError, collect_goal_episodes
from jepa_wm.language.goal_latents import (
    GoalLatentSet,
    build_goal_latents,
    load_goal_latents,
)
from jepa_wm.language.goal_predictor import LanguageGoalConfig, LanguageGoalPredictor
from jepa_wm.language.instructions import TemplateSet
from jepa_wm.language.sentences import SentenceBank
from jepa_wm.language.text_encoder import load_text_encoder
from tests.helpers import run_script

LANG = {"name": "pick_place_multi", "palette": "lang", "image_size": 16}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Goal files (3 training seeds, 2 held-out) of the language scene at 16 px and a 16 px encoder."""
    folder = tmp_path_factory.mktemp("lang")
    collect_goal_episodes(LANG, [0, 1, 2], folder / "train.hdf5")
    collect_goal_episodes(LANG, [HELD_OUT_SEED_START, HELD_OUT_SEED_START + 1], folder / "eval.hdf5", evaluation=True)
    torch.manual_seed(0)
    vit = VisionTransformer(vit_config("tiny", img_size=16, embed_dim=24, depth=1, num_heads=2))
    save_encoder_checkpoint(folder / "encoder.pt", vit, step=0)
    return {"train": folder / "train.hdf5", "eval": folder / "eval.hdf5", "encoder": folder / "encoder.pt"}


def test_the_latent_cache_resumes_and_refuses_another_encoder(files, tmp_path):
    encoder = load_encoder_checkpoint(files["encoder"])
    cache = tmp_path / "cache.hdf5"
    build_goal_latents(files["train"], encoder, cache, seeds=[0, 1], progress=False)
    with h5py.File(cache) as f:
        assert sorted(n for n in f) == ["seed_0", "seed_1"]
    build_goal_latents(files["train"], encoder, cache, progress=False)  # adds seed 2 only
    assert load_goal_latents([cache], seeds=[[2, 0]]).seeds == [0, 2]  # only the seeds asked for
    with pytest.raises(GoalDataError, match="has no seeds \\[5\\]: build it for them first"):
        load_goal_latents([cache], seeds=[[0, 5]])
    data = load_goal_latents([cache])
    assert data.seeds == [0, 1, 2] and data.tasks == ["pick_place_multi"] * 3
    tokens, dim = encoder.num_patches, encoder.embed_dim
    assert data.obs.shape == (3, tokens, dim) and data.goals.shape[1:] == (6, tokens, dim)
    assert int(data.own.sum()) == 3 and bool(data.stage_mask.all())
    for p in range(len(data)):  # a row's negatives are the other pairs of its own scene
        others = [int(n) for n in data.negatives[p] if n >= 0]
        assert p not in others and all(data.seed_index[n] == data.seed_index[p] for n in others)
        assert len(others) == int((data.seed_index == data.seed_index[p]).sum()) - 1
    with h5py.File(cache) as f:  # the first frame's latents are the encoder's, stored in float16
        expected = encoder.encode(torch.from_numpy(h5py.File(files["train"])["episodes/seed_0/obs_image"][:])
                                  .permute(2, 0, 1)[None, None])[0, 0]
        torch.testing.assert_close(torch.from_numpy(f["seed_0/obs"][:]).float(), expected, atol=2e-3, rtol=1e-2)
    torch.manual_seed(1)
    other = load_encoder_checkpoint(files["encoder"])
    torch.nn.init.normal_(other.vit.patch_embed.proj.weight)
    with pytest.raises(GoalDataError, match="another encoder"):
        build_goal_latents(files["train"], other, cache, progress=False)
    with pytest.raises(GoalDataError, match="no seeds"):
        build_goal_latents(files["train"], encoder, tmp_path / "c2.hdf5", seeds=[7], progress=False)


def test_the_sentence_bank_renders_every_phrasing_of_each_pair():
    templates = TemplateSet.for_task("pick_place_multi", "train")
    pairs = [("red", "blue"), ("blue", "red"), ("red", "blue")]
    bank = SentenceBank.build(pairs, ["pick_place_multi"] * 3, {"pick_place_multi": templates}, load_text_encoder())
    assert bank.counts.tolist() == [len(templates)] * 3
    assert len(bank.sentences) == 2 * len(templates)  # the repeated pair's sentences are encoded once
    assert bank.sentence(0, 0) == templates.render_all(object="red", target="blue")[0]
    text, mask = bank.pick(torch.tensor([0, 1]), torch.tensor([0, 0]))
    assert text.shape[:2] == mask.shape and mask[:, 0].all()
    assert not torch.equal(text[0], text[1])  # roles swapped: other token features
    with pytest.raises(ValueError, match="no instruction templates"):
        SentenceBank.build(pairs, ["reach"] * 3, {"pick_place_multi": templates}, load_text_encoder())


class _Lookup(torch.nn.Module):
    """Predicts the goals of the row whose id is written in the text features (or of a fixed other row)."""

    def __init__(self, goals: torch.Tensor, swap: dict[int, int] | None = None) -> None:
        super().__init__()
        self.goals, self.swap, self.anchor = goals, swap or {}, torch.nn.Parameter(torch.zeros(1))

    def forward(self, obs, text, mask, stages):
        rows = [self.swap.get(int(r), int(r)) for r in text[:, 0, 0]]
        return self.goals[rows][:, -stages:].float()


def _scene() -> tuple[GoalLatentSet, SentenceBank]:
    """One scene of three instructions (red->blue, blue->red, red->green), two stages each."""
    torch.manual_seed(0)
    goals = torch.randn(3, 2, 4, 3).half()
    data = GoalLatentSet(obs=torch.zeros(1, 4, 3).half(), goals=goals, stage_mask=torch.ones(3, 2, dtype=torch.bool),
                         seed_index=torch.zeros(3, dtype=torch.long), own=torch.tensor([True, False, False]),
                         negatives=torch.tensor([[1, 2], [0, 2], [0, 1]]), seeds=[0], tasks=["pick_place_multi"],
                         sources=[0], pairs=[("red", "blue"), ("blue", "red"), ("red", "green")],
                         stage_names=[("a", "b")] * 3, fingerprint="x")
    features = torch.arange(3.0)[:, None, None].expand(3, 2, 5).contiguous()  # row id in every feature
    bank = SentenceBank(["s0", "s1", "s2"], features, torch.ones(3, 2, dtype=torch.bool),
                        torch.arange(3)[:, None], torch.ones(3, dtype=torch.long))
    return data, bank


def test_retrieval_scores_a_perfect_and_a_role_swapping_predictor():
    data, bank = _scene()
    perfect = retrieval(_Lookup(data.goals), data, bank)
    assert (perfect.r1, perfect.swap_rows, perfect.swap_accuracy, perfect.energy_own, perfect.stage_l1) == \
        (1.0, 2, 1.0, 0.0, 0.0)
    expected = (data.goals[0, -1].float() - data.goals[1, -1].float()).abs().mean()
    assert perfect.energy_between == pytest.approx(float(expected), rel=1e-3)  # median of (0,1), (1,0), (2,0)
    swapped = retrieval(_Lookup(data.goals, swap={0: 1, 1: 0}), data, bank)
    assert (swapped.r1, swapped.swap_accuracy) == (pytest.approx(1 / 3), 0.0)


def test_the_script_trains_resumes_and_writes_a_predictor(files, tmp_path, monkeypatch):
    run_dir, out = tmp_path / "run", tmp_path / "goals.pt"
    args = [f"encoder={files['encoder']}", f"data.train=[{files['train']}]", f"data.eval={files['eval']}",
            f"run_dir={run_dir}", f"out={out}", "progress=false", "model.width=16", "model.depth=1",
            "model.num_heads=2", "train.batch_size=4", "train.warmup_steps=1", "train.decay_steps=1",
            "train.checkpoint_every=2", "train.log_every=1", "train.eval_every=2"]
    run_script("train_language_goals.py", *args, "train.steps=2", monkeypatch=monkeypatch)
    run_script("train_language_goals.py", *args, "train.steps=3", monkeypatch=monkeypatch)  # resumes at 2
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and "eval_r1" in records[-1]
    predictor, meta = LanguageGoalPredictor.load(out)
    assert meta["steps"] == 3 and meta["encoder_fingerprint"] == load_encoder_checkpoint(files["encoder"]).fingerprint()
    assert [d["seeds"] for d in meta["data"]] == [3] and meta["data"][0]["instructions"] > 3
    assert set(meta["held_out_scores"]) >= {"r1", "swap_accuracy", "energy_own"}
    assert predictor.config.grid_hw == (2, 2) and predictor.config.latent_dim == 24
    stages = meta["expert_stages"]["pick_place_multi"]  # the schedule and gripper a goal from a sentence lacks
    assert stages["names"] == ["at_cube", "closed", "grasped", "above_target", "placed", "final"]
    assert stages["gripper"] == [-1.0, 1.0, 1.0, 1.0, 1.0, -1.0]
    assert stages["steps"] == sorted(stages["steps"]) and stages["steps"][0] > 0
    before = out.read_bytes()
    for bad, message in ((f"run_dir={tmp_path / 'other'}", "already exists"),
                         (f"data.train=[{files['eval']}]", "expected training seeds"),
                         ("train.batch_size=1", "batch_size must be >= 2")):
        with pytest.raises(SystemExit) as stop:
            run_script("train_language_goals.py", *args, "train.steps=4", bad, monkeypatch=monkeypatch)
        assert message in str(stop.value.code) and "\n" not in str(stop.value.code)
    assert out.read_bytes() == before


def test_the_evaluation_script_writes_its_scores(files, tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    encoder = load_encoder_checkpoint(files["encoder"])
    predictor = LanguageGoalPredictor(LanguageGoalConfig(latent_dim=24, grid_hw=(2, 2), text_dim=384, width=16,
                                                         depth=1, num_heads=2))
    predictor.save(tmp_path / "goals.pt", {"encoder_fingerprint": encoder.fingerprint()})
    out = tmp_path / "eval" / "results.json"
    args = [f"checkpoint={tmp_path / 'goals.pt'}", f"encoder={files['encoder']}", "progress=false", f"out={out}",
            "~evaluations", f"+evaluations.mine.data={files['eval']}", "+evaluations.mine.phrasings=heldout"]
    run_script("eval_language_goals.py", *args, monkeypatch=monkeypatch)
    report = json.loads(out.read_text())["results"]["mine"]
    assert report["task"] == "pick_place_multi" and report["scenes"] == 2 and 0 <= report["r1"] <= 1
    assert "| mine | pick_place_multi | heldout |" in capsys.readouterr().out
    for bad, message in (([], "holds results.json"),  # the same out again: refused, not overwritten
                         ([f"out={tmp_path / 'b.json'}", f"+evaluations.mine.data={files['train']}"],
                          "holds training seeds")):
        with pytest.raises(SystemExit) as stop:
            run_script("eval_language_goals.py", *[a for a in args if not a.startswith("+evaluations.mine.data")
                                                   or not bad] + bad, monkeypatch=monkeypatch)
        assert message in str(stop.value.code) and "\n" not in str(stop.value.code)
