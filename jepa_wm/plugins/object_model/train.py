"""Train and evaluate an :class:`~jepa_wm.plugins.object_model.dynamics.ObjectDynamics` on object play
(:mod:`jepa_wm.plugins.object_model.play`; ``experiments/train_object_dynamics.py``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import torch
from torch import Tensor
from tqdm.auto import tqdm

from envs.interface import POS_SCALE
from jepa_wm.plugins.object_model.dynamics import ObjectDynamics, transition_features
from jepa_wm.plugins.object_model.play import DATASETS
from jepa_wm.training.loop import NonFiniteLossError, optimizer_step

logger = logging.getLogger(__name__)

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

    Raises:
        ValueError: ``held_out`` outside (0, 1), or too few episodes or steps to train on.
        NonFiniteLossError: a member's loss (``loss_cube`` + ``loss_hand``) or its gradient turned NaN
            or infinite; training stops at that step (the message names the member and its step,
            counted from 1), before updating the weights.
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
            terms = {"loss_cube": (error[:, :2] * weight[:, None]).sum() / (2 * weight.sum() + 1),
                     "loss_hand": error[:, 2:].mean()}
            loss = terms["loss_cube"] + terms["loss_hand"]
            try:
                optimizer_step(loss, optimizer, scheduler=schedule, terms=terms, step=step + 1)
            except NonFiniteLossError as err:  # the steps count per member: say which one
                raise NonFiniteLossError(f"object model member {index + 1} of {members}: {err}") from None
            loss_value = float(loss.detach())
            if step % 200 == 0:
                bar.set_postfix(loss=f"{loss_value:.4f}")
    model.eval().requires_grad_(False)
    metrics = {**evaluate_object_dynamics(model, test), "train_steps": len(train), "final_loss": loss_value}
    metrics["held_out_steps"] = metrics.pop("steps")
    logger.info("object model: held-out R² cube %.3f (moving %.3f), hand %.3f", metrics["cube_r2"],
                metrics["cube_moving_r2"], metrics["hand_r2"])
    return model, metrics
