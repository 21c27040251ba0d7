"""Goals from a sentence: each stage's goal latents predicted from the instruction and the first frame.

:class:`TextGoals` is the sentence counterpart of :class:`jepa_wm.planning.goals.ImageGoals`: it
builds the same :class:`~jepa_wm.planning.goals.ImageGoal` (the :class:`jepa_wm.protocols.Goal`
contract; no images), so the agent, its energy and the sub-goal schedule take it unchanged::

    >>> goals = TextGoals(predictor, text_encoder, steps_per_goal=(30, 6, 6, 12, 6))
    >>> goal = goals.build(model, obs, "put the red cube on the blue pad", names=env.unwrapped.goal_phases)
    >>> agent.reset(goal, obs)

A sentence's token features are computed once and kept (an episode, or a robot told the same
thing again, does not pay the text encoder twice).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from jepa_wm.language.goal_predictor import LanguageGoalPredictor
from jepa_wm.language.text_encoder import TextEncoder, TokenFeatures
from jepa_wm.planning.goals import ImageGoal
from jepa_wm.protocols import CostModel, Observation
from planners.subgoals import SubgoalConfig

CACHED_SENTENCES = 64  # token features kept, most recent first


class TextGoals:
    """How a sentence becomes an :class:`ImageGoal` (images ``None``).

    Args:
        predictor: the language-goal predictor, trained on ``text_encoder``'s features and the world
            model's encoder (checked in :meth:`build` against the model's latent size).
        text_encoder: the frozen text encoder.
        steps_per_goal: steps on each sub-goal (there are no goal images to take the expert's hints from).
        energy_threshold: also leave a stage once the observed energy toward it is below this.
    """

    def __init__(self, predictor: LanguageGoalPredictor, text_encoder: TextEncoder,
                 steps_per_goal: Sequence[int] | None = None,
                 energy_threshold: float | Sequence[float | None] | None = None) -> None:
        if predictor.config.text_dim != text_encoder.dim:
            raise ValueError(f"the language-goal predictor takes {predictor.config.text_dim}-wide text features, "
                             f"the text encoder gives {text_encoder.dim}")
        self.predictor, self.text_encoder = predictor.eval(), text_encoder
        self.schedule = SubgoalConfig(steps_per_goal, energy_threshold)
        self._features: dict[str, TokenFeatures] = {}

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

    @torch.no_grad()
    def build(self, model: CostModel, obs: Observation, sentence: str, names: Sequence[str]) -> ImageGoal:
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
        return ImageGoal(names, latents.to(z.dtype), None, self.schedule)
