"""Latent MPC planners: CEM, iCEM, MPPI and gradient-based, behind one interface.

Planners minimise a cost over batches of candidate action sequences (``(B, H, A) -> (B,)``);
they know nothing about encoders, torch modules or simulators. See
:mod:`planners.protocols` for the contract, :mod:`planners.objective` for the world-model
energy, :mod:`planners.mpc` for the receding-horizon loop.
"""

from planners.action_space import ActionSpace
from planners.base import BasePlanner, PlannerConfig, shift_plan
from planners.cem import CEM, CEMConfig
from planners.gradient import GradientConfig, GradientPlanner
from planners.icem import ICEM, ICEMConfig, colored_noise
from planners.mpc import MPC, MPCConfig, MPCLog
from planners.mppi import MPPI, MPPIConfig
from planners.objective import latent_energy
from planners.protocols import CostFunction, Planner, PlanResult
from planners.registry import PLANNERS, available_planners, make_planner
from planners.subgoals import SubgoalConfig, SubgoalSchedule
from planners.workspace import WorkspaceBox

__all__ = [
    "ActionSpace",
    "BasePlanner",
    "CEM",
    "CEMConfig",
    "CostFunction",
    "GradientConfig",
    "GradientPlanner",
    "ICEM",
    "ICEMConfig",
    "MPC",
    "MPCConfig",
    "MPCLog",
    "MPPI",
    "MPPIConfig",
    "PLANNERS",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "SubgoalConfig",
    "SubgoalSchedule",
    "WorkspaceBox",
    "available_planners",
    "colored_noise",
    "latent_energy",
    "make_planner",
    "shift_plan",
]
