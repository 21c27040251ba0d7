"""The shipped hydra configs build every planner, and the registry names them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from planners import (
    ActionSpace,
    BasePlanner,
    CEMConfig,
    GradientConfig,
    ICEMConfig,
    MPPIConfig,
    Planner,
    available_planners,
    make_planner,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", available_planners())
def test_shipped_config_instantiates_and_plans(name) -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(overrides=[f"+planner={name}"])
    planner = instantiate(cfg.planner, seed=0)
    assert isinstance(planner, BasePlanner) and isinstance(planner, Planner)
    space = planner.action_space
    assert space.dim == 7 and space.planned_dims == (0, 1, 2, 6) and space.l1_radius == 1.5
    target = torch.tensor([0.3, -0.2, 0.1, 0.0, 0.0, 0.0, 0.5])

    def cost(actions: torch.Tensor) -> torch.Tensor:
        return (actions - target).square().sum(dim=(1, 2))

    result = planner.plan(cost)
    assert result.actions.shape == (planner.horizon, 7)
    assert space.contains(result.actions)
    assert result.cost < float(cost(space.default_action().expand(1, planner.horizon, 7)))


def test_cem_config_matches_the_paper() -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(overrides=["+planner=cem", "planner/action_space=full"])
    planner = instantiate(cfg.planner)
    assert planner.config == CEMConfig()  # yaml and dataclass defaults agree
    assert (planner.config.num_samples, planner.config.iterations, planner.config.topk,
            planner.config.horizon) == (800, 10, 10, 1)
    assert planner.action_space.num_planned == 7 and planner.action_space.l1_radius is None


@pytest.mark.parametrize("name, config_class", [("icem", ICEMConfig), ("mppi", MPPIConfig),
                                                ("gradient", GradientConfig)])
def test_yaml_numbers_match_dataclass_defaults(name, config_class) -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(overrides=[f"+planner={name}"])
    assert instantiate(cfg.planner.config) == config_class()


def test_registry_errors_list_choices() -> None:
    space = ActionSpace(dim=2)
    with pytest.raises(ValueError, match="cem, gradient, icem, mppi"):
        make_planner("cma-es", space)
    with pytest.raises(ValueError, match="num_samples"):
        make_planner("cem", space, samples=10)


@pytest.mark.parametrize("config_class, kwargs, match", [
    (CEMConfig, dict(topk=1), "topk"),
    (CEMConfig, dict(num_samples=5, topk=10), "topk"),
    (CEMConfig, dict(momentum_mean=1.0), "momentum_mean"),
    (CEMConfig, dict(horizon=0), "horizon"),
    (CEMConfig, dict(time_budget_s=0.0), "time_budget_s"),
    (CEMConfig, dict(init_std=(1.0, -1.0)), "init_std"),
    (ICEMConfig, dict(population_decay=0.5), "population_decay"),
    (ICEMConfig, dict(keep_elites_frac=1.5), "keep_elites_frac"),
    (MPPIConfig, dict(temperature=0.0), "temperature"),
    (GradientConfig, dict(lr=-1.0), "lr"),
    (GradientConfig, dict(chunk_size=0), "chunk_size"),
])
def test_invalid_configs_raise(config_class, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        config_class(**kwargs)


def test_per_dimension_std_must_match_planned_dims() -> None:
    planner = make_planner("cem", ActionSpace(dim=3), init_std=(1.0, 1.0), iterations=1)
    with pytest.raises(ValueError, match="one entry per planned dimension"):
        planner.plan(lambda a: a.sum((1, 2)))


def test_planner_type_checks() -> None:
    from planners import CEM

    with pytest.raises(TypeError, match="CEMConfig"):
        CEM(MPPIConfig(), ActionSpace(dim=2))
    with pytest.raises(TypeError, match="ActionSpace"):
        CEM(CEMConfig(), {"dim": 2})
