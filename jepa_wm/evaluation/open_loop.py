"""Open-loop evaluation of a predictor on held-out clips: is it better than doing nothing?

For clips of ``T = max(horizons) + 1`` frames, the predictor sees the first frame's latent and
state and rolls out all ``T - 1`` recorded actions (:func:`jepa_wm.world_model.latent_rollout`,
states propagated as when planning). At each horizon ``h`` it reports the latent L1 error
(mean over tokens and channels, then over clips) of:

* ``model``: the prediction of frame ``1 + h``;
* ``copy_last``: the baseline that repeats the first frame's latent (no dynamics);
* ``shuffled_actions``: the model fed the actions of another clip of the batch (rolled by one
  along the batch). Close to ``model`` means the predictor ignores its actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from tqdm import tqdm

from jepa_wm.encoders.frozen import FrozenEncoder
from jepa_wm.predictor import ACPredictor
from jepa_wm.predictor_training import batch_to_device
from jepa_wm.state_integration import StateIntegration
from jepa_wm.world_model import latent_rollout

DEFAULT_HORIZONS = (1, 2, 4, 8)


@dataclass(frozen=True)
class OpenLoopResult:
    """Mean latent L1 errors per horizon (same order as ``horizons``) over ``num_clips`` clips."""

    horizons: tuple[int, ...]
    model: tuple[float, ...]
    copy_last: tuple[float, ...]
    shuffled_actions: tuple[float, ...]
    num_clips: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A plain-text table, one row per horizon."""
        lines = [f"{'horizon':>7}  {'model':>9}  {'copy_last':>9}  {'shuffled':>9}  {'model/copy':>10}"]
        for h, m, c, s in zip(self.horizons, self.model, self.copy_last, self.shuffled_actions):
            lines.append(f"{h:>7d}  {m:>9.4f}  {c:>9.4f}  {s:>9.4f}  {m / c:>10.3f}")
        lines.append(f"({self.num_clips} held-out clips; latent L1, lower is better)")
        return "\n".join(lines)


@torch.no_grad()
def evaluate_open_loop(
    predictor: ACPredictor,
    integration: StateIntegration,
    batches: Iterable[Mapping[str, Any]],
    *,
    device: torch.device,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    encoder: FrozenEncoder | None = None,
    max_batches: int | None = None,
) -> OpenLoopResult:
    """Open-loop errors of ``predictor`` on ``batches`` of clips (module docstring).

    Args:
        predictor: the trained predictor (put in eval mode here).
        integration: how actions move the state during the rollout.
        batches: dicts with ``latents`` (or ``frames`` and an ``encoder``), ``states`` and
            ``actions`` of clips with at least ``max(horizons) + 1`` frames; batches of at
            least 2 clips (for the shuffled-action control).
        device: where to compute.
        horizons: steps ahead to report, each >= 1.
        encoder: encodes ``frames`` when the batches carry no ``latents``.
        max_batches: stop after this many batches (None: all).
    """
    horizons = tuple(int(h) for h in horizons)
    if not horizons or min(horizons) < 1:
        raise ValueError(f"horizons must be positive step counts, got {horizons}")
    steps = max(horizons)
    predictor.eval()
    sums = torch.zeros(3, steps, dtype=torch.float64)
    clips = 0
    for i, batch in enumerate(tqdm(batches, desc="open-loop eval", unit="batch", total=max_batches)):
        if max_batches is not None and i >= max_batches:
            break
        z, actions, states = batch_to_device(batch, device, encoder)  # (B, T, N, D), (B, T-1, A), (B, T, S)
        if z.shape[1] < steps + 1 or z.shape[0] < 2:
            raise ValueError(
                f"need batches of >= 2 clips of >= {steps + 1} frames for horizons {horizons}, "
                f"got {tuple(z.shape[:2])}"
            )
        target = z[:, 1 : steps + 1]  # (B, H, N, D)
        shuffled = actions.roll(1, dims=0)
        for row, z_pred in enumerate(
            (
                latent_rollout(predictor, integration, z[:, :1], states[:, :1], actions[:, :steps]),
                z[:, :1].expand(-1, steps, -1, -1),
                latent_rollout(predictor, integration, z[:, :1], states[:, :1], shuffled[:, :steps]),
            )
        ):
            sums[row] += (z_pred - target).abs().mean(dim=(2, 3)).sum(0).double().cpu()  # (H,)
        clips += z.shape[0]
    if clips == 0:
        raise ValueError("open-loop evaluation got no clips")
    means = (sums / clips)[:, [h - 1 for h in horizons]].tolist()
    return OpenLoopResult(horizons, *(tuple(row) for row in means), num_clips=clips)
