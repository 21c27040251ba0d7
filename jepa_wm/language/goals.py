"""Goals from a sentence: each stage's goal latents predicted from the instruction and the first frame.

:class:`TextGoals` is the sentence counterpart of :class:`jepa_wm.planning.goals.ImageGoals`, a
:class:`jepa_wm.protocols.GoalSource` (``plan.py goal=text``). It builds the same
:class:`~jepa_wm.planning.goals.ImageGoal` (with no images), so the agent, its energy and the
sub-goal schedule take it unchanged; no goal image is rendered or read::

    >>> goals = TextGoals(predictor, text_encoder, instruction="put the red cube on the blue pad")
    >>> episode = goals.episode_goal(env, model, obs, seed)      # or, from any frame:
    >>> goal = goals.goal(model, obs, "put the red cube on the blue pad", names=("at_cube", ..., "final"))
    >>> agent.reset(goal, obs)

Each episode's sentence is ``instruction`` when one is given, else a template of ``templates``
(drawn with the episode's seed) filled with the episode's colours. A sentence's token features are
computed once and kept (an episode, or a robot told the same thing again, does not pay the text
encoder twice).

Without ``steps_per_goal``, each sub-goal gets the clean expert's median steps to it (recorded with
the predictor from its training data) times ``hint_scale``, as image goals take their images'
step hints; each stage carries the expert's gripper command there (``Goal.gripper``, for the
gripper-target cost that reads goal images otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from jepa_wm.language.goal_predictor import LanguageGoalPredictor
from jepa_wm.language.instructions import (
    Scene,
    TemplateSet,
    check_sentence,
    episode_roles,
    resolve_templates,
    sentence_words,
)
from jepa_wm.language.text_encoder import TextEncoder, TokenFeatures, load_text_encoder
from jepa_wm.planning.goals import ImageGoal, ImageGoals
from jepa_wm.protocols import CostModel, EpisodeGoal, Observation
from planners.subgoals import SubgoalConfig

log = logging.getLogger(__name__)

CACHED_SENTENCES = 64  # token features kept, most recent first


class TextGoals:
    """How a sentence becomes an :class:`ImageGoal` (images ``None``).

    Args:
        predictor: the language-goal predictor, trained on ``text_encoder``'s features and the world
            model's encoder (checked in :meth:`goal` against the model's latent size).
        text_encoder: the frozen text encoder.
        templates: the phrasings an episode's sentence is drawn from.
        instruction: one sentence for every episode (instead of ``templates``). With neither,
            :meth:`episode_goal` cannot pick a sentence; :meth:`goal` takes any.
        steps_per_goal: steps on each sub-goal; ``None``: ``expert_stages`` times ``hint_scale``.
        hint_scale: how much slower than the clean expert the planner may be.
        energy_threshold: also leave a stage once the observed energy toward it is below this.
        expert_stages: per task, ``{"names": [...], "steps": [...], "gripper": [...]}``: the expert's
            median cumulative steps to each goal stage and its gripper command there (+1 closed, -1 open),
            from the predictor's training data (:func:`~jepa_wm.language.goal_data.expert_stages`).
    """

    def __init__(self, predictor: LanguageGoalPredictor, text_encoder: TextEncoder, *,
                 templates: TemplateSet | None = None, instruction: str | None = None,
                 steps_per_goal: Sequence[int] | None = None, hint_scale: float = 3.0,
                 energy_threshold: float | Sequence[float | None] | None = None,
                 expert_stages: Mapping[str, Mapping[str, Sequence]] | None = None) -> None:
        if predictor.config.text_dim != text_encoder.dim:
            raise ValueError(f"the language-goal predictor takes {predictor.config.text_dim}-wide text features, "
                             f"the text encoder gives {text_encoder.dim}")
        if templates is not None and instruction is not None:
            raise ValueError("give TextGoals templates (a sentence per episode) or one instruction, not both")
        self.predictor, self.text_encoder = predictor.eval(), text_encoder
        self.templates, self.instruction = templates, instruction
        self.settings = ImageGoals(steps_per_goal, hint_scale, energy_threshold)  # the same schedule rules
        self.expert_stages = dict(expert_stages or {})
        self._features: dict[str, TokenFeatures] = {}

    @classmethod
    def build(cls, context: Any, model: CostModel, *, predictor: str, templates: str | None = None,
              instruction: str | None = None, steps_per_goal: Sequence[int] | None = None, hint_scale: float = 3.0,
              energy_threshold: float | Sequence[float | None] | None = None) -> TextGoals:
        """From config (``configs/goal/text.yaml``): the predictor's file, ``templates`` (a file of your own;
        ``None``: the task's shipped held-out phrasings, never trained on) or one ``instruction``.

        Raises:
            FileNotFoundError: no predictor file (the message says how to train one).
            ValueError: a predictor trained on another video or text encoder, a bad template file, or an
                instruction naming a colour the task lacks.
        """
        network, meta = LanguageGoalPredictor.load(predictor)
        expected = meta.get("encoder_fingerprint")
        found = getattr(model, "encoder_fingerprint", None)
        if expected and found and expected != found:
            raise ValueError(f"the language-goal predictor {predictor} was trained on the latents of encoder "
                             f"{expected}; this world model's encoder is {found}: train one on it "
                             f"(python experiments/train_language_goals.py encoder=...)")
        text_encoder = load_text_encoder(str((meta.get("text_encoder") or {}).get("name", "minilm")),
                                         device=getattr(model, "device", "cpu"))
        if meta.get("text_encoder_fingerprint") not in (None, text_encoder.fingerprint()):
            raise ValueError(f"the language-goal predictor {predictor} was trained on another text encoder "
                             f"({meta['text_encoder_fingerprint']}, installed: {text_encoder.fingerprint()})")
        task = context.task
        if instruction is not None:
            instruction = check_sentence(instruction, task, Scene.of_palette(context.env))
            _check_names_success(instruction, task, context.env)
            if templates is not None:
                raise ValueError("instruction= and language.templates= exclude each other: one sentence, or "
                                 "phrasings drawn per episode")
            template_set = None
        else:
            template_set = resolve_templates(task, "heldout", templates)
        return cls(network, text_encoder, templates=template_set, instruction=instruction,
                   steps_per_goal=steps_per_goal, hint_scale=hint_scale, energy_threshold=energy_threshold,
                   expert_stages=meta.get("expert_stages"))

    def check_task(self, names: Sequence[str], task: str) -> None:
        """As :meth:`ImageGoals.check_task`; also, without ``steps_per_goal``, the predictor must know the
        expert's steps of a multi-stage ``task``."""
        self.settings.check_task(names, task)
        if len(names) > 1 and self.settings.steps_per_goal is None and self._expert(names, task) is None:
            raise ValueError(f"goal=text: the language-goal predictor records no expert steps for {task}'s "
                             f"goal stages {list(names)}: set goal.steps_per_goal")
        if len(names) > self.predictor.config.max_stages:
            raise ValueError(f"goal=text: {task} has {len(names)} goal stages, the predictor knows at most "
                             f"{self.predictor.config.max_stages}")

    def sentence(self, env: Any, seed: int) -> str:
        """The episode's instruction (``env`` just reset): ``instruction``, or a template with its colours.

        Raises:
            ValueError: ``instruction`` names a colour this scene lacks, or not the colours the episode
                counts as success (set ``task.object`` / ``task.target``).
        """
        object, target = episode_roles(env)
        if self.instruction is None:
            if self.templates is None:
                raise ValueError("TextGoals has neither templates nor an instruction to take an episode's sentence "
                                 "from; give one, or call goal() with the sentence")
            return self.templates.render(np.random.default_rng(seed), object=object, target=target)
        sentence = check_sentence(self.instruction, env.unwrapped.task_name, Scene.of_env(env))
        _check_names(sentence, env.unwrapped.task_name, (object, target))
        return sentence

    def episode_goal(self, env: Any, model: CostModel, obs: Observation, seed: int) -> EpisodeGoal:
        """The :class:`~jepa_wm.protocols.GoalSource` step: the episode's sentence, its stages' goal latents."""
        sentence = self.sentence(env, seed)
        task = env.unwrapped.task_name
        names = tuple(env.unwrapped.goal_phases.values())
        return EpisodeGoal(self.goal(model, obs, sentence, names, task), {"source": "text", "instruction": sentence})

    def features(self, sentence: str) -> TokenFeatures:
        """The sentence's token features ``(1, L, text_dim)`` and mask ``(1, L)``, computed once."""
        if not isinstance(sentence, str) or not sentence.strip():
            raise ValueError(f"an instruction must be a non-empty sentence, got {sentence!r}")
        key = " ".join(sentence.split())
        if key not in self._features:
            if len(self._features) >= CACHED_SENTENCES:
                self._features.pop(next(iter(self._features)))
            self._features[key] = self.text_encoder.encode([key])
        return self._features[key]

    def schedule(self, names: Sequence[str], task: str | None = None) -> SubgoalConfig:
        """When to move between the stages ``names`` of ``task``: ``steps_per_goal``, else the expert's steps
        recorded for ``task`` times ``hint_scale`` (by thresholds only when neither is known)."""
        known = self._expert(names, task)
        return self.settings.stage_schedule(names, known["steps"] if known is not None else None)

    def gripper(self, names: Sequence[str], task: str | None = None) -> tuple[float, ...] | None:
        """The expert's gripper command at each stage ``names`` of ``task`` (``None`` when not recorded)."""
        known = self._expert(names, task)
        if known is None or "gripper" not in known:
            return None
        return tuple(float(g) for g in known["gripper"])

    def _expert(self, names: Sequence[str], task: str | None) -> Mapping[str, Sequence] | None:
        """What the predictor recorded of the expert at ``task``'s stages, if they are ``names``."""
        known = self.expert_stages.get(task) if task is not None else None
        return known if known is not None and list(known["names"]) == list(names) else None

    @torch.no_grad()
    def goal(self, model: CostModel, obs: Observation, sentence: str, names: Sequence[str],
             task: str | None = None) -> ImageGoal:
        """The goal stages ``names`` (sub-goals, then the final goal) of ``sentence`` seen from ``obs``.

        Raises:
            ValueError: an empty sentence, no stage, more stages than the predictor knows, or a world
                model whose latents are not the predictor's size.
        """
        names = tuple(names)
        if not names:
            raise ValueError("a goal needs at least one stage name (the final goal)")
        z = model.encode(obs)[None]  # (1, N, D)
        config = self.predictor.config
        if tuple(z.shape[1:]) != (config.num_tokens, config.latent_dim):
            raise ValueError(f"the language-goal predictor was trained on latents ({config.num_tokens}, "
                             f"{config.latent_dim}); this world model's are {tuple(z.shape[1:])}: use the predictor "
                             f"trained on this world model's encoder")
        text = self.features(sentence).to(z.device)
        latents = self.predictor.to(z.device)(z.float(), text.features, text.mask, stages=len(names))[0]  # (G, N, D)
        if not torch.isfinite(latents).all():
            raise ValueError(f"the predicted goal latents of {sentence!r} are not finite")
        return ImageGoal(names, latents.to(z.dtype), None, self.schedule(names, task), self.gripper(names, task))



def _check_names_success(sentence: str, task: str, env: Any) -> None:
    """Refuse an instruction for an env whose episodes count success for other colours than it names, or
    for colours drawn anew each episode (pick_place_multi without ``task.object`` / ``task.target``)."""
    scene, defaults = Scene.of_palette(env), getattr(env.unwrapped, "default_pair", {})
    roles = []
    for role, palette in (("object", scene.objects), ("target", scene.targets)):
        colour = defaults.get(role) or (palette[0] if len(palette) == 1 else None)
        if palette and colour is None:
            raise ValueError(f"instruction= on {task}: its episodes draw the {role} among {', '.join(palette)}, so "
                             f"success could count another one than the sentence names: set task.{role}= too")
        roles.append(colour)
    _check_names(sentence, task, tuple(roles))


def _check_names(sentence: str, task: str, roles: tuple[str | None, str | None]) -> None:
    words = set(sentence_words(sentence))
    missing = [colour for colour in roles if colour is not None and colour not in words]
    if missing:
        raise ValueError(f"instruction {sentence!r} does not name {', '.join(missing)}, but {task} counts success "
                         f"for the {roles[0] or '-'} object and the {roles[1] or '-'} target: say those colours, or "
                         f"set task.object= / task.target= to the ones it names")
