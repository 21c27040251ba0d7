"""From a sentence and what the robot sees now to goal latents: VL-JEPA's predictor, in our encoder's space.

VL-JEPA (arXiv 2512.10942) maps visual tokens plus a text query to the embedding of the answer.
Here the answer is the goal the planner plans toward: the latents the goal images of each goal
stage (sub-goals, then the final goal) would have under our frozen video encoder, on its token
grid, so the planner's energy and sub-goal schedule apply to them unchanged::

    >>> predictor = LanguageGoalPredictor(LanguageGoalConfig(latent_dim=192, grid_hw=(16, 8), text_dim=384))
    >>> text = text_encoder.encode(["put the red cube on the blue pad"])   # (1, L, 384) + mask (1, L)
    >>> goals = predictor(z_obs[None], text.features, text.mask, stages=6)  # (1, 6, N, 192)

Architecture: one sequence per instruction, ``[stage queries | text tokens | observation
tokens]``, through a stack of pre-norm transformer blocks. Text tokens are the frozen text
encoder's token features projected to the predictor's width, with a learned position each
(padding masked out as keys); observation tokens are the current frame's latents projected, with
a learned position per square; the stage queries are one learned token per stage the predictor
knows, so every sequence sees them all. Observation tokens are ``patch x patch`` squares of the
grid (4x fewer tokens at the default 2). Each observation token's output is read out once per
stage (one linear head, ``max_stages`` outputs of the square's cells), as a change added to the
frame's latents: most of the scene does not move between now and the goal. Stages are counted back from
the final goal (the last head is always "the final goal"), so tasks with different numbers of
sub-goals share it. One sequence for all stages keeps a sentence's goals at one forward pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jepa_wm.nn.blocks import Block, init_vjepa_weights
from jepa_wm.training.checkpoint import atomic_torch_save, load_tagged
from planners.base import check_positive_int

GOAL_PREDICTOR_FORMAT = "jepa_wm.language_goal_predictor.v1"
TRAIN_COMMAND = "python experiments/train_language_goals.py"


@dataclass(frozen=True)
class LanguageGoalConfig:
    """Sizes of a :class:`LanguageGoalPredictor`.

    Args:
        latent_dim: the video encoder's token width ``D``.
        grid_hw: the encoder's token grid ``(h, w)``; ``N = h * w`` tokens per frame.
        text_dim: the text encoder's token width.
        max_stages: goal stages it can predict at most (sub-goals + the final goal).
        max_words: text tokens it takes at most (each has a learned position).
        patch: latent cells per predictor token along each side: a ``patch x patch`` square of the
            grid is one token (``patch * patch * D`` values in, the same out per stage), so the
            transformer runs on ``N / patch**2`` observation tokens.
        width: the predictor's token width.
        depth: transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``width``.
        init_std: weight initialisation (V-JEPA 2's truncated normal).
    """

    latent_dim: int
    grid_hw: tuple[int, int]
    text_dim: int
    max_stages: int = 8
    max_words: int = 64
    patch: int = 2
    width: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("latent_dim", "text_dim", "max_stages", "max_words", "patch", "width", "depth", "num_heads"):
            check_positive_int(getattr(self, name), f"LanguageGoalConfig.{name}")
        grid = tuple(self.grid_hw)
        if len(grid) != 2 or any(not isinstance(v, int) or v < 1 for v in grid):
            raise ValueError(f"LanguageGoalConfig.grid_hw must be two positive ints (h, w), got {self.grid_hw!r}")
        object.__setattr__(self, "grid_hw", grid)
        if grid[0] % self.patch or grid[1] % self.patch:
            raise ValueError(f"LanguageGoalConfig.patch ({self.patch}) must divide the grid {grid}")
        if self.width % self.num_heads:
            raise ValueError(f"LanguageGoalConfig.width ({self.width}) must be divisible by num_heads "
                             f"({self.num_heads})")

    @property
    def num_tokens(self) -> int:
        """Tokens per frame ``N``."""
        return self.grid_hw[0] * self.grid_hw[1]

    @property
    def patch_tokens(self) -> int:
        """The predictor's observation tokens ``N / patch**2``."""
        return self.num_tokens // self.patch**2

    @property
    def patch_dim(self) -> int:
        """Values per predictor observation token ``patch**2 * D``."""
        return self.patch**2 * self.latent_dim


class LanguageGoalPredictor(nn.Module):
    """Goal latents of every stage from the current latents and an instruction's token features.

    Args:
        config: sizes (see :class:`LanguageGoalConfig`).
    """

    def __init__(self, config: LanguageGoalConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.obs_in = nn.Linear(config.patch_dim, width)
        self.text_in = nn.Linear(config.text_dim, width)
        self.obs_pos = nn.Parameter(torch.zeros(config.patch_tokens, width))
        self.text_pos = nn.Parameter(torch.zeros(config.max_words, width))
        self.stage_queries = nn.Parameter(torch.zeros(config.max_stages, width))  # the final goal's is the last
        self.kinds = nn.Parameter(torch.zeros(3, width))  # query, text, observation
        self.blocks = nn.ModuleList(Block(width, config.num_heads, mlp_ratio=config.mlp_ratio)
                                    for _ in range(config.depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.out = nn.Linear(width, config.max_stages * config.patch_dim)  # one head per stage
        init_vjepa_weights(self, self.blocks, config.init_std)
        for parameter in (self.obs_pos, self.text_pos, self.stage_queries, self.kinds):
            nn.init.trunc_normal_(parameter, std=config.init_std)
        nn.init.trunc_normal_(self.out.weight, std=config.init_std * 0.1)  # starts near "the goal looks like now"
        nn.init.zeros_(self.out.bias)  # (not at it: InfoNCE's unit change vectors need a nonzero change)

    def forward(self, obs_latents: Tensor, text: Tensor, text_mask: Tensor, stages: int) -> Tensor:
        """Predicted goal latents.

        Args:
            obs_latents: the current frame's latents ``(B, N, D)``.
            text: the instruction's token features ``(B, L, text_dim)``.
            text_mask: ``(B, L)`` bool, True for real tokens (False: padding).
            stages: goal stages to predict ``G`` (``1 <= G <= max_stages``); the last is the final goal.

        Returns:
            ``(B, G, N, D)``: the goal latents of stages ``0 .. G - 1``.
        """
        cfg = self.config
        batch, tokens, dim = self._check(obs_latents, text, text_mask, stages)
        query = (self.stage_queries + self.kinds[0])[None].expand(batch, -1, -1)  # (B, S, W)
        words = self.text_in(text) + self.text_pos[: text.shape[1]] + self.kinds[1]  # (B, L, W)
        seen = self.obs_in(self._patches(obs_latents)) + self.obs_pos + self.kinds[2]  # (B, M, W)
        x = torch.cat([query, words, seen], dim=1)  # (B, S + L + M, W)
        keys = torch.cat([text_mask.new_ones(batch, cfg.max_stages), text_mask,
                          text_mask.new_ones(batch, cfg.patch_tokens)], dim=1)
        attn_mask = keys[:, None, None]  # (B, 1, 1, S + L + M)
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask)
        # only the last `stages` heads (stages are counted back from the final goal)
        rows = slice((cfg.max_stages - stages) * cfg.patch_dim, None)
        heads = F.linear(self.norm(x[:, -cfg.patch_tokens:]), self.out.weight[rows], self.out.bias[rows])
        change = self._unpatch(heads.view(batch, cfg.patch_tokens, stages, cfg.patch_dim).transpose(1, 2))
        return obs_latents[:, None] + change  # (B, G, N, D)

    def _patches(self, latents: Tensor) -> Tensor:
        """``(B, N, D)`` grid latents -> ``(B, M, patch**2 * D)`` tokens of ``patch x patch`` cells."""
        cfg, p = self.config, self.config.patch
        (h, w), batch = cfg.grid_hw, latents.shape[0]
        x = latents.view(batch, h // p, p, w // p, p, cfg.latent_dim).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(batch, cfg.patch_tokens, cfg.patch_dim)

    def _unpatch(self, tokens: Tensor) -> Tensor:
        """``(B, G, M, patch**2 * D)`` -> ``(B, G, N, D)`` on the grid (the inverse of :meth:`_patches`)."""
        cfg, p = self.config, self.config.patch
        (h, w), (batch, stages) = cfg.grid_hw, tokens.shape[:2]
        x = tokens.view(batch, stages, h // p, w // p, p, p, cfg.latent_dim).permute(0, 1, 2, 4, 3, 5, 6)
        return x.reshape(batch, stages, cfg.num_tokens, cfg.latent_dim)

    def _check(self, obs_latents: Tensor, text: Tensor, text_mask: Tensor, stages: int) -> tuple[int, int, int]:
        cfg = self.config
        if obs_latents.ndim != 3 or obs_latents.shape[1:] != (cfg.num_tokens, cfg.latent_dim):
            raise ValueError(f"obs_latents must be (B, {cfg.num_tokens}, {cfg.latent_dim}) (the encoder's grid "
                             f"{cfg.grid_hw} and width), got {tuple(obs_latents.shape)}")
        batch = obs_latents.shape[0]
        if text.ndim != 3 or text.shape[0] != batch or text.shape[2] != cfg.text_dim or text.shape[1] > cfg.max_words:
            raise ValueError(f"text must be ({batch}, L <= {cfg.max_words}, {cfg.text_dim}) token features, "
                             f"got {tuple(text.shape)}")
        if text_mask.shape != text.shape[:2] or text_mask.dtype != torch.bool:
            raise ValueError(f"text_mask must be bool {tuple(text.shape[:2])}, got {text_mask.dtype} "
                             f"{tuple(text_mask.shape)}")
        if not bool(text_mask.any(dim=1).all()):
            raise ValueError("every instruction needs at least one token (text_mask has an all-False row)")
        if not isinstance(stages, int) or not 1 <= stages <= cfg.max_stages:
            raise ValueError(f"stages must be an int in [1, {cfg.max_stages}], got {stages!r}")
        return batch, cfg.num_tokens, cfg.latent_dim

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write the weights, config and ``meta`` (encoders' fingerprints, data, training config) to ``path``."""
        return atomic_torch_save({"format": GOAL_PREDICTOR_FORMAT, "config": asdict(self.config),
                                  "state_dict": self.state_dict(), "meta": meta or {}}, path)

    @classmethod
    def load(cls, path: str | Path) -> tuple[LanguageGoalPredictor, dict[str, Any]]:
        """The predictor at ``path`` (eval mode) and its ``meta``.

        Raises:
            FileNotFoundError: no file (the message says how to train one).
            ValueError: not a language-goal predictor, or weights that do not fit its config or are not finite.
        """
        state = load_tagged(path, GOAL_PREDICTOR_FORMAT, "language-goal predictor", f"{TRAIN_COMMAND} out={path}")
        config = LanguageGoalConfig(**{**state["config"], "grid_hw": tuple(state["config"]["grid_hw"])})
        predictor = cls(config)
        try:
            predictor.load_state_dict(state["state_dict"])
        except RuntimeError as err:
            raise ValueError(f"{path}: the weights do not fit its config ({' '.join(str(err).split())[:300]})") from None
        return predictor.eval(), dict(state.get("meta") or {})
