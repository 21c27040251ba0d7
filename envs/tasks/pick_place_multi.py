"""``pick_place_multi``: several cubes and pads; the instruction names which cube goes on which pad.

The default scene (what the shipped models were trained and tested on) is the same every
episode: red and green cubes, blue and yellow pads. ``palette="lang"`` is a scene where the
instruction matters: three of four cubes and three of four pads (red, green, blue, yellow each),
drawn per episode, with four (cube, pad) pairs held out of training (:data:`LANG_HELD_OUT_PAIRS`)
for a compositional test::

    env = envs.make("pick_place_multi", palette="lang")                     # training pairs only
    env = envs.make("pick_place_multi", palette="lang", pairs="held_out")   # held-out pairs only
    obs, info = env.reset(seed=0, options={"object": "blue", "target": "red"})
    env.unwrapped.scene_cubes, env.unwrapped.scene_pads  # the colours present this episode
    env.unwrapped.goal_images_for("green", "yellow")       # another instruction, same start state

Every setting is a constructor argument (``task.<name>=`` in the configs): ``palette`` picks a
preset of :data:`PALETTES` and the others override its fields (:class:`SceneSettings`).
Cubes of the palette that are not in the episode's scene rest out of every camera's view, pads
under the table (:func:`envs.scene.props.parking_xy`), so the simulator state holds the scene.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.base import sample_separated
from envs.interface import DEFAULT_IMAGE_SIZE, GoalImages
from envs.scene.props import COLORS, PAD_HALF, PARKING_SLOTS
from envs.tasks.pick_place import LAYOUT_HALF, MIN_DIST, PickPlaceEnv

PAIRS = ("all", "train", "held_out")  # which (cube, pad) pairs reset draws
SCENE_SIZES = (2, 3)  # cubes (and pads) per scene
PAD_GAP = 0.01  # m, between two pads' edges (along x or y) in scenes laid out by sample_layout

LANG_COLOURS = ("red", "green", "blue", "yellow")
# One pair per cube colour and per pad colour, none of them a pair of the default scene (red or
# green cube on the blue or yellow pad), so default-scene episodes can join training without
# showing one. A held-out pair's role swap is held out too (red on green, green on red).
LANG_HELD_OUT_PAIRS = (("red", "green"), ("green", "red"), ("blue", "yellow"), ("yellow", "blue"))


def _colours(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{what} must be a list of colour names, got {value!r}")
    colours = tuple(value)
    unknown = [c for c in colours if c not in COLORS]
    if not colours or unknown or len(set(colours)) != len(colours):
        raise ValueError(f"{what} must be distinct colours of {sorted(COLORS)}, got {list(colours)}")
    return colours


@dataclass(frozen=True)
class SceneSettings:
    """What a pick_place_multi scene can hold and which instructions reset draws.

    Args:
        cube_colours: the cube palette (every cube the simulation holds).
        pad_colours: the pad palette; a colour may name both a cube and a pad (shape tells them apart).
        num_cubes: cubes in each episode's scene, drawn from the palette (2 or 3; the whole
            palette when equal to its size).
        num_pads: pads in each episode's scene, likewise.
        held_out_pairs: (cube colour, pad colour) pairs kept out of training.
        pairs: ``"all"``: reset draws any pair; ``"train"``: never a held-out pair;
            ``"held_out"``: only held-out pairs.
    """

    cube_colours: tuple[str, ...]
    pad_colours: tuple[str, ...]
    num_cubes: int = 2
    num_pads: int = 2
    held_out_pairs: tuple[tuple[str, str], ...] = ()
    pairs: str = "all"

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise lists (from YAML) to tuples once
        set_(self, "cube_colours", _colours(self.cube_colours, "cube_colours"))
        set_(self, "pad_colours", _colours(self.pad_colours, "pad_colours"))
        for what, num, palette in (("num_cubes", self.num_cubes, self.cube_colours),
                                   ("num_pads", self.num_pads, self.pad_colours)):
            if not isinstance(num, (int, np.integer)) or isinstance(num, bool) or num not in SCENE_SIZES:
                raise ValueError(f"{what} must be one of {list(SCENE_SIZES)}, got {num!r}")
            if num > len(palette) or len(palette) - num > PARKING_SLOTS:
                raise ValueError(f"{what}={num} needs between {num} and {num + PARKING_SLOTS} colours, "
                                 f"got {list(palette)}")
        held = self.held_out_pairs
        if isinstance(held, str) or not isinstance(held, Sequence):
            raise TypeError(f"held_out_pairs must be a list of [cube, pad] colour pairs, got {held!r}")
        pairs = []
        for pair in held:
            if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError(f"held_out_pairs must be a list of [cube, pad] colour pairs, got {pair!r} in it")
            if pair[0] not in self.cube_colours or pair[1] not in self.pad_colours:
                raise ValueError(f"held-out pair {list(pair)} is not (one of cube_colours {list(self.cube_colours)}, "
                                 f"one of pad_colours {list(self.pad_colours)})")
            pairs.append((pair[0], pair[1]))
        if len(set(pairs)) != len(pairs):
            raise ValueError(f"held_out_pairs lists a pair twice: {pairs}")
        set_(self, "held_out_pairs", tuple(pairs))
        if self.pairs not in PAIRS:
            raise ValueError(f"pairs must be one of {list(PAIRS)}, got {self.pairs!r}")
        if not any(self.allows(c, p) for c in self.cube_colours for p in self.pad_colours):
            raise ValueError(f"pairs={self.pairs!r} leaves no (cube, pad) pair to draw (held-out pairs: {pairs})")

    def allows(self, cube: str, pad: str) -> bool:
        """Whether reset may give the instruction "put the ``cube`` cube on the ``pad`` pad"."""
        return self.pairs == "all" or ((cube, pad) in self.held_out_pairs) == (self.pairs == "held_out")


PALETTES: dict[str, SceneSettings] = {
    "default": SceneSettings(("red", "green"), ("blue", "yellow")),
    "lang": SceneSettings(LANG_COLOURS, LANG_COLOURS, 3, 3, LANG_HELD_OUT_PAIRS, "train"),
}


def scene_settings(palette: str = "default", **overrides: Any) -> SceneSettings:
    """The preset ``palette`` of :data:`PALETTES` with the ``overrides`` that are not ``None``."""
    if palette not in PALETTES:
        raise ValueError(f"palette must be one of {sorted(PALETTES)}, got {palette!r}")
    return dataclasses.replace(PALETTES[palette], **{k: v for k, v in overrides.items() if v is not None})


def sample_layout(
    rng: np.random.Generator, num_cubes: int, num_pads: int, half_extent: float = LAYOUT_HALF,
    min_dist: float = MIN_DIST, pad_gap: float = PAD_GAP, tries: int = 100, restarts: int = 1000,
) -> np.ndarray:
    """Cube then pad centres ``(num_cubes + num_pads, 2)`` in ``[-half_extent, half_extent]^2``.

    Every two centres are at least ``min_dist`` apart and no two pads overlap (their edges
    ``pad_gap`` apart along x or y). Pads are placed first, then cubes, one at a time: each
    point is the first of ``tries`` uniform draws that keeps its distances; a layout that gets
    stuck starts over. (Rejecting whole layouts, :func:`envs.base.sample_separated`, keeps
    about 1 in 5,000 for six props.)
    """
    n, pad_span = num_cubes + num_pads, 2 * PAD_HALF + pad_gap
    for _ in range(restarts):
        points = np.empty((0, 2))
        for i in range(n):
            candidates = rng.uniform(-half_extent, half_extent, size=(tries, 2))
            offsets = candidates[:, None] - points[None]  # (tries, i, 2)
            ok = (np.linalg.norm(offsets, axis=-1) >= min_dist).all(axis=1)
            if i < num_pads:  # the points so far are pads
                ok &= (np.abs(offsets).max(axis=-1) >= pad_span).all(axis=1)
            if not ok.any():
                break
            points = np.concatenate([points, candidates[ok.argmax()][None]])
        else:
            return np.concatenate([points[num_pads:], points[:num_pads]])
    raise RuntimeError(f"could not lay out {num_cubes} cubes and {num_pads} pads in +-{half_extent} m")


class PickPlaceMultiEnv(PickPlaceEnv):
    """Pick and place among distractors: the named cube on the named pad.

    Per episode, ``num_cubes`` cubes and ``num_pads`` pads are drawn from the palettes with
    ``self.np_random`` (the whole palette when it has that many: the default scene, red and
    green cubes, blue and yellow pads) and laid out without overlap. The instruction's pair
    (``object``, ``target``) is drawn among the pairs :class:`SceneSettings` allows, or chosen
    with ``reset(options={"object": "red", "target": "blue"})``; the scene always holds it.
    ``instruction`` reads e.g. "put the red cube on the blue pad". Success: the named cube
    rests on the named pad.

    Args:
        image_size, camera, render_mode: as :class:`envs.base.TabletopEnv`.
        palette: a preset of :data:`PALETTES` (``"default"`` or ``"lang"``).
        cube_colours, pad_colours, num_cubes, num_pads, held_out_pairs, pairs: override the
            preset's fields (:class:`SceneSettings`); ``None`` keeps them.
        object, target: the instruction's cube and pad colours in every episode (reset options
            override them); ``None``: drawn per episode.
    """

    task_name = "pick_place_multi"
    max_episode_steps = 100
    cubes = PALETTES["default"].cube_colours  # the class's default palettes; an instance holds its own
    pads = PALETTES["default"].pad_colours

    def __init__(
        self, image_size: int = DEFAULT_IMAGE_SIZE, camera: str = "front", render_mode: str | None = None, *,
        palette: str = "default", cube_colours: Sequence[str] | None = None, pad_colours: Sequence[str] | None = None,
        num_cubes: int | None = None, num_pads: int | None = None,
        held_out_pairs: Sequence[Sequence[str]] | None = None, pairs: str | None = None,
        object: str | None = None, target: str | None = None,
    ) -> None:
        self.settings = scene_settings(
            palette, cube_colours=cube_colours, pad_colours=pad_colours, num_cubes=num_cubes, num_pads=num_pads,
            held_out_pairs=held_out_pairs, pairs=pairs,
        )
        self.cubes, self.pads = self.settings.cube_colours, self.settings.pad_colours  # the simulation holds all
        self.default_pair = {"object": object, "target": target}
        self._choose_pair(object, target, draw=False)  # checks the colours now, not at the first reset
        super().__init__(image_size, camera, render_mode)
        self.scene_cubes = self.cubes[: self.settings.num_cubes]  # until the first reset draws them
        self.scene_pads = self.pads[: self.settings.num_pads]
        self._other_goals: dict[tuple[str, str], dict[int | None, GoalImages]] = {}

    @property
    def scene_pairs(self) -> tuple[tuple[str, str], ...]:
        """Every (cube, pad) pair present in this episode's scene."""
        return tuple((c, p) for c in self.scene_cubes for p in self.scene_pads)

    @property
    def instruction_pairs(self) -> tuple[tuple[str, str], ...]:
        """The pairs present in this scene that ``settings.pairs`` allows (e.g. training's hard negatives)."""
        return tuple(pair for pair in self.scene_pairs if self.settings.allows(*pair))

    def goal_images_for(self, object: str, target: str, every: int | None = None) -> GoalImages:
        """Goal images of another instruction in this episode's scene: the clean expert putting the
        ``object`` cube on the ``target`` pad from the episode's start state (cached like
        :meth:`goal_images`, which this is for the episode's own pair)."""
        if object not in self.scene_cubes or target not in self.scene_pads:
            raise ValueError(f"this scene has cubes {list(self.scene_cubes)} and pads {list(self.scene_pads)}, "
                             f"got object={object!r}, target={target!r}")
        if (object, target) == (self.object, self.target):
            return self.goal_images(every)
        own = self.object, self.target, self._goals
        self.object, self.target = object, target  # goal_images runs the expert toward these
        self._goals = self._other_goals.setdefault((object, target), {})
        try:
            return self.goal_images(every)
        finally:
            self.object, self.target, self._goals = own

    def _reset_task(self, options: dict[str, Any]) -> str:
        unknown = set(options) - {"object", "target"}
        if unknown:
            raise ValueError(f"{self.task_name} reset options are 'object' and 'target', got {sorted(unknown)}")
        settings, rng = self.settings, self.np_random
        chosen = {**self.default_pair, **{k: v for k, v in options.items() if v is not None}}
        self.object, self.target = self._choose_pair(chosen["object"], chosen["target"])
        self.scene_cubes = self._draw_scene(self.object, self.cubes, settings.num_cubes)
        self.scene_pads = self._draw_scene(self.target, self.pads, settings.num_pads)
        n_cubes, n_pads = len(self.scene_cubes), len(self.scene_pads)
        if n_cubes == n_pads == 2:  # pick_place's layout: the default scene stays what the shipped models saw
            layout = sample_separated(rng, n_cubes + n_pads, LAYOUT_HALF, MIN_DIST)
        else:
            layout = sample_layout(rng, n_cubes, n_pads)
        for color, xy in zip(self.scene_cubes, layout):
            self.sim.place_cube(color, xy, rng.uniform(-np.pi / 4, np.pi / 4))
        for color, xy in zip(self.scene_pads, layout[n_cubes:]):
            self.sim.set_pad(color, xy)
        for slot, color in enumerate(c for c in self.cubes if c not in self.scene_cubes):
            self.sim.park_cube(color, slot)
        for color in self.pads:
            if color not in self.scene_pads:
                self.sim.park_pad(color)
        self._other_goals = {}
        return f"put the {self.object} cube on the {self.target} pad"

    def _choose_pair(self, object: str | None, target: str | None, draw: bool = True) -> tuple[str, str] | None:
        """The instruction's pair: the requested colours, the rest drawn among the allowed pairs
        (the cube first, then a pad it may go on); ``draw=False`` only checks the colours."""
        for requested, palette, what in ((object, self.cubes, "object"), (target, self.pads, "target")):
            if requested is not None and requested not in palette:
                raise ValueError(f"{what} must be one of {list(palette)}, got {requested!r}")
        allowed = [(c, p) for c in self.cubes for p in self.pads
                   if self.settings.allows(c, p) and object in (None, c) and target in (None, p)]
        if not allowed:
            raise ValueError(f"pairs={self.settings.pairs!r} excludes object={object!r} with target={target!r} "
                             f"(held-out pairs: {[list(p) for p in self.settings.held_out_pairs]})")
        if not draw:
            return None
        object = self._choose(object, tuple(dict.fromkeys(c for c, _ in allowed)), "object")
        return object, self._choose(target, tuple(p for c, p in allowed if c == object), "target")

    def _draw_scene(self, named: str, palette: tuple[str, ...], num: int) -> tuple[str, ...]:
        """``num`` colours of ``palette`` (in palette order) with ``named`` among them."""
        if num == len(palette):
            return palette
        others = [c for c in palette if c != named]
        drawn = {named, *(others[i] for i in self.np_random.choice(len(others), num - 1, replace=False))}
        return tuple(c for c in palette if c in drawn)

    def _object_positions(self) -> np.ndarray:
        """xyz of the scene's cubes (the instruction's first), float32 ``(3 * num_cubes,)``."""
        cubes = sorted(self.scene_cubes, key=lambda color: color != self.object)  # stable: keeps scene order
        return np.concatenate([self.sim.cube_pos(c) for c in cubes]).astype(np.float32)
