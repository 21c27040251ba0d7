"""Training steps lower the loss, runs resume exactly, open-loop evaluation reports sensibly."""

from __future__ import annotations

import pytest
import torch

from jepa_wm.data.latents import NormalizationStats
from jepa_wm.evaluation.open_loop import evaluate_open_loop
from jepa_wm.predictor import ACPredictor
from jepa_wm.predictor_training import (
    PredictorTrainConfig,
    init_predictor,
    train_predictor,
    train_step,
    validate,
    validation_subset,
)
from jepa_wm.locks import LockedError, hold
from jepa_wm.state_integration import StateIntegration
from jepa_wm.training import DistributedContext, NonFiniteLossError, adamw, list_checkpoints, load_checkpoint
from jepa_wm.world_model import export_predictor_checkpoint, read_predictor_checkpoint

CPU = torch.device("cpu")


def action_driven_batch(batch: int, frames: int, seed: int) -> dict[str, torch.Tensor]:
    """Clips whose latents move with the actions: z_{k+1} = layer_norm(z_k + W a_k)."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(7, 6 * 16, generator=torch.Generator().manual_seed(123))
    z = [torch.nn.functional.layer_norm(torch.randn(batch, 6, 16, generator=generator), (16,))]
    actions = torch.rand(batch, frames - 1, 7, generator=generator) * 2 - 1
    for k in range(frames - 1):
        moved = z[-1] + (actions[:, k] @ weight).view(batch, 6, 16)
        z.append(torch.nn.functional.layer_norm(moved, (16,)))
    return {"latents": torch.stack(z, dim=1), "actions": actions, "states": torch.zeros(batch, frames, 7)}


def test_validation_clips_are_spread_over_the_whole_set():
    """Validation sees clips from the first to the last file, not the first ``size`` clips."""
    subset = validation_subset(list(range(1000)), 5)
    assert [subset[i] for i in range(len(subset))] == [0, 250, 500, 749, 999]
    small = list(range(3))
    assert validation_subset(small, 5) is small


def test_a_few_steps_lower_the_loss(tiny_config):
    torch.manual_seed(0)
    predictor = ACPredictor(tiny_config(predictor_embed_dim=32))
    optimizer = adamw([predictor], lr=3e-3, weight_decay=0.04)
    batch = action_driven_batch(8, 4, seed=0)
    val = [action_driven_batch(8, 4, seed=1)]
    before = validate(predictor, val, device=CPU)
    history = [train_step(predictor, batch, optimizer, device=CPU, clip_grad=1.0)["loss"] for _ in range(40)]
    after = validate(predictor, val, device=CPU)
    assert history[-1] < 0.7 * history[0]
    assert after["val_loss"] < before["val_loss"]
    assert after["val_loss"] == pytest.approx(after["val_loss_tf"] + after["val_loss_rollout"])


def test_open_loop_evaluation_compares_with_baselines(predictor):
    batches = [action_driven_batch(4, 5, seed=s) for s in range(2)]
    result = evaluate_open_loop(predictor, StateIntegration(), batches, device=CPU, horizons=(1, 2, 4))
    assert result.horizons == (1, 2, 4) and result.num_clips == 8
    z = torch.cat([b["latents"] for b in batches])
    for i, h in enumerate(result.horizons):
        assert result.copy_last[i] == pytest.approx(float((z[:, h] - z[:, 0]).abs().mean()), rel=1e-5)
    assert result.model != result.shuffled_actions
    assert len(result.table().splitlines()) == 5 and result.to_dict()["num_clips"] == 8
    with pytest.raises(ValueError, match=">= 9 frames"):
        evaluate_open_loop(predictor, StateIntegration(), batches, device=CPU, horizons=(4, 8))


def test_resuming_on_other_data_warns(tmp_path, tiny_config, caplog):
    batch = action_driven_batch(4, 4, seed=0)
    clips = [{key: value[i] for key, value in batch.items()} for i in range(4)]
    stats = NormalizationStats(torch.zeros(7), torch.ones(7), torch.zeros(7), torch.ones(7))
    files = [{"path": "a.hdf5", "episodes": 10}]

    def run(total_steps, summary):
        config = PredictorTrainConfig(total_steps=total_steps, batch_size=2, warmup_steps=1, decay_steps=1,
                                      checkpoint_every=1, val_every=1, val_batches=1)
        train_predictor(tmp_path, clips, None, predictor_config=tiny_config(), stats=stats,
                        integration=StateIntegration(), encoder_info={"fingerprint": "test"}, config=config,
                        context=DistributedContext(), data_summary=summary, progress=False)

    run(2, {"files": files, "train_episodes": 9})
    with caplog.at_level("WARNING", logger="jepa_wm.predictor_training"):
        run(3, {"files": files, "train_episodes": 9})
        assert "training data differ" not in caplog.text
        run(4, {"files": [{"path": "a.hdf5", "episodes": 12}], "train_episodes": 11})
    assert "train_episodes: 9 -> 11" in caplog.text and "[('a.hdf5', 10)] -> [('a.hdf5', 12)]" in caplog.text


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, tiny_config):
    batch = action_driven_batch(8, 4, seed=0)
    clips = [{key: value[i] for key, value in batch.items()} for i in range(8)]
    stats = NormalizationStats(torch.zeros(7), torch.ones(7), torch.zeros(7), torch.full((7,), 0.5))
    config = PredictorTrainConfig(total_steps=6, batch_size=2, warmup_steps=2, decay_steps=2, checkpoint_every=2,
                                  keep_last=3, log_every=1, val_every=3, val_batches=1)

    def run(run_dir):
        return train_predictor(run_dir, clips, clips[:4], predictor_config=tiny_config(), stats=stats,
                               integration=StateIntegration(), encoder_info={"fingerprint": "test"},
                               config=config, context=DistributedContext(), progress=False)

    straight = run(tmp_path / "a")
    assert straight.step == 6 and straight.metrics["val_loss"] is not None
    run(tmp_path / "b")
    for path in list_checkpoints(tmp_path / "b" / "checkpoints")[-2:]:
        path.unlink()  # "interrupted" after step 2
    resumed = run(tmp_path / "b")
    weights = [load_checkpoint(r.checkpoint)["models"]["ac_predictor"] for r in (straight, resumed)]
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, msg=key)
    saved = load_checkpoint(resumed.checkpoint)
    assert saved["extra"]["ac_predictor"]["encoder"] == {"fingerprint": "test"}
    assert saved["config"]["normalization"]["action_std"] == [0.5] * 7


def test_fine_tuning_starts_from_the_given_predictor(tmp_path, tiny_config):
    batch = action_driven_batch(4, 4, seed=0)
    clips = [{key: value[i] for key, value in batch.items()} for i in range(4)]
    stats = NormalizationStats(torch.zeros(7), torch.ones(7), torch.zeros(7), torch.full((7,), 0.5))
    info = {"fingerprint": "test"}

    def run(run_dir, total_steps, lr, **kwargs):
        config = PredictorTrainConfig(total_steps=total_steps, batch_size=2, warmup_steps=1, decay_steps=1,
                                      peak_lr=lr, start_lr=lr, checkpoint_every=1, val_every=1, val_batches=1)
        result = train_predictor(run_dir, clips, None, predictor_config=tiny_config(), integration=StateIntegration(),
                                 encoder_info=info, config=config, context=DistributedContext(), progress=False,
                                 **kwargs)
        return load_checkpoint(result.checkpoint)["models"]["ac_predictor"]

    trained = run(tmp_path / "a", 3, 1e-2, stats=stats)
    init = init_predictor(tmp_path / "a", tiny_config(), StateIntegration(), info)
    assert init.record["step"] == 3 and init.stats.to_dict() == stats.to_dict()
    other_stats = NormalizationStats(torch.zeros(7), torch.ones(7), torch.zeros(7), torch.ones(7))
    fresh = run(tmp_path / "b", 2, 1e-12, stats=other_stats)
    tuned = run(tmp_path / "c", 2, 1e-12, stats=init.stats, init_state=init.state_dict)
    for key, value in trained.items():  # two steps at a negligible rate: still the given weights
        torch.testing.assert_close(tuned[key], value, msg=key)
    assert not torch.allclose(fresh["action_std"], trained["action_std"])
    with pytest.raises(ValueError, match=r"cannot start from .*predictor: checkpoint .*'depth': 2.*'depth': 3"):
        init_predictor(tmp_path / "a", tiny_config(depth=3), StateIntegration(), info)
    with pytest.raises(ValueError, match=r"encoder: checkpoint \{'fingerprint': 'test'\}, this run"):
        init_predictor(tmp_path / "a", tiny_config(), StateIntegration(), {"fingerprint": "other"})


def _clips(n: int = 8) -> list[dict[str, torch.Tensor]]:
    batch = action_driven_batch(n, 4, seed=0)
    return [{key: value[i] for key, value in batch.items()} for i in range(n)]


def _train(tiny_config, run_dir, clips, val=None, **settings):
    """A tiny predictor run: 4 steps of 2 clips, checkpoints and validation every 2 steps."""
    stats = NormalizationStats(torch.zeros(7), torch.ones(7), torch.zeros(7), torch.ones(7))
    config = PredictorTrainConfig(**{"total_steps": 4, "batch_size": 2, "warmup_steps": 1, "decay_steps": 1,
                                     "checkpoint_every": 2, "keep_last": 2, "log_every": 1, "val_every": 2,
                                     "val_batches": 1, **settings})
    return train_predictor(run_dir, clips, val, predictor_config=tiny_config(), stats=stats,
                           integration=StateIntegration(), encoder_info={"fingerprint": "test"}, config=config,
                           context=DistributedContext(), progress=False)


class _Diverging(torch.utils.data.Dataset):
    """Clips whose actions turn inf from the ``after``-th clip served on (training reads them in order)."""

    def __init__(self, clips, after: int) -> None:
        self.clips, self.after, self.served = clips, after, 0

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i):
        self.served += 1
        clip = dict(self.clips[i])
        if self.served > self.after:
            clip["actions"] = torch.full_like(clip["actions"], float("inf"))
        return clip


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, tiny_config):
    with pytest.raises(NonFiniteLossError) as caught:
        _train(tiny_config, tmp_path, _Diverging(_clips(), after=4))  # steps 1-2 finite, step 3 inf
    message = str(caught.value)
    good = tmp_path / "checkpoints" / "step_00000002.pt"
    assert message.startswith("training stopped at step 3: the training loss is not finite (loss nan")
    assert f"the last good checkpoint {good}, which is kept" in message and "\n" not in message
    assert list_checkpoints(tmp_path / "checkpoints") == [good]
    assert not (tmp_path / "predictor.pt").exists()
    weights = load_checkpoint(good)["models"]["ac_predictor"]  # loads: every tensor finite
    assert all(torch.isfinite(w).all() for w in weights.values())
    with pytest.raises(NonFiniteLossError, match=r"^training stopped at step 2: the validation loss is not finite "
                                                 r"\(val_loss nan, val_loss_tf nan, val_loss_rollout nan\); no "
                                                 r"checkpoint had been saved"):
        _train(tiny_config, tmp_path / "val", _clips(), _Diverging(_clips(2), after=0))
    assert list_checkpoints(tmp_path / "val" / "checkpoints") == []


def test_a_run_dir_held_by_another_run_is_refused_and_left_unchanged(tmp_path, tiny_config):
    _train(tiny_config, tmp_path, _clips(), total_steps=2)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with hold(tmp_path / ".lock", "the other run"):  # as another live process would
        with pytest.raises(LockedError, match=rf"run dir {tmp_path} is in use by another running process"):
            _train(tiny_config, tmp_path, _clips(), total_steps=4)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert _train(tiny_config, tmp_path, _clips(), total_steps=4).step == 4  # free again: it resumes


def test_a_corrupt_newest_checkpoint_resumes_from_the_one_before(tmp_path, tiny_config, caplog):
    straight = _train(tiny_config, tmp_path / "a", _clips(), total_steps=3, checkpoint_every=1)
    _train(tiny_config, tmp_path / "b", _clips(), total_steps=2, checkpoint_every=1)
    newest = tmp_path / "b" / "checkpoints" / "step_00000002.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated by a failing disk
    with caplog.at_level("WARNING", logger="jepa_wm.training.resume"):
        resumed = _train(tiny_config, tmp_path / "b", _clips(), total_steps=3, checkpoint_every=1)
    assert f"skipping the unreadable checkpoint {newest}" in caplog.text
    assert (tmp_path / "b" / "checkpoints" / "step_00000002.pt.corrupt").stat().st_size == 1000  # kept, not pruned
    weights = [load_checkpoint(r.checkpoint)["models"]["ac_predictor"] for r in (straight, resumed)]
    for key, value in weights[0].items():  # resumed from step 1: the same run as one never interrupted
        torch.testing.assert_close(weights[1][key], value, msg=key)
    assert resumed.exported == tmp_path / "b" / "predictor.pt"


def test_exported_and_loaded_predictors_refuse_nan_or_inf(tmp_path, tiny_config):
    result = _train(tiny_config, tmp_path, _clips(), total_steps=2)
    checkpoint = load_checkpoint(result.checkpoint)
    checkpoint["models"]["ac_predictor"]["predictor_proj.weight"][0, 0] = float("nan")
    bad = tmp_path / "diverged.pt"
    torch.save(checkpoint, bad)  # written by other code
    with pytest.raises(ValueError, match=rf"^{bad}: 1 of \d+ tensors hold NaN or inf .*"
                                         r"\(first: models\.ac_predictor\.predictor_proj\.weight\)$"):
        export_predictor_checkpoint(bad, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
    with pytest.raises(ValueError, match=rf"^{bad}: 1 of \d+ tensors hold NaN or inf"):
        read_predictor_checkpoint(bad)  # load_world_model and init_predictor read through it
