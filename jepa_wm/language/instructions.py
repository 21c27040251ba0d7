"""Instruction templates for language goals: many phrasings per task, a held-out set, users' files.

A template is one line of text naming the episode's colours through ``{object}`` (the cube to
move) and ``{target}`` (the pad it goes to, or the marker ``reach`` touches). Each task ships a
training set and a disjoint held-out set (``templates/<task>_{train,heldout}.txt``); a user's
file has the very same format: one template a line, ``#`` starts a comment, blank lines are
skipped, literal braces are written ``{{`` and ``}}``.

>>> import numpy as np
>>> from jepa_wm.language.instructions import Scene, TemplateSet, check_sentence
>>> train = TemplateSet.for_task("pick_place_multi", "train")
>>> train.render(np.random.default_rng(0), object="red", target="blue")
>>> mine = TemplateSet.load("my_templates.txt", task="pick_place_multi")
>>> check_sentence("put the purple cube on the blue pad", "pick_place_multi")  # ValueError
>>> Scene.of_task("pick_place_multi").pairs()      # every (object, target) the scene allows

Colours are read from the environment classes (``cubes``, ``pads``, ``markers``) when asked,
never copied here, so a task that gains colours needs no change in this module.
"""

from __future__ import annotations

import importlib
import logging
import re
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

PLACEHOLDERS = ("object", "target")
SPLITS = ("train", "heldout")
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

# Words that name a colour, to catch a sentence naming one its scene lacks. The environments'
# own colours (envs.scene.COLORS) are added at call time.
COMMON_COLOURS = frozenset(
    {
        "red", "green", "blue", "yellow", "orange", "purple", "violet", "pink", "magenta", "cyan", "teal",
        "turquoise", "brown", "black", "white", "grey", "gray", "beige", "maroon", "navy", "olive", "lime",
        "indigo", "lavender", "crimson", "scarlet", "gold", "golden", "silver", "tan",
    }
)
# A colour word right before one of these names that role's colour ("the red cube", "the blue pad").
OBJECT_NOUNS = frozenset({"cube", "cubes", "block", "blocks", "box", "boxes", "brick", "bricks"})
TARGET_NOUNS = frozenset(
    {
        "pad", "pads", "mat", "mats", "square", "squares", "target", "targets", "tile", "tiles", "marker",
        "markers", "ball", "balls", "sphere", "spheres", "dot", "dots",
    }
)
_WORD = re.compile(r"[a-z]+")


# ---------------------------------------------------------------------------------- scene colours
@dataclass(frozen=True)
class Scene:
    """The colours a scene offers for each role: ``objects`` (cubes) and ``targets`` (pads or markers).

    Args:
        objects: colours of the things that can be moved (empty for ``reach``).
        targets: colours of the places they can go (pads), or of the markers to reach.
    """

    objects: tuple[str, ...]
    targets: tuple[str, ...]

    def __post_init__(self) -> None:
        for role in ("objects", "targets"):
            given = getattr(self, role)
            colours = (given,) if isinstance(given, str) else tuple(given)
            if any(not isinstance(c, str) or not c.strip() for c in colours) or len(set(colours)) != len(colours):
                raise ValueError(f"Scene {role} must be distinct non-empty colour names, got {colours!r}")
            object.__setattr__(self, role, colours)
        if not self.objects and not self.targets:
            raise ValueError("a Scene needs at least one object or target colour, got none")

    @classmethod
    def of_task(cls, task: str) -> Scene:
        """Every colour task ``task`` can show, read from its environment class now."""
        return cls._of(_env_class(task), f"task {task!r}")

    @classmethod
    def of_env(cls, env: Any) -> Scene:
        """The colours of an environment instance's current scene (``gymnasium`` wrappers are looked
        through): the cubes and pads drawn for this episode where the env draws a scene from a palette
        (pick_place_multi's ``scene_cubes`` and ``scene_pads``), else all of its colours."""
        unwrapped = getattr(env, "unwrapped", env)
        cubes, pads = getattr(unwrapped, "scene_cubes", None), getattr(unwrapped, "scene_pads", None)
        if cubes and pads:
            return cls(objects=tuple(cubes), targets=tuple(pads))
        return cls._of(unwrapped, type(env).__name__)

    @classmethod
    def of_palette(cls, env: Any) -> Scene:
        """Every colour an environment instance can show in any episode (its palettes: e.g.
        pick_place_multi's ``palette=lang`` has four cube and four pad colours)."""
        unwrapped = getattr(env, "unwrapped", env)
        return cls._of(unwrapped, type(unwrapped).__name__)

    @classmethod
    def _of(cls, env: Any, what: str) -> Scene:
        cubes = tuple(getattr(env, "cubes", ()))
        targets = tuple(getattr(env, "pads", ()) or getattr(env, "markers", ()))
        if not cubes and not targets:
            raise ValueError(f"{what} has no coloured cubes, pads or markers, so no instruction template fits it")
        return cls(objects=cubes, targets=targets)

    @property
    def roles(self) -> tuple[str, ...]:
        """The placeholders an instruction in this scene fills: ``("object", "target")`` or ``("target",)``."""
        return tuple(r for r, colours in zip(PLACEHOLDERS, (self.objects, self.targets)) if colours)

    @property
    def colours(self) -> frozenset[str]:
        """Every colour in the scene, whatever its role."""
        return frozenset(self.objects) | frozenset(self.targets)

    def pairs(self) -> list[tuple[str | None, str | None]]:
        """Every ``(object, target)`` an instruction can name here, objects first (``None`` for no role)."""
        objects: Sequence[str | None] = self.objects or (None,)
        targets: Sequence[str | None] = self.targets or (None,)
        return [(o, t) for o in objects for t in targets]

    def swapped(self, object: str | None, target: str | None) -> tuple[str, str] | None:
        """The pair with roles exchanged (``target`` cube on ``object`` pad), or ``None`` if the scene lacks it."""
        self._check_pair(object, target)
        if object is None or target is None or object == target:
            return None
        if target in self.objects and object in self.targets:
            return (target, object)
        return None

    def negatives(self, object: str | None, target: str | None) -> list[tuple[str | None, str | None]]:
        """Every other pair of the scene, the role swap first: hard negatives and retrieval candidates."""
        self._check_pair(object, target)
        others = [p for p in self.pairs() if p != (object, target)]
        swap = self.swapped(object, target)
        return [swap, *(p for p in others if p != swap)] if swap is not None else others

    def _check_pair(self, object: str | None, target: str | None) -> None:
        if (object, target) not in self.pairs():
            raise ValueError(
                f"(object, target) must be one of {self.pairs()} in this scene, got {(object, target)!r}"
            )


def _env_class(task: str) -> type:
    import envs  # noqa: F401  (registers the tasks; imported here to keep this module light)
    from envs.registry import task_spec

    module, name = task_spec(task).entry_point.split(":")
    return getattr(importlib.import_module(module), name)


def episode_roles(env: Any) -> tuple[str | None, str | None]:
    """The ``(object, target)`` colours of ``env``'s current episode (its ``object`` / ``target``
    attributes where the task has them, else its only cube and its only pad or marker)."""
    env = getattr(env, "unwrapped", env)
    scene = Scene.of_env(env)
    object = getattr(env, "object", None) if scene.objects else None
    target = getattr(env, "target", None) if scene.targets else None
    if scene.objects and object is None:
        object = scene.objects[0]
    if scene.targets and target is None:
        target = scene.targets[0]
    return object, target


def sentence_words(sentence: str) -> list[str]:
    """The lower-case words of ``sentence``, punctuation dropped (how instructions are read for colours)."""
    return _WORD.findall(sentence.lower())


def colour_words() -> frozenset[str]:
    """Words taken to name a colour: :data:`COMMON_COLOURS` and every colour the scenes can draw."""
    from envs.scene import COLORS

    return COMMON_COLOURS | frozenset(c.lower() for c in COLORS)


def check_sentence(sentence: str, task: str, scene: Scene | None = None) -> str:
    """``sentence`` stripped, after checking it is not empty and names no colour the scene lacks.

    A colour word right before a cube noun (cube, block, box, brick) must be one of the scene's
    object colours; right before a place noun (pad, mat, square, target, marker, ...) one of its
    target colours; anywhere else any colour of the scene.

    Args:
        sentence: the instruction.
        task: a registered task name.
        scene: the colours present (default: every colour ``task`` can show, :meth:`Scene.of_task`).

    Raises:
        ValueError: one line naming the offending colour and the colours the scene has.
    """
    if not isinstance(sentence, str):
        raise TypeError(f"an instruction must be a str, got {type(sentence).__name__}")
    if not sentence.strip():
        raise ValueError(f"an instruction must name the goal, got an empty or blank sentence {sentence!r}")
    scene = scene if scene is not None else Scene.of_task(task)
    colours, words = colour_words(), sentence_words(sentence)
    for i, word in enumerate(words):
        if word not in colours:
            continue
        noun = words[i + 1] if i + 1 < len(words) else ""
        if noun in OBJECT_NOUNS:
            allowed, shown = scene.objects, f"{word} {noun}"
        elif noun in TARGET_NOUNS:
            allowed, shown = scene.targets, f"{word} {noun}"
        else:
            allowed, shown = tuple(scene.colours), word
        if word not in allowed:
            raise ValueError(
                f"{task} instruction {sentence.strip()!r} names '{shown}', but the scene's object colours are "
                f"{', '.join(scene.objects) or 'none'} and its target colours {', '.join(scene.targets) or 'none'}"
            )
    return sentence.strip()


# ---------------------------------------------------------------------------------- templates
def normalized_template(text: str) -> str:
    """Lower case, words and placeholders only: two templates equal under this read the same."""
    return " ".join(re.findall(r"\{\w+\}|[a-z0-9']+", text.lower()))


def _check_template(text: str, where: str, allowed: Sequence[str], required: Sequence[str], task: str | None) -> None:
    """Raise a one-line ``ValueError`` (prefixed with ``where``) unless ``text`` is a valid template."""
    if not isinstance(text, str) or "\n" in text or not text.strip():
        raise ValueError(f"{where}: a template is one non-empty line of text, got {text!r}")
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text) if f is not None]
    except ValueError as error:
        raise ValueError(
            f"{where}: unbalanced braces in {text!r} ({error}); placeholders are {{object}} and {{target}}, "
            "literal braces are written {{ and }}"
        ) from None
    uses = " and ".join(f"{{{p}}}" for p in allowed)
    for name, spec, conversion in fields:
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if name not in allowed:
            owner = f"{task} templates" if task else "templates"
            raise ValueError(f"{where}: unknown placeholder {shown} in {text!r}; {owner} use {uses}")
        if spec or conversion:
            raise ValueError(f"{where}: placeholder {shown} in {text!r} takes no format spec; write {{{name}}}")
    named = {name for name, _, _ in fields}
    for name in required:
        if name not in named:
            raise ValueError(f"{where}: template {text!r} lacks {{{name}}}, which every {task} template must name")


@dataclass(frozen=True)
class TemplateSet:
    """An ordered set of instruction templates, validated when made.

    Args:
        templates: one-line templates with ``{object}`` / ``{target}`` placeholders.
        task: the task they are for; then each must name every role the task has
            (:attr:`Scene.roles`) and no other. ``None``: any of the two placeholders.
        source: where they came from (a file path or ``"<task>/<split>"``), for error messages.
        lines: each template's line number in ``source`` (default: 1, 2, ...).

    Raises:
        ValueError: one line ``source:line: what is wrong`` for an unknown placeholder, unbalanced
            braces, a missing placeholder, a repeated template, or no template at all.
    """

    templates: tuple[str, ...]
    task: str | None = None
    source: str = "<templates>"
    lines: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        templates = (self.templates,) if isinstance(self.templates, str) else tuple(self.templates)
        lines = tuple(self.lines) or tuple(range(1, len(templates) + 1))
        object.__setattr__(self, "templates", templates)
        object.__setattr__(self, "lines", lines)
        if not templates:
            raise ValueError(f"{self.source}: no templates (every line is blank or a comment)")
        if len(lines) != len(templates):
            raise ValueError(f"{self.source}: {len(templates)} templates but {len(lines)} line numbers")
        allowed = Scene.of_task(self.task).roles if self.task is not None else PLACEHOLDERS
        required = allowed if self.task is not None else ()
        seen: dict[str, int] = {}
        for text, line in zip(templates, lines):
            where = f"{self.source}:{line}"
            _check_template(text, where, allowed, required, self.task)
            key = normalized_template(text)
            if key in seen:
                raise ValueError(f"{where}: template {text!r} repeats line {seen[key]}")
            seen[key] = line

    # ------------------------------------------------------------------ making one
    @classmethod
    def load(cls, path: str | Path, task: str | None = None) -> TemplateSet:
        """Read a template file: one template a line, ``#`` starts a comment, blank lines skipped.

        Args:
            path: the file.
            task: check the templates against this task's roles (recommended).
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"template file {str(path)!r} does not exist") from None
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{path}: a template file must be UTF-8 text ({error.reason} at byte {error.start})"
            ) from None
        return cls.parse(text, task=task, source=str(path))

    @classmethod
    def parse(cls, text: str, task: str | None = None, source: str = "<templates>") -> TemplateSet:
        """Templates from the text of a template file (see :meth:`load`)."""
        templates, lines = [], []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = " ".join(raw.split("#", 1)[0].split())
            if line:
                templates.append(line)
                lines.append(number)
        return cls(tuple(templates), task=task, source=source, lines=tuple(lines))

    @classmethod
    def for_task(cls, task: str, split: str = "train") -> TemplateSet:
        """The shipped templates of ``task``: ``split="train"`` for training, ``"heldout"`` for evaluation."""
        return cls.load(template_path(task, split), task=task)

    # ------------------------------------------------------------------ using one
    def __len__(self) -> int:
        return len(self.templates)

    def __iter__(self) -> Iterator[str]:
        return iter(self.templates)

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The placeholders these templates use, in :data:`PLACEHOLDERS` order."""
        used = {f for t in self.templates for _, f, _, _ in string.Formatter().parse(t) if f is not None}
        return tuple(p for p in PLACEHOLDERS if p in used)

    def index(self, choice: np.random.Generator | int) -> int:
        """The template index ``choice`` picks: drawn from a numpy ``Generator``, or given."""
        if isinstance(choice, np.random.Generator):
            return int(choice.integers(len(self.templates)))
        if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool):
            if not 0 <= choice < len(self.templates):
                raise ValueError(
                    f"template index must be in [0, {len(self.templates)}) for {self.source}, got {choice}"
                )
            return int(choice)
        raise TypeError(f"choice must be a numpy Generator or an int index, got {type(choice).__name__}")

    def render(
        self, choice: np.random.Generator | int, *, object: str | None = None, target: str | None = None
    ) -> str:
        """One instruction: the template ``choice`` picks (see :meth:`index`) with the colours filled in.

        Every placeholder the set uses needs its colour, whichever template is picked; colours
        for a role the set does not use (``object`` for ``reach``) are ignored.
        """
        values = self._values(object=object, target=target)
        return self.templates[self.index(choice)].format(**values)

    def render_all(self, *, object: str | None = None, target: str | None = None) -> list[str]:
        """Every template with the colours filled in, in file order."""
        values = self._values(object=object, target=target)
        return [t.format(**values) for t in self.templates]

    def _values(self, **given: str | None) -> dict[str, str]:
        values = {}
        for name in self.placeholders:
            value = given[name]
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{self.source} templates name {{{name}}}: pass {name}= a colour, got {value!r}")
            values[name] = value
        return values


def template_path(task: str, split: str) -> Path:
    """The shipped template file of ``task`` and ``split`` (``"train"`` or ``"heldout"``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    path = TEMPLATE_DIR / f"{task}_{split}.txt"
    if not path.is_file():
        raise ValueError(
            f"no shipped templates for task {task!r}; shipped: {', '.join(shipped_tasks())} "
            "(pass your own file to TemplateSet.load)"
        )
    return path


def shipped_tasks() -> list[str]:
    """Tasks with shipped training and held-out templates, sorted."""
    train = {p.name[: -len("_train.txt")] for p in TEMPLATE_DIR.glob("*_train.txt")}
    return sorted(t for t in train if (TEMPLATE_DIR / f"{t}_heldout.txt").is_file())


def resolve_templates(task: str, split: str = "train", path: str | Path | None = None) -> TemplateSet:
    """A user's template file for ``task`` when ``path`` is given, else the shipped ``split``.

    The one entry point for configs (``language.templates=FILE``): the user's file replaces the
    shipped set of every split.
    """
    if path is None or str(path) == "":
        return TemplateSet.for_task(task, split)
    templates = TemplateSet.load(path, task=task)
    logger.info("instructions for %s from %s (%d templates)", task, path, len(templates))
    return templates
