"""Planners by name: the one place that maps ``"cem"``, ``"icem"``, ``"mppi"``, ``"gradient"``
to their classes and configs.

The main path is hydra (``instantiate(cfg.planner, seed=...)`` with
``configs/planner/<name>.yaml``); :func:`make_planner` is the same without hydra.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from planners.action_space import ActionSpace
from planners.base import BasePlanner
from planners.cem import CEM
from planners.gradient import GradientPlanner
from planners.icem import ICEM
from planners.mppi import MPPI

PLANNERS: dict[str, type[BasePlanner]] = {
    "cem": CEM,
    "icem": ICEM,
    "mppi": MPPI,
    "gradient": GradientPlanner,
}


def available_planners() -> list[str]:
    """Registered planner names, sorted."""
    return sorted(PLANNERS)


def make_planner(name: str, action_space: ActionSpace, *, seed: int | None = None,
                 device: torch.device | str | None = None, **settings: Any) -> BasePlanner:
    """Build the planner ``name`` with its config made from ``settings``.

    >>> make_planner("cem", ActionSpace(dim=7, planned_dims=(0, 1, 2, 6)), num_samples=200, seed=0)

    Raises:
        ValueError: for an unknown name (listing the choices) or an unknown setting
            (listing the config's fields).
    """
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; choose one of {', '.join(available_planners())}")
    cls = PLANNERS[name]
    fields = [f.name for f in dataclasses.fields(cls.config_class)]
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise ValueError(f"unknown {cls.config_class.__name__} settings {unknown}; valid: {fields}")
    return cls(cls.config_class(**settings), action_space, seed=seed, device=device)
