"""A model that diverges at a chosen training step, to check that the plug-in trainers stop there."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn


def diverging(cls: type[nn.Module], at: int, part: str = "") -> Callable[..., nn.Module]:
    """A stand-in for the class ``cls``: it builds a ``cls`` whose submodule ``part`` (the whole
    model: ``""``) answers inf times its output from its ``at``-th forward call on (one call per
    training step: a run whose loss turns non-finite at step ``at``)."""

    def build(*args: Any, **kwargs: Any) -> nn.Module:
        model = cls(*args, **kwargs)
        calls = itertools.count(1)

        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> Tensor | None:
            return output * float("inf") if next(calls) >= at else None

        model.get_submodule(part).register_forward_hook(hook)
        return model

    return build
