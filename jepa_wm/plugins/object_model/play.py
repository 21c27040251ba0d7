"""Object play: state-only episodes of a hand poking a cube, the training data of an object model.

A push is decided by centimetres of contact geometry: where the hand meets the cube and which
way it moves. The experts' episodes show the hand behind the cube pushing toward the pad, and
little else, so a model fitted to them predicts motion wherever it has not seen the hand (CEM
finds and uses those errors). :class:`PokeExplorer` plays instead: each segment of 6-15 steps
is the task's noisy expert, a poke (the hand goes to a random point 3.5-9 cm from the cube at a
random height, lifting before it crosses over, then moves through it at a random speed and
direction), or uniform random moves; the fingers stay closed.

:func:`collect_object_play` records no images, only what an object model needs, per episode
``i`` (env seed ``seed + i``, below :data:`HELD_OUT_SEED_START`):

- ``object (E, T+1, 3)``: the cube's centre (m) before each step and after the last;
- ``hand (E, T+1, 3)``: the grip site's position (m), likewise;
- ``action (E, T, 7)``: the executed actions.

The file is written every ``flush_every`` episodes and a run resumes where the file ends;
an interrupted run loses at most the unflushed episodes, and the file stays valid.

>>> collect_object_play(ObjectPlayConfig(task="push", episodes=6000, out="data/object_play_push.hdf5"))
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
from tqdm.auto import tqdm

import envs
from envs.experts import CLOSED
from envs.interface import POS_SCALE
from jepa_wm.data.collect import HELD_OUT_SEED_START

logger = logging.getLogger(__name__)

PLAY_FORMAT = "jepa_wm.object_play/1"
MODES = ("expert", "poke", "random")
DATASETS = ("object", "hand", "action")  # the file's arrays, one row per episode


@dataclass(frozen=True)
class ObjectPlayConfig:
    """Settings of an object-play collection.

    Args:
        task: a tabletop task with a cube (``push``, ``pick_place``, ...).
        episodes: episodes the file should hold.
        out: the HDF5 file.
        seed: episode ``i`` uses env seed ``seed + i`` (all below ``HELD_OUT_SEED_START``).
        mode_probs: probabilities of an expert, poke or random segment.
        expert_noise: ``(low, high)`` of each episode's expert noise (action units).
        flush_every: episodes between writes.
    """

    task: str = "push"
    episodes: int = 6000
    out: str = "data/object_play_push.hdf5"
    seed: int = 0
    mode_probs: tuple[float, float, float] = (0.35, 0.5, 0.15)
    expert_noise: tuple[float, float] = (0.05, 1.0)
    flush_every: int = 200

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.flush_every < 1:
            raise ValueError(f"episodes and flush_every must be >= 1, got {self.episodes}, {self.flush_every}")
        if not 0 <= self.seed or self.seed + self.episodes > HELD_OUT_SEED_START:
            raise ValueError(f"object play seeds must lie in [0, {HELD_OUT_SEED_START}) (held-out seeds are for "
                             f"evaluation), got {self.seed} .. {self.seed + self.episodes - 1}")
        if len(self.mode_probs) != len(MODES) or min(self.mode_probs) < 0 or not np.isclose(sum(self.mode_probs), 1):
            raise ValueError(f"mode_probs must be 3 probabilities of {MODES} summing to 1, got {self.mode_probs}")
        low, high = self.expert_noise
        if not 0 <= low <= high:
            raise ValueError(f"expert_noise must be (low, high) with 0 <= low <= high, got {self.expert_noise}")


class PokeExplorer:
    """Segments of the task's noisy expert, pokes through the cube and random moves (fingers closed).

    Args:
        env: a tabletop task env, just reset (``env.unwrapped.sim`` with a cube).
        rng: the episode's generator (segments, targets, noise).
        mode_probs, expert_noise: see :class:`ObjectPlayConfig`.
    """

    SEGMENT = (6, 16)  # steps per segment: [low, high)
    POKE_RADIUS = (0.035, 0.09)  # m, start of a poke from the cube's centre
    POKE_HEIGHT = (0.012, 0.06)  # m, grip-site height of a poke
    CROSS_Z = 0.08  # m, lift to this height before crossing over toward a poke's start
    ARRIVE = 0.012  # m, at a poke's start

    def __init__(self, env: gym.Env, rng: np.random.Generator,
                 mode_probs: tuple[float, float, float] = ObjectPlayConfig.mode_probs,
                 expert_noise: tuple[float, float] = ObjectPlayConfig.expert_noise) -> None:
        self.task = env.unwrapped
        if not getattr(self.task, "cubes", ()):
            raise ValueError(f"PokeExplorer needs a task with a cube; {self.task.task_name!r} has none")
        self.cube = getattr(self.task, "object", self.task.cubes[0])
        self.rng, self.mode_probs = rng, np.asarray(mode_probs, dtype=float)
        self.expert = self.task.make_expert(noise=float(rng.uniform(*expert_noise)), seed=int(rng.integers(2**31)))
        self.mode, self.left = "expert", 0
        self._start = np.zeros(3)
        self._direction = np.zeros(2)
        self._speed, self._arrived = 1.0, False

    def _new_segment(self) -> None:
        rng, sim = self.rng, self.task.sim
        self.mode = MODES[int(rng.choice(len(MODES), p=self.mode_probs))]
        self.left = int(rng.integers(*self.SEGMENT))
        if self.mode == "poke":
            angle = rng.uniform(0, 2 * np.pi)
            offset = np.array([np.cos(angle), np.sin(angle)])
            self._start = np.append(sim.cube_pos(self.cube)[:2] + rng.uniform(*self.POKE_RADIUS) * offset,
                                    rng.uniform(*self.POKE_HEIGHT))
            aim = angle + rng.normal(0, 0.4)  # toward the cube, give or take
            self._direction = -np.array([np.cos(aim), np.sin(aim)])
            self._speed, self._arrived = rng.uniform(0.2, 1.0), False

    def act(self) -> np.ndarray:
        """The next action ``(7,)``: delta xyz in action units, rotation still, fingers closed."""
        if self.left <= 0:
            self._new_segment()
        self.left -= 1
        rng, action = self.rng, np.zeros(7)
        if self.mode == "expert":
            action[:3] = self.expert.act()[:3]
        elif self.mode == "random":
            action[:3] = rng.uniform(-1, 1, 3)
        elif not self._arrived:
            hand = self.task.sim.ee_pos
            move = self._start - hand
            if hand[2] < self.CROSS_Z - 0.02 and np.linalg.norm(move[:2]) > 0.02:
                move = np.append(move[:2], self.CROSS_Z - hand[2])  # lift before crossing over
            move = move / POS_SCALE
            action[:3] = move / max(1.0, np.abs(move).max()) + rng.normal(0, 0.1, 3)
            self._arrived = bool(np.linalg.norm(self._start - hand) < self.ARRIVE)
        else:
            action[:2] = self._speed * self._direction + rng.normal(0, 0.15, 2)
            action[2] = rng.normal(0, 0.2)
        action = np.clip(action, -1.0, 1.0)
        action[6] = CLOSED
        return action


def play_episode(env: gym.Env, seed: int, config: ObjectPlayConfig) -> tuple[np.ndarray, ...]:
    """One episode of :class:`PokeExplorer` from ``reset(seed=seed)``, physics only.

    Returns:
        ``object (T+1, 3)``, ``hand (T+1, 3)``, ``action (T, 7)`` as float32 (T: the task's time limit).
    """
    env.reset(seed=seed)
    task = env.unwrapped
    explorer = PokeExplorer(env, np.random.default_rng(seed), config.mode_probs, config.expert_noise)
    steps = env.spec.max_episode_steps
    objects, hands, actions = [task.sim.cube_pos(explorer.cube)], [task.sim.ee_pos], []
    for _ in range(steps):
        action = explorer.act()
        task.sim.step(action)  # physics only: no frame rendered
        objects.append(task.sim.cube_pos(explorer.cube))
        hands.append(task.sim.ee_pos)
        actions.append(action)
    return (np.asarray(objects, np.float32), np.asarray(hands, np.float32), np.asarray(actions, np.float32))


def _settings(config: ObjectPlayConfig) -> dict[str, object]:
    settings = asdict(config)
    settings.pop("episodes"), settings.pop("out"), settings.pop("flush_every")
    return {key: np.asarray(value).tolist() for key, value in settings.items()}


def _open(out: Path, config: ObjectPlayConfig, steps: int) -> h5py.File:
    """The play file, created or checked to hold this config's episodes (same task, seed, policy)."""
    expected = {"format": PLAY_FORMAT, **{key: str(value) for key, value in _settings(config).items()}}
    if out.exists():
        file = h5py.File(out, "a")
        found = {key: file.attrs.get(key) for key in expected}
        if found != expected:
            file.close()
            raise ValueError(f"{out} holds object play of other settings ({found}), expected {expected}: "
                             "give another out= or remove it")
        return file
    out.parent.mkdir(parents=True, exist_ok=True)
    file = h5py.File(out, "w")
    file.attrs.update(expected)
    for name, width, length in (("object", 3, steps + 1), ("hand", 3, steps + 1), ("action", 7, steps)):
        file.create_dataset(name, shape=(0, length, width), maxshape=(None, length, width), dtype="f4",
                            chunks=(64, length, width))
    return file


def collect_object_play(config: ObjectPlayConfig, progress: bool = True) -> Path:
    """Collect ``config.episodes`` episodes into ``config.out``, resuming where the file ends.

    Returns:
        The file's path.

    Raises:
        ValueError: the file exists with other settings.
    """
    out = Path(config.out)
    env = envs.make(config.task)
    try:
        steps = env.spec.max_episode_steps
        with _open(out, config, steps) as file:
            done = min(file[name].shape[0] for name in DATASETS)
            for name in DATASETS:  # an interrupted write: keep the complete episodes
                file[name].resize(done, axis=0)
            if done >= config.episodes:
                logger.info("%s already holds %d episodes", out, done)
                return out
            logger.info("%s: %d episodes present, collecting %d more", out, done, config.episodes - done)
            buffer: list[tuple[np.ndarray, ...]] = []
            for index in tqdm(range(done, config.episodes), desc="object play", disable=not progress):
                buffer.append(play_episode(env, config.seed + index, config))
                if len(buffer) == config.flush_every or index == config.episodes - 1:
                    for name, arrays in zip(DATASETS, zip(*buffer)):
                        data = file[name]
                        data.resize(data.shape[0] + len(arrays), axis=0)
                        data[-len(arrays):] = np.stack(arrays)
                    file.flush()
                    buffer.clear()
    finally:
        env.close()
    return out
