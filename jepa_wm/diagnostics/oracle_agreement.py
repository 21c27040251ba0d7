"""Where does the predictor's energy disagree with the true frames'? (failure analysis)

Planning with true frames (:class:`~jepa_wm.diagnostics.simulator.SimulatorModel`) tells whether the
encoder's energy can solve a task at all; this module tells *where along an episode* the
predictor ranks actions differently from the truth. It replays a planned episode (``results.json``
of ``experiments/plan.py``; the envs are deterministic per seed) and, at every observation,
scores candidate actions twice toward the goal the planner had at that step: with the world
model's predicted next latents (:class:`~jepa_wm.planning.latent_model.LatentModel`) and with the
encoder's latents of the simulator's true next frames. Per step it records:

* ``rank_correlation``: Spearman's rho of the two energies over ``candidates`` actions: the
  executed one and others with its delta xyz perturbed by Gaussian noise (``noise`` action
  units, clipped to [-1, 1]); 1 means the predictor orders these moves as the truth does;
* the gripper: the energies of the executed action and of the same action with its gripper
  command (``gripper_dim``) negated (open <-> closed), as predicted and as true:
  ``gripper_agrees`` when both prefer the same command, and the size of each preference (how
  much the energy sees the fingers);
* the height: the energies of the executed action moved ``height`` action units down and up
  (delta z), as predicted and as true: ``height_agrees`` when both prefer the same direction, and
  the size of each preference (whether the predicted energy follows the hand's height, e.g. on
  the last centimetres down to a cube).

Privileged (it steps the simulator) and for analysis only, like the oracle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from scipy.stats import spearmanr

from envs.interface import ACTION_DIM
from jepa_wm.diagnostics.simulator import SimulatorModel
from jepa_wm.planning.costs import EnergySettings
from jepa_wm.planning.latent_model import LatentModel
from jepa_wm.world_model import WorldModel


@dataclass(frozen=True)
class StepAgreement:
    """One observation of a replayed episode.

    Attributes:
        step: index of the action chosen at this observation.
        goal: name of the goal image the planner had.
        rank_correlation: Spearman's rho between predicted and true energies of the candidates
            (``nan`` when either set of energies is constant).
        gripper_agrees: predicted and true energies prefer the same gripper command.
        gripper_gap_predicted, gripper_gap_true: energy of the flipped gripper command minus
            that of the executed one (positive: the executed command is preferred).
        height_agrees: predicted and true energies prefer the same of the two vertical moves.
        height_gap_predicted, height_gap_true: energy of the executed action moved up minus that
            of it moved down (positive: down is preferred).
    """

    step: int
    goal: str
    rank_correlation: float
    gripper_agrees: bool
    gripper_gap_predicted: float
    gripper_gap_true: float
    height_agrees: bool
    height_gap_predicted: float
    height_gap_true: float


def candidate_actions(action: np.ndarray, candidates: int, noise: float, generator: torch.Generator) -> torch.Tensor:
    """``(candidates, 1, 7)`` one-step candidates: ``action`` first, then its delta xyz plus
    Gaussian noise of std ``noise`` (clipped to [-1, 1]); the other dimensions as ``action``'s."""
    if candidates < 2:
        raise ValueError(f"candidates must be >= 2 to correlate energies, got {candidates}")
    if not noise > 0:
        raise ValueError(f"noise must be positive (action units), got {noise}")
    executed = torch.as_tensor(np.asarray(action, dtype=np.float32))
    if executed.shape != (ACTION_DIM,):
        raise ValueError(f"expected a {ACTION_DIM}-D action, got shape {tuple(executed.shape)}")
    batch = executed.repeat(candidates, 1)  # (C, 7)
    batch[1:, :3] += noise * torch.randn(candidates - 1, 3, generator=generator)
    return batch.clamp(-1.0, 1.0)[:, None]  # (C, 1, 7)


def episode_agreement(env: gym.Env, world_model: WorldModel, episode: Mapping[str, Any], *,
                      energy: EnergySettings = EnergySettings(), gripper_dim: int = 6,
                      candidates: int = 16, noise: float = 0.5, height: float = 0.5,
                      seed: int = 0) -> list[StepAgreement]:
    """Compare predicted and true energies at every observation of one ``results.json`` episode.

    Args:
        env: the episode's task (same image size and cameras as planned).
        world_model: encoder + predictor (the encoder also scores the true frames).
        episode: a ``results.json`` episode: ``seed``, ``goal_names``, ``mpc.actions`` and
            ``mpc.goal_indices``.
        energy: the energy (distance, blur) the episode planned with.
        gripper_dim: the action dimension of the gripper command.
        candidates, noise: see :func:`candidate_actions`.
        height: the vertical moves' size, action units (0.5: 2.5 cm), added to and taken from
            the executed delta z (clipped to [-1, 1]).
        seed: seeds the candidates' noise.

    Raises:
        ValueError: the episode's goals are not the env's, or its goal indices do not fit.
    """
    if not height > 0:  # before the env is reset and the goals encoded
        raise ValueError(f"height must be positive (action units), got {height}")
    actions, indices = episode["mpc"]["actions"], episode["mpc"]["goal_indices"]
    obs, _ = env.reset(seed=int(episode["seed"]))
    goals = env.unwrapped.goal_images()
    if tuple(episode.get("goal_names") or goals.names) != tuple(goals.names) or len(indices) != len(actions):
        raise ValueError(f"episode {episode['seed']}: goals {episode.get('goal_names')} with {len(indices)} goal "
                         f"indices for {len(actions)} actions do not fit the env's goals {list(goals.names)}")
    predicted, true = LatentModel(world_model), SimulatorModel(env, world_model)
    latents = predicted.encode_goal(goals.images)  # (G, N, D)
    generator = torch.Generator().manual_seed(seed)
    records = []
    for step, (action, index) in enumerate(zip(actions, indices, strict=True)):
        batch = candidate_actions(np.asarray(action), candidates, noise, generator)  # (C, 1, 7)
        flipped, down, up = batch[:1].clone(), batch[:1].clone(), batch[:1].clone()
        flipped[..., gripper_dim] = -flipped[..., gripper_dim]
        down[..., 2], up[..., 2] = (down[..., 2] - height).clamp(-1, 1), (up[..., 2] + height).clamp(-1, 1)
        batch = torch.cat([batch, flipped, down, up])  # (C + 3, 1, 7): the C candidates, then the probes
        goal = latents[int(index)]
        with torch.no_grad():
            e_pred = energy(predicted.rollout(obs, batch)[:, -1], goal).float().numpy()
            e_true = energy(true.rollout(obs, batch)[:, -1], goal).float().numpy()
        gap_pred, gap_true = float(e_pred[candidates] - e_pred[0]), float(e_true[candidates] - e_true[0])
        rise_pred, rise_true = float(e_pred[-1] - e_pred[-2]), float(e_true[-1] - e_true[-2])
        moves_pred, moves_true = e_pred[:candidates], e_true[:candidates]
        constant = np.ptp(moves_pred) == 0 or np.ptp(moves_true) == 0
        rho = float("nan") if constant else float(spearmanr(moves_pred, moves_true).statistic)
        records.append(StepAgreement(step=step, goal=goals.names[int(index)], rank_correlation=rho,
                                     gripper_agrees=bool(np.sign(gap_pred) == np.sign(gap_true)),
                                     gripper_gap_predicted=gap_pred, gripper_gap_true=gap_true,
                                     height_agrees=bool(np.sign(rise_pred) == np.sign(rise_true)),
                                     height_gap_predicted=rise_pred, height_gap_true=rise_true))
        obs = env.step(np.asarray(action, dtype=np.float32))[0]
    return records


def summarize_agreement(steps: Sequence[StepAgreement]) -> dict[str, dict[str, float]]:
    """Per goal (in order of first appearance): steps, median rank correlation, fraction of steps
    whose gripper preference agrees and the median size of the predicted and true gripper preferences,
    and the same for the vertical moves (down vs up)."""
    if not steps:
        raise ValueError("summarize_agreement needs at least one step")
    summary = {}
    for name in dict.fromkeys(s.goal for s in steps):
        mine = [s for s in steps if s.goal == name]
        rhos = [s.rank_correlation for s in mine if not np.isnan(s.rank_correlation)]
        summary[name] = {
            "steps": len(mine),
            "median_rank_correlation": float(np.median(rhos)) if rhos else float("nan"),
            "gripper_agreement": float(np.mean([s.gripper_agrees for s in mine])),
            "median_abs_gripper_gap_predicted": float(np.median([abs(s.gripper_gap_predicted) for s in mine])),
            "median_abs_gripper_gap_true": float(np.median([abs(s.gripper_gap_true) for s in mine])),
            "height_agreement": float(np.mean([s.height_agrees for s in mine])),
            "median_abs_height_gap_predicted": float(np.median([abs(s.height_gap_predicted) for s in mine])),
            "median_abs_height_gap_true": float(np.median([abs(s.height_gap_true) for s in mine])),
        }
    return summary
