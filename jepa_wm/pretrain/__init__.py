"""Self-supervised V-JEPA pretraining of a video encoder on our task videos.

* :mod:`~jepa_wm.pretrain.masks`: multi-block spatio-temporal masks (context / target tokens).
* :mod:`~jepa_wm.pretrain.predictor`: the narrow masked-token predictor with RoPE.
* :mod:`~jepa_wm.pretrain.ema`: the EMA target encoder update and its momentum schedule.
* :mod:`~jepa_wm.pretrain.objective`: the JEPA L1 loss on layer-normed targets.
* :mod:`~jepa_wm.pretrain.trainer`: the data-parallel, resumable training loop.

The final artefact is an encoder file read by
:func:`jepa_wm.encoders.checkpoint.load_encoder_checkpoint`.
"""

from jepa_wm.pretrain.ema import MomentumSchedule, ema_update
from jepa_wm.pretrain.masks import (
    LONG_RANGE,
    SHORT_RANGE,
    VJEPA2_SPECS,
    BlockMaskSpec,
    MaskPair,
    MultiBlockMasker,
)
from jepa_wm.pretrain.objective import JEPA, feature_std, jepa_l1_loss
from jepa_wm.pretrain.predictor import MaskedPredictor, PredictorConfig
from jepa_wm.pretrain.trainer import (
    ENCODER_FILE,
    PretrainConfig,
    PretrainResult,
    clips_to_video,
    mask_generator,
    pretrain,
)

__all__ = [
    "ENCODER_FILE",
    "JEPA",
    "LONG_RANGE",
    "SHORT_RANGE",
    "VJEPA2_SPECS",
    "BlockMaskSpec",
    "MaskPair",
    "MaskedPredictor",
    "MomentumSchedule",
    "MultiBlockMasker",
    "PredictorConfig",
    "PretrainConfig",
    "PretrainResult",
    "clips_to_video",
    "ema_update",
    "feature_std",
    "jepa_l1_loss",
    "mask_generator",
    "pretrain",
]
