"""Planning results as files a person can open: an mp4 per episode and a plot of the energies."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jepa_wm.planning.episode import EpisodeResult
from planners.base import check_positive_int


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    return image.repeat(scale, axis=0).repeat(scale, axis=1)  # (H * s, W * s, 3)


def write_episode_video(path: str | Path, result: EpisodeResult, *, scale: int = 4, fps: int = 10) -> Path:
    """An mp4 with, side by side, the observation, the current sub-goal and the final goal (the
    observation alone for a goal without images, e.g. from a sentence).

    Needs ``run_episode(..., keep_frames=True)``.
    """
    import imageio.v2 as imageio

    check_positive_int(scale, "video scale")
    check_positive_int(fps, "fps")
    if not result.frames:
        raise ValueError("the result holds no frames: run the episode with keep_frames=True")
    indices = result.mpc["goal_indices"]
    path = Path(path)
    with imageio.get_writer(path, fps=fps, macro_block_size=1) as writer:
        for t, frame in enumerate(result.frames):
            panels = [frame]
            if result.goal_images:
                panels += [result.goal_images[indices[min(t, len(indices) - 1)]], result.goal_images[-1]]
            writer.append_data(_upscale(np.concatenate(panels, axis=1), scale))
    return path


def plot_energies(path: str | Path, results: Sequence[EpisodeResult]) -> Path:
    """``energy.png``: the observed latent energy toward the current goal over steps, per episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.plot(r.mpc["observed_energies"], marker=".", label=f"seed {r.seed} ({'success' if r.success else 'fail'})")
        switches = [t for t in range(1, r.steps) if r.mpc["goal_indices"][t] != r.mpc["goal_indices"][t - 1]]
        for t in switches:
            ax.axvline(t, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("latent energy to the current goal")
    ax.set_title("observed energy (dotted: sub-goal switches)")
    if len(results) <= 10:
        ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
