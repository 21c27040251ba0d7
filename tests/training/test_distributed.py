"""Single-process defaults, torchrun environment parsing, and the resumable sampler."""

from __future__ import annotations

import pytest
import torch

from jepa_wm.training import DistributedContext, ResumableSampler, all_reduce_mean, init_distributed, wrap_ddp


def test_without_torchrun_variables_it_is_a_plain_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    context = init_distributed(device="cpu")
    assert context == DistributedContext(device=torch.device("cpu"))
    assert context.is_main and not context.is_distributed
    model = torch.nn.Linear(2, 2)
    assert wrap_ddp(model, context) is model
    assert torch.equal(all_reduce_mean(torch.tensor([1.0, 3.0])), torch.tensor([1.0, 3.0]))


def test_partial_torchrun_environment_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(ValueError, match="only \\['RANK'\\]"):
        init_distributed(device="cpu")
    with pytest.raises(ValueError, match="rank"):
        DistributedContext(rank=2, world_size=2)


def test_resumable_sampler_skips_exactly_the_consumed_indices() -> None:
    data = list(range(23))
    ranks = [ResumableSampler(data, num_replicas=2, rank=r, seed=5) for r in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(3)
    full = [list(s) for s in ranks]
    assert len(full[0]) == len(full[1]) == 11 and not set(full[0]) & set(full[1])  # drop_last splits
    for sampler, indices in zip(ranks, full):
        sampler.set_epoch(3, skip=4)
        assert list(sampler) == indices[4:] and len(sampler) == 7
    ranks[0].set_epoch(4)
    assert list(ranks[0]) != full[0]  # another epoch, another order
    with pytest.raises(ValueError, match="skip"):
        ranks[0].set_epoch(0, skip=12)
