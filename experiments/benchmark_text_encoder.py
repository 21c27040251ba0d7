"""Milliseconds from a sentence to goal latents on the CPU: the frozen text encoder, then the goal predictor.

Times ``TextEncoder.encode`` (tokenizing, padding and the forward pass) for one sentence and for
a batch, ``warmup`` untimed calls then ``repeats`` timed ones; prints the median and the 90th
percentile, and the time to load the weights from the installed package. The sentences are
pick-and-place instructions with colours in them, the length language goals see. The machine
may be shared, so the median is the figure to read. ``--out`` also writes the figures, the
settings and the machine as JSON.

It also times the language-goal predictor (:class:`jepa_wm.language.goal_predictor.LanguageGoalPredictor`,
its default size, on the shipped two-camera encoder's grid unless set) predicting ``--stages`` goal
stages from one sentence's features, and the two together: a new sentence to goal latents (what
:class:`jepa_wm.language.goals.TextGoals` does once per sentence; the current frame's latents come
from the agent's encoding of the observation, which it computes at every step anyway).

Examples::

    python experiments/benchmark_text_encoder.py                      # 2 torch threads, batch 32
    python experiments/benchmark_text_encoder.py --threads 1 --repeats 200
    python experiments/benchmark_text_encoder.py --batch 64 --out /tmp/text_encoder.json
    python experiments/benchmark_text_encoder.py --checkpoint jepa_wm/checkpoints/language_goals_tiny_2cam.pt
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_wm.language.goal_predictor import LanguageGoalConfig, LanguageGoalPredictor
from jepa_wm.language.text_encoder import load_text_encoder

log = logging.getLogger(__name__)

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
PHRASINGS = (
    "put the {object} cube on the {target} pad",
    "pick up the {object} block and place it on the {target} pad",
    "move the {object} cube onto the {target} target",
    "grab the {object} one and drop it on the {target} square please",
)


def instructions(count: int, seed: int) -> list[str]:
    """``count`` instructions with random colours and phrasings (seeded)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        obj, target = rng.choice(len(COLOURS), size=2, replace=False)
        phrasing = PHRASINGS[int(rng.integers(len(PHRASINGS)))]
        out.append(phrasing.format(object=COLOURS[obj], target=COLOURS[target]))
    return out


def time_calls(call: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
    """Wall-clock milliseconds of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(times), "p90_ms": float(np.percentile(times, 90))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="minilm", help="text encoder name (load_text_encoder)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--batch", type=int, default=32, help="sentences in the batched call")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", type=int, default=6, help="goal stages predicted (pick_place: 6)")
    parser.add_argument("--grid", type=int, nargs=2, default=(16, 8), help="encoder token grid h w")
    parser.add_argument("--latent-dim", type=int, default=192, help="encoder token width")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="time this language-goal predictor (e.g. the shipped one) instead of a default-size one "
                             "(its grid and latent width replace --grid and --latent-dim)")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads < 1 or args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--threads, --batch and --repeats must be positive, --warmup non-negative")
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    encoder = load_text_encoder(args.name)
    load_s = time.perf_counter() - start
    single = instructions(1, args.seed)
    batch = instructions(args.batch, args.seed + 1)
    if args.checkpoint is not None:
        predictor, _ = LanguageGoalPredictor.load(args.checkpoint)
        args.grid, args.latent_dim = list(predictor.config.grid_hw), predictor.config.latent_dim
    else:
        predictor = LanguageGoalPredictor(LanguageGoalConfig(latent_dim=args.latent_dim, grid_hw=tuple(args.grid),
                                                             text_dim=encoder.dim)).eval()
    obs = torch.randn(1, args.grid[0] * args.grid[1], args.latent_dim)  # (1, N, D)
    text = encoder.encode(single)

    @torch.no_grad()
    def predict(features=text) -> torch.Tensor:
        return predictor(obs, features.features, features.mask, stages=args.stages)  # (1, G, N, D)

    results = {
        "load_s": load_s,
        "sentence": single[0],
        "one_sentence": summary(time_calls(lambda: encoder.encode(single), args.warmup, args.repeats)),
        f"batch_{args.batch}": summary(time_calls(lambda: encoder.encode(batch), args.warmup, args.repeats)),
        "goal_predictor": summary(time_calls(predict, args.warmup, args.repeats)),
        "sentence_to_goals": summary(time_calls(lambda: predict(encoder.encode(single)), args.warmup, args.repeats)),
    }
    print(
        f"text encoder {args.name!r} ({encoder.fingerprint()}), "
        f"{args.threads} torch thread(s), load {load_s:.2f} s"
    )
    print(f"  one sentence: {single[0]!r} ({len(encoder.tokenize(single[0]))} tokens); goal predictor "
          f"{sum(p.numel() for p in predictor.parameters()) / 1e6:.2f} M parameters, {args.stages} stages on a "
          f"{args.grid[0]}x{args.grid[1]} grid of {args.latent_dim}-wide latents")
    for label, figures in results.items():
        if isinstance(figures, dict):
            print(f"  {label:>17}: median {figures['median_ms']:.1f} ms, p90 {figures['p90_ms']:.1f} ms")
    if args.out is not None:
        record = {
            "results": results,
            "settings": vars(args) | {"out": str(args.out)},
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor(),
                "cpu_count": os.cpu_count(),
                "torch": torch.__version__,
            },
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2))
        log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
