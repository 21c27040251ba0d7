"""Every sentence the templates make for the instruction pairs of a data set, encoded once.

The text encoder is frozen, so the language-goal trainer and evaluation encode each sentence one
time: :class:`SentenceBank` renders every template of each row's task with the row's colours and
keeps the token features of all of them, padded to one length::

    bank = SentenceBank.build(data.pairs, row_tasks, templates, text_encoder)
    text, mask = bank.sample(rows, generator)       # one random phrasing per row: (B, L, 384), (B, L)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from jepa_wm.language.instructions import TemplateSet
from jepa_wm.language.text_encoder import TextEncoder

log = logging.getLogger(__name__)

Pair = tuple[str | None, str | None]
ENCODE_CHUNK = 256  # sentences per text-encoder call


@dataclass(frozen=True, eq=False)
class SentenceBank:
    """Token features of every rendered sentence, and which sentences belong to which row.

    Attributes:
        sentences: the rendered sentences ``M``.
        features: ``(M, L, text_dim)`` float32 token features, padded.
        mask: ``(M, L)`` bool, True for real tokens.
        choices: ``(P, T)`` long: row ``p``'s sentence indexes (``-1`` past its task's templates).
        counts: ``(P,)`` how many phrasings row ``p`` has.
    """

    sentences: list[str]
    features: Tensor
    mask: Tensor
    choices: Tensor
    counts: Tensor

    @classmethod
    def build(cls, pairs: Sequence[Pair], tasks: Sequence[str], templates: Mapping[str, TemplateSet],
              text_encoder: TextEncoder) -> SentenceBank:
        """Render ``templates[task]`` with each row's ``(object, target)`` and encode every distinct sentence.

        Args:
            pairs: ``(object, target)`` of each row ``P``.
            tasks: the task of each row.
            templates: a template set per task present.

        Raises:
            ValueError: a task without templates, or a template the row's colours cannot fill.
        """
        if len(pairs) != len(tasks):
            raise ValueError(f"need a task per pair: {len(pairs)} pairs, {len(tasks)} tasks")
        missing = sorted(set(tasks) - set(templates))
        if missing:
            raise ValueError(f"no instruction templates for the tasks {missing} (have {sorted(templates)})")
        index: dict[str, int] = {}
        per_key: dict[tuple[str, Pair], list[int]] = {}
        for task, pair in zip(tasks, pairs, strict=True):
            key = (task, tuple(pair))
            if key not in per_key:
                rendered = templates[task].render_all(**_roles(pair))
                per_key[key] = [index.setdefault(sentence, len(index)) for sentence in rendered]
        sentences = list(index)
        log.info("encoding %d sentences (%d tasks, %d colour pairs)", len(sentences), len(set(tasks)), len(per_key))
        chunks = [text_encoder.encode(sentences[i:i + ENCODE_CHUNK]) for i in range(0, len(sentences), ENCODE_CHUNK)]
        length = max(chunk.features.shape[1] for chunk in chunks)
        features = torch.cat([_pad(chunk.features.float(), length) for chunk in chunks]).cpu()
        mask = torch.cat([_pad(chunk.mask, length) for chunk in chunks]).cpu()
        widest = max(len(v) for v in per_key.values())
        choices = torch.full((len(pairs), widest), -1, dtype=torch.long)
        counts = torch.zeros(len(pairs), dtype=torch.long)
        for p, (task, pair) in enumerate(zip(tasks, pairs, strict=True)):
            chosen = per_key[(task, tuple(pair))]
            choices[p, :len(chosen)] = torch.tensor(chosen)
            counts[p] = len(chosen)
        return cls(sentences, features, mask, choices, counts)

    def pick(self, rows: Tensor, which: Tensor) -> tuple[Tensor, Tensor]:
        """Row ``rows[i]``'s phrasing ``which[i] % count``: features ``(B, L, text_dim)``, mask ``(B, L)``
        (trimmed to the longest sentence picked)."""
        index = self.choices[rows, which % self.counts[rows]]
        mask = self.mask[index]
        length = int(mask.sum(dim=1).max())
        return self.features[index, :length], mask[:, :length]

    def sample(self, rows: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """A random phrasing of each row (see :meth:`pick`)."""
        return self.pick(rows, torch.randint(0, 1 << 30, rows.shape, generator=generator))

    def sentence(self, row: int, which: int) -> str:
        """The text of row ``row``'s phrasing ``which % count``."""
        return self.sentences[int(self.choices[row, which % int(self.counts[row])])]


def _roles(pair: Pair) -> dict[str, str]:
    return {role: colour for role, colour in zip(("object", "target"), pair, strict=True) if colour is not None}


def _pad(x: Tensor, length: int) -> Tensor:
    """Pad dim 1 of ``x`` with zeros (False for masks) to ``length``."""
    if x.shape[1] == length:
        return x
    pad = x.new_zeros((x.shape[0], length - x.shape[1], *x.shape[2:]))
    return torch.cat([x, pad], dim=1)
