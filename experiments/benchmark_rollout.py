"""Time a planning batch of world-model rollouts per precision, and compare their energies.

Every precision rolls out the same batches of random candidate actions from one rendered frame
of a held-out episode, interleaved batch by batch so that a noisy machine slows them alike.
For each it reports the median and best seconds per batch, the speed-up over the first
(reference) precision, and how its candidate energies toward the episode's goal image differ
from the reference's: Pearson and Spearman correlation, the largest absolute difference against
the spread of the energies, and how much of the reference's top-k elite set it picks. Writes a
JSON with the figures, the config and the machine.

Examples::

    python experiments/benchmark_rollout.py                         # the shipped pair, float32 vs bfloat16
    python experiments/benchmark_rollout.py world_model=tiny_2cam threads=2
    python experiments/benchmark_rollout.py samples=800 horizon=2 device=cuda out=/tmp/rollout.json
"""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from scipy.stats import pearsonr, spearmanr

import envs  # first: chooses the headless GL back-end before mujoco is imported
from jepa_wm.planning.latent_model import LatentModel
from jepa_wm.planning.loading import load_planning_world_model
from jepa_wm.world_model import PRECISIONS, cpu_has_native_bf16
from planners import latent_energy

log = logging.getLogger(__name__)


def compare_energies(reference: np.ndarray, other: np.ndarray, topk: int) -> dict[str, float]:
    """How ``other`` energies ``(batches, B)`` differ from ``reference`` ones: correlations over
    all candidates, max |difference| vs the energies' spread (std within a batch, averaged), and
    the mean fraction of each batch's ``topk`` lowest reference candidates that ``other`` also ranks there."""
    elites = [len(set(np.argsort(r)[:topk]) & set(np.argsort(o)[:topk])) / topk
              for r, o in zip(reference, other, strict=True)]
    return {"pearson": float(pearsonr(reference.ravel(), other.ravel())[0]),
            "spearman": float(spearmanr(reference.ravel(), other.ravel())[0]),
            "max_abs_diff": float(np.abs(reference - other).max()),
            "energy_spread": float(reference.std(axis=1).mean()),
            "topk_overlap": float(np.mean(elites))}


@hydra.main(version_base="1.3", config_path="../configs", config_name="benchmark_rollout")
def main(cfg: DictConfig) -> None:
    unknown = [p for p in cfg.precisions if p not in PRECISIONS]
    if unknown or not cfg.precisions:
        raise SystemExit(f"error: precisions must be a non-empty list of {sorted(PRECISIONS)}, "
                         f"got {list(cfg.precisions)}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    world = cfg.world_model
    env = envs.make_from_config({"name": cfg.task, "camera": world.camera, "image_size": cfg.image_size})
    obs, _ = env.reset(seed=cfg.seed)
    models = {p: load_planning_world_model(world.encoder, world.predictor, image_size=env.unwrapped.image_hw,
                                           device=device, precision=p) for p in cfg.precisions}
    reference = models[cfg.precisions[0]]
    with torch.no_grad():
        goal = LatentModel(reference).encode_goal(env.unwrapped.goal_images().images)[-1].to(device)  # (N, D)
        z = LatentModel(reference).encode(obs)[None].to(device)  # (1, N, D)
    env.close()
    state = torch.as_tensor(obs["state"], dtype=torch.float32, device=device)[None]  # (1, 7)
    generator = torch.Generator().manual_seed(cfg.seed)
    seconds = {p: [] for p in cfg.precisions}
    energies = {p: [] for p in cfg.precisions}
    for batch in range(cfg.warmup + cfg.batches):
        actions = (torch.rand(cfg.samples, cfg.horizon, 7, generator=generator) * 2 - 1).to(device)  # (B, H, 7)
        for precision, model in models.items():
            start = time.perf_counter()
            with torch.no_grad():
                future = model.rollout(z, state, actions)[:, -1]  # (B, N, D)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if batch >= cfg.warmup:
                seconds[precision].append(time.perf_counter() - start)
                energies[precision].append(latent_energy(future, goal, "l1", list(cfg.smoothing)).cpu().numpy())
    base = float(np.median(seconds[cfg.precisions[0]]))
    reference_energies = np.stack(energies[cfg.precisions[0]])  # (batches, B)
    figures = {}
    for precision in cfg.precisions:
        median = float(np.median(seconds[precision]))
        figures[precision] = {"median_s": median, "best_s": float(np.min(seconds[precision])), "speedup": base / median,
                              **compare_energies(reference_energies, np.stack(energies[precision]), cfg.topk)}
        log.info("%s: %.4f s median per batch of %d x %d (best %.4f), %.2fx; energies vs %s: Pearson %.4f, "
                 "max |diff| %.5f (spread %.5f), top-%d overlap %.2f", precision, median, cfg.samples, cfg.horizon,
                 figures[precision]["best_s"], figures[precision]["speedup"], cfg.precisions[0],
                 figures[precision]["pearson"], figures[precision]["max_abs_diff"],
                 figures[precision]["energy_spread"], cfg.topk, figures[precision]["topk_overlap"])
    out = Path(cfg.out)
    out = out if out.is_absolute() else Path(HydraConfig.get().runtime.output_dir) / out
    machine = {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "device": str(device), "cpu_native_bf16": cpu_has_native_bf16()}
    out.write_text(json.dumps({"config": OmegaConf.to_container(cfg, resolve=True), "machine": machine,
                               "precisions": figures}, indent=1))
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
