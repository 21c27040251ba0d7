"""The world model the planners use: frozen encoder + action-conditioned predictor.

>>> wm = load_world_model("runs/train_predictor/tiny", encoder)   # run dir, step_*.pt or predictor.pt
>>> z = wm.encode(images)                       # (1, 3, 64, 64) uint8 -> (1, N, D)
>>> z_future = wm.rollout(z, state[None], candidates)    # (B, H, 7) -> (B, H, N, D)

Rollouts are incremental: the steps of the context shared by all candidates are computed once
at batch 1, and each predicted step attends to the cached keys and values of the steps before
it (:meth:`jepa_wm.predictor.ACPredictor.extend`); nothing is recomputed. The states of future
steps are propagated from the last observed state with :class:`StateIntegration`.

Predictor checkpoints are :mod:`jepa_wm.training.checkpoint` training checkpoints with::

    models["ac_predictor"]   state dict, with the state/action normalisation buffers
    extra["ac_predictor"]    {"predictor_config": PredictorConfig fields,
                              "state_integration": StateIntegration fields,
                              "encoder": {fingerprint, embed_dim, grid_hw, img_hw, pool}}

next to the run's ``config``, ``data`` summary, optimiser and scheduler states.

``WorldModel(..., precision="bfloat16")`` runs the predictor's rollouts under bf16 autocast
(matrix products in bf16, latents returned in float32). It pays off only where the CPU multiplies
bf16 natively (AVX-512 BF16 or AMX; :func:`cpu_has_native_bf16`) or on a GPU; elsewhere bf16 is
emulated and slower than float32 (``experiments/benchmark_rollout.py`` measures both; docs/models.md).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from jepa_wm.encoders.frozen import FrozenEncoder
from jepa_wm.encoders.vjepa2_weights import check_state_dict
from jepa_wm.predictor import ACPredictor, KVCache, PredictorConfig
from jepa_wm.state_integration import StateIntegration
from jepa_wm.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

logger = logging.getLogger(__name__)

PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}  # WorldModel precision -> autocast dtype
MODEL_NAME = "ac_predictor"  # key of the predictor in a training checkpoint's models and extra
CHECKPOINT_DIR = "checkpoints"  # where a training run directory keeps its step_*.pt files
PREDICTOR_FILE = "predictor.pt"  # the exported predictor (no optimiser state) in a run directory


def encoder_summary(encoder: FrozenEncoder) -> dict[str, Any]:
    """What a predictor checkpoint records about the encoder whose latents it was trained on."""
    return {
        "fingerprint": encoder.fingerprint(),
        "embed_dim": encoder.embed_dim,
        "grid_hw": tuple(encoder.grid_hw),
        "img_hw": tuple(encoder.img_hw),
        "pool": encoder.pool,
    }


def encoder_pool(checkpoint: Mapping[str, Any]) -> int:
    """The token pooling of the encoder a predictor checkpoint was trained on (1 if unrecorded).

    Load the encoder with it: ``load_encoder_checkpoint(path, pool=encoder_pool(checkpoint))``.
    """
    return int(checkpoint["extra"][MODEL_NAME]["encoder"].get("pool", 1))


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (oneDNN's check: AVX-512 BF16 or AMX);
    ``True`` when torch cannot tell."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else True
    except RuntimeError:
        return True


@functools.cache
def _warn_emulated_bf16() -> None:
    """Log, once per process (an ensemble builds several world models), that bf16 is emulated here."""
    logger.warning("precision=bfloat16 on a CPU without native bf16 matrix products (AVX-512 BF16 or AMX): "
                   "rollouts may be slower than in float32; set precision to float32 "
                   "(world_model.precision=float32) if they are")


def image_tensor(image: np.ndarray) -> Tensor:
    """An env image uint8 ``(H, W, 3)`` -> ``(3, H, W)``."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def encode_images(encoder: FrozenEncoder, images: Tensor) -> Tensor:
    """Images (..., 3, H, W), uint8 or float in [0, 1] -> layer-normed latents (..., N, D), each
    image encoded on its own.

    Env observations are (H, W, 3) numpy arrays: pass :func:`image_tensor` of ``obs["image"]``.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor (..., 3, H, W), got {type(images).__name__}")
    if images.ndim < 3 or images.shape[-3] != 3:
        raise ValueError(f"images must be (..., 3, H, W), got {tuple(images.shape)}")
    lead = images.shape[:-3]
    z = encoder.encode(images.reshape(1, -1, *images.shape[-3:]))  # (1, M, N, D)
    return z.reshape(*lead, *z.shape[-2:])  # (..., N, D)


class EncoderOnly(nn.Module):
    """The encoder half of a world model, for planning with the simulator oracle
    (:mod:`jepa_wm.diagnostics.simulator`), which predicts with the simulator and needs no predictor:
    an encoder can be judged as a planning energy before any predictor is trained on it.

    Args:
        encoder: the frozen per-frame encoder.
        integration: metres per position action unit, for the workspace box.
    """

    def __init__(self, encoder: FrozenEncoder, integration: StateIntegration = StateIntegration()) -> None:
        super().__init__()
        self.encoder = encoder
        self.integration = integration

    def train(self, mode: bool = True) -> EncoderOnly:
        """The encoder stays in eval mode."""
        super().train(False)
        return self

    def encode(self, images: Tensor) -> Tensor:
        """Images (..., 3, H, W) -> latents (..., N, D) (:func:`encode_images`)."""
        return encode_images(self.encoder, images)

    def rollout(self, *args: Any, **kwargs: Any) -> Tensor:
        """Not available: there is no predictor (plan with the simulator as the model, ``world_model=oracle_tiny_2cam``)."""
        raise RuntimeError("this world model has only an encoder: it can plan only with the simulator oracle "
                           "(world_model=oracle_tiny_2cam); give world_model.predictor to plan with predictions")


class WorldModel(nn.Module):
    """Frozen encoder + frozen predictor behind :class:`jepa_wm.protocols.LatentWorldModel`.

    Args:
        encoder: the frozen per-frame encoder.
        predictor: a trained predictor for this encoder's latents (frozen in place).
        integration: how planned actions move the state between predicted steps.
        precision: ``"float32"``, or ``"bfloat16"`` to run rollouts under bf16 autocast (faster
            on CPUs with AVX-512 BF16; the encoder stays in float32).
    """

    def __init__(
        self, encoder: FrozenEncoder, predictor: ACPredictor, integration: StateIntegration = StateIntegration(),
        precision: str = "float32",
    ) -> None:
        super().__init__()
        cfg = predictor.config
        if (encoder.embed_dim, tuple(encoder.grid_hw)) != (cfg.embed_dim, cfg.grid_hw):
            raise ValueError(
                f"the predictor expects encoder tokens of width {cfg.embed_dim} on a {cfg.grid_hw} grid, "
                f"the encoder gives width {encoder.embed_dim} on a {tuple(encoder.grid_hw)} grid"
            )
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.encoder = encoder
        self.predictor = predictor.eval().requires_grad_(False)
        self.integration = integration
        self.precision = precision
        if precision == "bfloat16" and encoder.device.type == "cpu" and not cpu_has_native_bf16():
            _warn_emulated_bf16()

    @property
    def config(self) -> PredictorConfig:
        return self.predictor.config

    def train(self, mode: bool = True) -> WorldModel:
        """Both parts stay in eval mode."""
        super().train(False)
        return self

    def encode(self, images: Tensor) -> Tensor:
        """Images (..., 3, H, W), uint8 or float in [0, 1] -> layer-normed latents (..., N, D)
        (:func:`encode_images`)."""
        return encode_images(self.encoder, images)

    def rollout(
        self, z_context: Tensor, states: Tensor, actions: Tensor, *, past_actions: Tensor | None = None
    ) -> Tensor:
        """Open-loop prediction of the H frames after the context, ``(B, H, N, D)`` in the dtype
        of ``z_context`` whatever the precision; see :func:`latent_rollout`. States and actions of
        another float dtype (float64 from numpy) are cast to the latents' dtype."""
        states, actions = states.to(z_context.dtype), actions.to(z_context.dtype)
        if past_actions is not None:
            past_actions = past_actions.to(z_context.dtype)
        dtype = PRECISIONS[self.precision]
        with torch.autocast(z_context.device.type, dtype=dtype, enabled=dtype is not None):
            z = latent_rollout(self.predictor, self.integration, z_context, states, actions, past_actions=past_actions)
        return z.to(z_context.dtype)


def latent_rollout(
    predictor: ACPredictor,
    integration: StateIntegration,
    z_context: Tensor,
    states: Tensor,
    actions: Tensor,
    *,
    past_actions: Tensor | None = None,
) -> Tensor:
    """Open-loop prediction of the H frames after the context, for B candidate sequences.

    The context steps before the last are computed once (at batch 1 when shared) and cached;
    each predicted step then attends to the cache. States after the last context frame are
    propagated with ``integration``.

    Args:
        predictor: the action-conditioned predictor.
        integration: how an action moves the state.
        z_context: (C, N, D) shared context latents, or (B, C, N, D); the last is "now".
        states: (C, S) or (B, C, S) raw states of the context frames.
        actions: (B, H, A) raw candidate actions; ``actions[:, 0]`` is taken now.
        past_actions: (C - 1, A) or (B, C - 1, A) actions executed between the context
            frames; required when C > 1.

    Returns:
        (B, H, N, D) predicted latents; entry k follows action k. Differentiable with
        respect to ``actions`` (wrap in ``torch.no_grad()`` when sampling).
    """
    cfg = predictor.config
    for name, value in (("z_context", z_context), ("states", states), ("actions", actions)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if actions.ndim != 3 or actions.shape[-1] != cfg.action_dim or actions.shape[1] == 0:
        raise ValueError(f"actions must be (B, H >= 1, {cfg.action_dim}), got {tuple(actions.shape)}")
    batch, horizon = actions.shape[:2]
    z_context = z_context if z_context.ndim == 4 else z_context.unsqueeze(0)  # (B|1, C, N, D)
    states = states if states.ndim == 3 else states.unsqueeze(0)  # (B|1, C, S)
    context = z_context.shape[1]
    if z_context.ndim != 4 or z_context.shape[0] not in (1, batch) or context == 0:
        raise ValueError(f"z_context must be (C, N, D) or ({batch}, C, N, D), got {tuple(z_context.shape)}")
    if states.shape[0] not in (1, batch) or states.shape[1:] != (context, cfg.state_dim):
        raise ValueError(
            f"states must be ({context}, {cfg.state_dim}) or ({batch}, {context}, {cfg.state_dim}), "
            f"got {tuple(states.shape)}"
        )
    cache = _context_cache(predictor, z_context, states, past_actions)
    z = z_context[:, -1:].expand(batch, -1, -1, -1)  # (B, 1, N, D)
    state = states[:, -1:].expand(batch, -1, -1)  # (B, 1, S)
    predictions = []
    for k in range(horizon):
        action = actions[:, k : k + 1]  # (B, 1, A)
        z, cache = predictor.extend(z, action, state, cache)  # (B, 1, N, D)
        predictions.append(z)
        if k + 1 < horizon:
            state = integration(state, action)  # (B, 1, S)
    return torch.cat(predictions, dim=1)  # (B, H, N, D)


def _context_cache(
    predictor: ACPredictor, z_context: Tensor, states: Tensor, past_actions: Tensor | None
) -> KVCache | None:
    """Keys and values of the context steps before the last one (None with one context frame)."""
    context, action_dim = z_context.shape[1], predictor.config.action_dim
    if context == 1:
        return None
    if past_actions is None:
        raise ValueError(f"past_actions are required with {context} context frames")
    past_actions = past_actions if past_actions.ndim == 3 else past_actions.unsqueeze(0)
    if past_actions.shape[1:] != (context - 1, action_dim):
        raise ValueError(
            f"past_actions must be ({context - 1}, {action_dim}) (optionally batched), "
            f"got {tuple(past_actions.shape)}"
        )
    width = max(z_context.shape[0], states.shape[0], past_actions.shape[0])
    _, cache = predictor.extend(
        z_context[:, :-1].expand(width, -1, -1, -1),
        past_actions.expand(width, -1, -1),
        states[:, :-1].expand(width, -1, -1),
    )
    return cache


# ---------------------------------------------------------------------- checkpoints
def predictor_meta(
    predictor: ACPredictor, integration: StateIntegration, encoder: dict[str, Any]
) -> dict[str, Any]:
    """What a training checkpoint's ``extra["ac_predictor"]`` records (module docstring)."""
    return {
        "predictor_config": asdict(predictor.config),
        "state_integration": asdict(integration),
        "encoder": dict(encoder),
    }


def find_predictor_checkpoint(path: str | Path) -> Path:
    """``path`` itself for a file; for a directory, the newest ``step_*.pt`` in it or in its
    ``checkpoints/`` (a training run directory). FileNotFoundError when there is none."""
    path = Path(path)
    if not path.is_dir():
        return path
    latest = latest_checkpoint(path) or latest_checkpoint(path / CHECKPOINT_DIR)
    if latest is None:
        raise FileNotFoundError(f"no step_*.pt checkpoint in {path} or {path / CHECKPOINT_DIR}")
    return latest


def read_predictor_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a predictor training checkpoint (a file or a run directory, see
    :func:`find_predictor_checkpoint`).

    Raises:
        FileNotFoundError: nothing at ``path``, or a directory without checkpoints.
        ValueError: not a training checkpoint, or one of something else than a predictor.
    """
    path = find_predictor_checkpoint(path)
    checkpoint = load_checkpoint(path)
    models = sorted(checkpoint["models"])
    if MODEL_NAME not in models or MODEL_NAME not in checkpoint["extra"]:
        raise ValueError(
            f"{path} is not an action-conditioned predictor checkpoint: it holds the models {models} "
            f"(an encoder pretraining checkpoint? pass that one as the encoder)"
        )
    return checkpoint


def export_predictor_checkpoint(source: str | Path, path: str | Path) -> Path:
    """Write the predictor of a training checkpoint without its optimiser and scheduler states.

    The result (about a third of the training checkpoint) keeps the step, config, data summary
    and everything :func:`load_world_model` needs: the file to ship or share.

    Args:
        source: a predictor training checkpoint or run directory.
        path: the ``.pt`` file to write.
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"the exported predictor must be a .pt file, got {path}")
    checkpoint = read_predictor_checkpoint(source)
    predictor, _ = predictor_from_checkpoint(checkpoint)
    return save_checkpoint(path, step=checkpoint["step"], models={MODEL_NAME: predictor},
                           config=checkpoint["config"], data=checkpoint["data"], extra=checkpoint["extra"])


def predictor_from_checkpoint(checkpoint: Mapping[str, Any]) -> tuple[ACPredictor, StateIntegration]:
    """Build the predictor (strict state-dict check) and its state integration rule."""
    meta = checkpoint["extra"][MODEL_NAME]
    predictor = ACPredictor(PredictorConfig(**meta["predictor_config"]))
    state_dict = checkpoint["models"][MODEL_NAME]
    check_state_dict(predictor, state_dict)
    predictor.load_state_dict(state_dict)
    return predictor, StateIntegration(**meta["state_integration"])


def load_world_model(
    predictor: str | Path | Mapping[str, Any],
    encoder: FrozenEncoder,
    *,
    action_dim: int = 7,
    check_fingerprint: bool = True,
    fingerprint: str | None = None,
    precision: str = "float32",
) -> WorldModel:
    """A :class:`WorldModel` from a predictor checkpoint and the encoder it was trained with.

    Args:
        predictor: a checkpoint written by ``experiments/train_predictor.py`` (file or run
            directory, see :func:`find_predictor_checkpoint`), or its contents already read
            with :func:`read_predictor_checkpoint`.
        encoder: the frozen encoder (already loaded from its own checkpoint).
        action_dim: the action size the caller will plan with.
        check_fingerprint: also require the encoder's weights to be the very ones the
            predictor was trained on (hashes all weights: seconds for large encoders).
        fingerprint: ``encoder.fingerprint()`` when the caller already has it (several
            predictors on one encoder hash it once); ``None`` computes it.
        precision: the rollouts' precision (:class:`WorldModel`).

    Raises:
        ValueError: wrong kind of file, or a mismatch of action size, image size, encoder
            width, token pooling or tokens per frame, or encoder weights.
    """
    source = "the predictor checkpoint" if isinstance(predictor, Mapping) else str(predictor)
    checkpoint = predictor if isinstance(predictor, Mapping) else read_predictor_checkpoint(predictor)
    model, integration = predictor_from_checkpoint(checkpoint)
    trained_on = {**checkpoint["extra"][MODEL_NAME]["encoder"], "pool": encoder_pool(checkpoint)}
    cfg = model.config
    if cfg.action_dim != action_dim:
        raise ValueError(f"{source}: the predictor takes {cfg.action_dim}-D actions, expected {action_dim}")
    found = {"embed_dim": encoder.embed_dim, "pool": encoder.pool, "grid_hw": tuple(encoder.grid_hw),
             "img_hw": tuple(encoder.img_hw)}
    for key, value in found.items():
        expected = tuple(trained_on[key]) if isinstance(value, tuple) else trained_on[key]
        if expected != value:
            raise ValueError(
                f"{source} was trained on an encoder with {key}={trained_on[key]}, "
                f"the given encoder has {key}={value}"
            )
    if check_fingerprint and (fingerprint := fingerprint or encoder.fingerprint()) != trained_on["fingerprint"]:
        raise ValueError(
            f"{source} was trained on latents of encoder {trained_on['fingerprint']}, the given "
            f"encoder's weights hash to {fingerprint} (pass check_fingerprint=False to force)"
        )
    logger.info("loaded predictor from %s (%s)", source, cfg)
    return WorldModel(encoder, model.to(encoder.device), integration, precision=precision)
