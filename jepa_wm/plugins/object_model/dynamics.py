"""An object model: where a hand move sends the cube, in the coordinates the readers read.

The latent predictor barely carries a push's effect on the cube (docs/research/push.md), and
planning a push needs it 3 steps ahead. :class:`ObjectDynamics` predicts it in a space of a few numbers:
the cube's xy and the grip site's xyz, as the object reader reads the cube from a latent and the
robot's proprioception gives the hand. Per step it maps

- the cube's position relative to the hand, the hand's position, the action's delta xyz,
- the last step's moves of the cube and the hand (a pushed cube slides on),
- the contact geometry of the move: the point of the hand's straight path (hand -> hand + delta)
  closest to the cube relative to it, its distance, the path's end relative to the cube and
  where along the path the closest point lies

(:func:`transition_features`, lengths in action units of ``pos_scale`` metres) to the next
moves of the cube (xy) and the hand (xyz). The cube moves only while the hand is within
``gate_radius`` of it or it is already moving (a locality gate, in training and prediction), so
no hand move far from the cube moves it. Several members trained from different seeds form an
ensemble; :meth:`ObjectDynamics.rollout` returns every member's predictions.

Trained on object play (:mod:`jepa_wm.plugins.object_model.play`) by
:func:`jepa_wm.plugins.object_model.train.train_object_dynamics`; the shipped model's recipe and
held-out scores are in docs/models.md.

>>> model, meta = ObjectDynamics.load("jepa_wm/checkpoints/object_dynamics_push.pt")
>>> cubes, hands = model.rollout(cube_xy, cube_xy_before, hand, hand_before, actions)  # (K, B, H, 2), (K, B, H, 3)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from envs.interface import POS_SCALE
from jepa_wm.training.checkpoint import atomic_torch_save, load_tagged

logger = logging.getLogger(__name__)

DYNAMICS_FORMAT = "jepa_wm.object_dynamics/1"  # the file format's name since its first release
FEATURES = 19  # see transition_features
OUTPUTS = 5  # the cube's move xy, the hand's move xyz (action units)
FAR = 3.0  # action units: cube-hand lengths (and the cube's last move) are clipped to +-FAR, so a cube flung off
# the table does not ask the network for what it never saw


def transition_features(obj: Tensor, obj_prev: Tensor, hand: Tensor, hand_prev: Tensor, action: Tensor,
                        pos_scale: float = POS_SCALE) -> Tensor:
    """The inputs of one step, ``(B, 19)``.

    Args:
        obj, obj_prev: the cube's xy now and one step before, ``(B, 2)`` (m).
        hand, hand_prev: the grip site's xyz now and one step before, ``(B, 3)`` (m).
        action: delta xyz, ``(B, 3)`` (action units).
        pos_scale: metres per action unit.

    Returns:
        ``[cube - hand (2), hand / 0.1 m (3), action (3), cube's last move (2), hand's last move (3),
        closest point of the hand's path - cube (2), its distance (1), path's end - cube (2),
        where along the path it lies in [0, 1] (1)]``, lengths in action units; those involving the cube
        clipped to ``+-FAR``.
    """
    move = pos_scale * action[:, :2]  # (B, 2) the hand's commanded path in the plane
    rel = obj - hand[:, :2]
    along = ((rel * move).sum(1) / ((move * move).sum(1) + 1e-6)).clamp(0, 1)[:, None]  # (B, 1)
    closest = hand[:, :2] + along * move - obj
    end = hand[:, :2] + move - obj
    lengths = torch.cat([rel, (obj - obj_prev), closest, closest.norm(dim=1, keepdim=True), end], 1) / pos_scale
    lengths = lengths.clamp(-FAR, FAR)  # (B, 9) a cube farther than FAR units acts as one at FAR
    return torch.cat([lengths[:, :2], hand / 0.1, action, lengths[:, 2:4], (hand - hand_prev) / pos_scale,
                      lengths[:, 4:], along], 1)


def _member(hidden: int, layers: int) -> nn.Sequential:
    modules: list[nn.Module] = []
    width = FEATURES
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    return nn.Sequential(*modules, nn.Linear(width, OUTPUTS))


class ObjectDynamics(nn.Module):
    """An ensemble of MLPs: one step of the cube's xy and the hand's xyz under an action.

    Args:
        members: ensemble size.
        hidden, layers: each member's hidden width and number of hidden layers.
        gate_radius: the cube moves only while the hand is this close to it in the plane (m) ...
        moving_eps: ... or it moved more than this in the last step (m).
        pos_scale: metres per action unit.
    """

    def __init__(self, members: int = 2, hidden: int = 256, layers: int = 3, gate_radius: float = 0.12,
                 moving_eps: float = 0.002, pos_scale: float = POS_SCALE) -> None:
        super().__init__()
        if members < 1 or hidden < 1 or layers < 1:
            raise ValueError(f"members, hidden and layers must be >= 1, got {members}, {hidden}, {layers}")
        self.config = {"members": members, "hidden": hidden, "layers": layers, "gate_radius": gate_radius,
                       "moving_eps": moving_eps, "pos_scale": pos_scale}
        self.members = nn.ModuleList(_member(hidden, layers) for _ in range(members))
        self.gate_radius, self.moving_eps, self.pos_scale = gate_radius, moving_eps, pos_scale

    def gate(self, obj: Tensor, obj_prev: Tensor, hand: Tensor) -> Tensor:
        """1 where the cube may move (hand near or cube moving), else 0, ``(B,)``."""
        near = (obj - hand[:, :2]).norm(dim=1) < self.gate_radius
        moving = (obj - obj_prev).norm(dim=1) > self.moving_eps
        return (near | moving).to(obj.dtype)

    def moves(self, features: Tensor) -> Tensor:
        """Every member's predicted moves ``(K, B, 5)`` (action units) of features ``(B, 19)``, ungated."""
        return torch.stack([member(features) for member in self.members])

    def rollout(self, obj: Tensor, obj_prev: Tensor, hand: Tensor, hand_prev: Tensor,
                actions: Tensor) -> tuple[Tensor, Tensor]:
        """Each member's cube and hand positions after each of ``H`` actions.

        Args:
            obj, obj_prev: the cube's xy now and one step before, ``(2,)`` (m).
            hand, hand_prev: the grip site's xyz now and one step before, ``(3,)`` (m).
            actions: candidates ``(B, H, A)``, delta xyz first (action units).

        Returns:
            cubes ``(K, B, H, 2)`` and hands ``(K, B, H, 3)`` (m), one per member.
        """
        batch, horizon = actions.shape[:2]
        members = len(self.members)
        dtype, device = torch.float32, actions.device

        def start(value: Tensor) -> Tensor:
            value = torch.as_tensor(value, dtype=dtype, device=device)
            return value.expand(members * batch, value.shape[-1]).clone()

        c, c_prev, h, h_prev = start(obj), start(obj_prev), start(hand), start(hand_prev)
        deltas = actions[..., :3].to(dtype).repeat(members, 1, 1)  # (K * B, H, 3), member-major
        cubes, hands = [], []
        for t in range(horizon):
            features = transition_features(c, c_prev, h, h_prev, deltas[:, t], self.pos_scale)
            moves = torch.cat([member(chunk) for member, chunk in zip(self.members, features.split(batch))])
            gate = self.gate(c, c_prev, h)[:, None]
            c_prev, h_prev = c, h
            c = c + self.pos_scale * moves[:, :2] * gate
            h = h + self.pos_scale * moves[:, 2:]
            cubes.append(c)
            hands.append(h)
        return (torch.stack(cubes, 1).view(members, batch, horizon, 2),
                torch.stack(hands, 1).view(members, batch, horizon, 3))

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write the weights, the architecture and ``meta`` (training data and metrics) to ``path``."""
        return atomic_torch_save({"format": DYNAMICS_FORMAT, "config": self.config, "state_dict": self.state_dict(),
                                  "meta": meta or {}}, path)

    @classmethod
    def load(cls, path: str | Path) -> tuple[ObjectDynamics, dict[str, Any]]:
        """The model at ``path`` and its ``meta``.

        Raises:
            FileNotFoundError: no file (the message says how to train one).
            ValueError: the file is not an object model.
        """
        state = load_tagged(path, DYNAMICS_FORMAT, "object model",
                            f"python experiments/train_object_dynamics.py task=<task> out={path}")
        model = cls(**state["config"])
        model.load_state_dict(state["state_dict"])
        return model.eval().requires_grad_(False), dict(state.get("meta") or {})
