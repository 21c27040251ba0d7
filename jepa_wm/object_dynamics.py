"""An object model: where a hand move sends the cube, in the coordinates the readers read.

The latent predictor barely carries a push's effect on the cube (the object reader reads the
predicted move with correlation 0.24 to the true move, README "Push's default"), and planning a
push needs it 3 steps ahead. :class:`ObjectDynamics` predicts it in a space of a few numbers:
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

Trained on object play (:mod:`jepa_wm.data.object_play`; push's shipped model, 6,000 episodes): held-out
R² of the cube's one-step moves 0.73 (the moving steps' 0.74), of the hand's 0.996.

>>> data = load_object_play("data/object_play_push.hdf5")
>>> model, metrics = train_object_dynamics(data)
>>> model.save("runs/object_dynamics/push.pt", {"data": str(path), **metrics})
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from envs.interface import POS_SCALE
from jepa_wm.data.object_play import DATASETS
from jepa_wm.training.checkpoint import atomic_torch_save, load_tagged

logger = logging.getLogger(__name__)

DYNAMICS_FORMAT = "jepa_wm.object_dynamics/1"
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


@dataclass(frozen=True)
class ObjectTransitions:
    """One-step transitions of object play, float32 tensors over ``M`` steps.

    ``obj, obj_prev (M, 2)``, ``hand, hand_prev (M, 3)``, ``action (M, 3)``, ``next_obj (M, 2)``,
    ``next_hand (M, 3)`` (m; action in action units), ``episode (M,)`` the episode index.
    """

    obj: Tensor
    obj_prev: Tensor
    hand: Tensor
    hand_prev: Tensor
    action: Tensor
    next_obj: Tensor
    next_hand: Tensor
    episode: Tensor

    def __len__(self) -> int:
        return len(self.obj)

    def features(self, pos_scale: float = POS_SCALE) -> Tensor:
        """The model's inputs of every step, ``(M, 19)`` (:func:`transition_features`)."""
        return transition_features(self.obj, self.obj_prev, self.hand, self.hand_prev, self.action, pos_scale)

    def moves(self, pos_scale: float = POS_SCALE) -> Tensor:
        """The true one-step moves of the cube (xy) and the hand (xyz), ``(M, 5)`` in action units."""
        return torch.cat([self.next_obj - self.obj, self.next_hand - self.hand], 1) / pos_scale

    def subset(self, mask: Tensor) -> ObjectTransitions:
        """The transitions where ``mask (M,)`` is true."""
        return ObjectTransitions(*(getattr(self, name)[mask] for name in self.__dataclass_fields__))


def load_object_play(path: str | Path, episodes: int | None = None) -> ObjectTransitions:
    """Every step of the first ``episodes`` episodes (all: ``None``) of an object-play file.

    The first step's "one step before" is the step itself (nothing moved before it).
    """
    with h5py.File(path, "r") as file:
        count = min(file[name].shape[0] for name in DATASETS)
        count = count if episodes is None else min(count, episodes)
        if count == 0:
            raise ValueError(f"{path} holds no complete episode of object play")
        objects = torch.from_numpy(file["object"][:count, :, :2])  # (E, T+1, 2)
        hands = torch.from_numpy(file["hand"][:count])  # (E, T+1, 3)
        actions = torch.from_numpy(file["action"][:count, :, :3])  # (E, T, 3)
    prev_obj = torch.cat([objects[:, :1], objects[:, :-2]], 1)  # (E, T, 2): step t-1, t=0 repeats itself
    prev_hand = torch.cat([hands[:, :1], hands[:, :-2]], 1)
    steps = actions.shape[1]
    episode = torch.arange(count).repeat_interleave(steps)

    def flat(x: Tensor) -> Tensor:
        return x.reshape(count * steps, x.shape[-1])

    return ObjectTransitions(flat(objects[:, :-1]), flat(prev_obj), flat(hands[:, :-1]), flat(prev_hand),
                             flat(actions), flat(objects[:, 1:]), flat(hands[:, 1:]), episode)


def _r_squared(predicted: Tensor, truth: Tensor) -> float:
    return float(1 - ((predicted - truth) ** 2).sum() / ((truth - truth.mean(0)) ** 2).sum().clamp(min=1e-12))


def evaluate_object_dynamics(model: ObjectDynamics, data: ObjectTransitions) -> dict[str, float]:
    """Held-out R² of the ensemble mean's one-step moves: the cube's (all steps and the steps that
    moved it more than 2.5 mm), the hand's."""
    with torch.no_grad():
        moves = model.moves(data.features(model.pos_scale)).mean(0)  # (M, 5)
    cube = moves[:, :2] * model.gate(data.obj, data.obj_prev, data.hand)[:, None]
    truth = data.moves(model.pos_scale)
    true_cube, true_hand = truth[:, :2], truth[:, 2:]
    moving = true_cube.norm(dim=1) > 0.05
    return {"cube_r2": _r_squared(cube, true_cube),
            "cube_moving_r2": _r_squared(cube[moving], true_cube[moving]) if moving.any() else float("nan"),
            "hand_r2": _r_squared(moves[:, 2:], true_hand), "steps": len(data), "moving_steps": int(moving.sum())}


def train_object_dynamics(data: ObjectTransitions, *, members: int = 2, hidden: int = 256, layers: int = 3,
                          epochs: int = 4, batch_size: int = 512, lr: float = 2e-3, held_out: float = 0.05,
                          seed: int = 0, progress: bool = True) -> tuple[ObjectDynamics, dict[str, Any]]:
    """Fit each member (its own seed and data order) to the one-step moves, squared error.

    The cube's error counts only on gated steps (:meth:`ObjectDynamics.gate`), the hand's on all.
    The last ``held_out`` fraction of episodes is never trained on and scored after training.

    Returns:
        The model (eval mode) and metrics: :func:`evaluate_object_dynamics` on the held-out
        episodes, the numbers of training and held-out steps and the final training loss.
    """
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must lie in (0, 1), got {held_out}")
    episodes = int(data.episode.max()) + 1
    split = max(1, int(round(episodes * (1 - held_out))))
    if split >= episodes:
        raise ValueError(f"{episodes} episodes leave none held out at held_out={held_out}: collect more")
    train, test = data.subset(data.episode < split), data.subset(data.episode >= split)
    torch.manual_seed(seed)
    model = ObjectDynamics(members, hidden, layers)
    features, targets = train.features(model.pos_scale), train.moves(model.pos_scale)
    gate = model.gate(train.obj, train.obj_prev, train.hand)
    batches = len(train) // batch_size
    if batches == 0:
        raise ValueError(f"{len(train)} training steps make no batch of {batch_size}")
    loss_value = float("nan")
    for index, member in enumerate(model.members):
        optimizer = torch.optim.Adam(member.parameters(), lr=lr / 2)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=epochs * batches)
        generator = torch.Generator().manual_seed(seed + index)
        bar = tqdm(range(epochs * batches), desc=f"object model member {index + 1}/{members}", disable=not progress)
        for step in bar:
            if step % batches == 0:
                order = torch.randperm(len(train), generator=generator)
            rows = order[(step % batches) * batch_size:(step % batches + 1) * batch_size]
            error = (member(features[rows]) - targets[rows]) ** 2  # (b, 5)
            weight = gate[rows]
            loss = (error[:, :2] * weight[:, None]).sum() / (2 * weight.sum() + 1) + error[:, 2:].mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_value = float(loss.detach())
            if step % 200 == 0:
                bar.set_postfix(loss=f"{loss_value:.4f}")
    model.eval().requires_grad_(False)
    metrics = {**evaluate_object_dynamics(model, test), "train_steps": len(train), "final_loss": loss_value}
    metrics["held_out_steps"] = metrics.pop("steps")
    logger.info("object model: held-out R² cube %.3f (moving %.3f), hand %.3f", metrics["cube_r2"],
                metrics["cube_moving_r2"], metrics["hand_r2"])
    return model, metrics
