"""iCEM: improved cross-entropy method (Pinneri et al., CoRL 2020, arXiv 2008.06389).

Differences from plain CEM (:mod:`planners.cem`):

* **Coloured noise** along time: samples are ``mean + std * eps`` with ``eps`` Gaussian noise
  whose power spectrum falls as ``1 / f**noise_beta`` (``beta = 2``: smooth, low-frequency
  sequences; ``beta = 0``: white noise).
* **Population decay**: iteration ``i`` draws ``max(num_samples * population_decay**-i, 2 * topk)``
  samples.
* **Kept elites**: a fraction ``keep_elites_frac`` of the previous iteration's elites joins
  the next population; across calls, the last elites are shifted by the executed steps
  (see :meth:`ICEM.advance`) and join the first iteration of the next call.
* **Mean in the last iteration**: the current mean is evaluated with the last population.
* **Momentum** on mean and std, and the **best sequence seen** is returned.
* The **shift-initialised mean** comes from the MPC loop: it passes the previous plan shifted
  (:func:`planners.base.shift_plan`) as ``init_mean``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from planners.base import Search, check_fraction, shift_plan
from planners.cem import CEM, CEMConfig


def colored_noise(search: Search, num: int, horizon: int, dims: int, beta: float) -> Tensor:
    """Gaussian noise ``(num, horizon, dims)`` with power spectrum ``~ 1 / f**beta`` along time.

    Each ``(sample, dim)`` series has zero mean and unit variance in expectation; ``beta = 0``
    is white noise. The spectrum is shaped in the Fourier domain as in the ``colorednoise``
    package (Timmer & Koenig 1995), lowest frequency ``1 / horizon``.
    """
    if beta == 0 or horizon == 1:
        return search.randn(num, horizon, dims)
    freqs = torch.fft.rfftfreq(horizon, device=search.device).clamp(min=1.0 / horizon)  # (F,)
    scale = freqs.pow(-beta / 2).to(search.dtype)  # (F,)
    real = search.randn(num, dims, freqs.numel()) * scale  # (num, dims, F)
    imag = search.randn(num, dims, freqs.numel()) * scale
    imag[..., 0] = 0.0  # the DC term is real
    real[..., 0] *= math.sqrt(2.0)
    if horizon % 2 == 0:  # so is the Nyquist term for even lengths
        imag[..., -1] = 0.0
        real[..., -1] *= math.sqrt(2.0)
    weights = scale[1:].clone()
    weights[-1] *= (1 + horizon % 2) / 2.0
    sigma = 2 * weights.pow(2).sum().sqrt() / horizon  # std of the series before normalising
    series = torch.fft.irfft(torch.complex(real, imag), n=horizon) / sigma  # (num, dims, H)
    return series.transpose(1, 2).contiguous()  # (num, H, dims)


@dataclass(frozen=True)
class ICEMConfig(CEMConfig):
    """iCEM settings: :class:`~planners.cem.CEMConfig` plus the iCEM parts, with defaults
    after Pinneri et al. (``init_std`` in action units; momentum 0.1 on mean and std;
    ``num_samples`` is the first iteration's population; the best sequence is returned).

    Args:
        noise_beta: colour exponent of the noise along time (2 in the paper; 0 is white).
        keep_elites_frac: fraction of the elites carried into the next iteration and call.
        population_decay: factor ``gamma >= 1`` by which the population shrinks per iteration.
        add_mean: evaluate the current mean with the last iteration's population.
    """

    horizon: int = 5
    num_samples: int = 300
    iterations: int = 4
    init_std: float | Sequence[float] = 0.5
    momentum_mean: float = 0.1
    momentum_std: float = 0.1
    return_best: bool = True
    noise_beta: float = 2.0
    keep_elites_frac: float = 0.3
    population_decay: float = 1.25
    add_mean: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.noise_beta < 0:
            raise ValueError(f"noise_beta must be >= 0, got {self.noise_beta}")
        check_fraction(self.keep_elites_frac, "keep_elites_frac", closed_high=True)
        if self.population_decay < 1:
            raise ValueError(f"population_decay must be >= 1, got {self.population_decay}")

    def population(self, iteration: int) -> int:
        """Samples drawn in ``iteration`` (0-based) after population decay."""
        return max(round(self.num_samples * self.population_decay ** -iteration), 2 * self.topk)

    @property
    def num_kept(self) -> int:
        """Elites carried into the next iteration or call."""
        return round(self.keep_elites_frac * self.topk)


class ICEM(CEM):
    """iCEM planner; see the module docstring. It carries elites between calls: call
    :meth:`advance` after executing actions and :meth:`reset` at the start of an episode."""

    config: ICEMConfig
    config_class = ICEMConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept: Tensor | None = None  # (k, H, P) elites kept from the last iteration
        self._shift = 0  # actions executed since the call that left self._kept

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._kept, self._shift = None, 0

    def advance(self, steps: int) -> None:
        super().advance(steps)
        self._shift += steps

    def _sample(self, search: Search, iteration: int, mean: Tensor, std: Tensor) -> Tensor:
        cfg = self.config
        noise = colored_noise(search, cfg.population(iteration), *mean.shape, cfg.noise_beta)  # (N_i, H, P)
        parts = [self.action_space.project(mean + std * noise)]
        if self._kept is not None:
            parts.append(self._kept)
        if cfg.add_mean and iteration == cfg.iterations - 1:
            parts.append(mean[None])
        return torch.cat(parts)  # (N_i [+ k] [+ 1], H, P)

    def _keep(self, elites: Tensor) -> None:
        self._kept = elites[: self.config.num_kept].clone()

    def _optimise(self, search: Search, mean: Tensor) -> tuple[Tensor, Tensor | None]:
        # The last call's elites, shifted by the executed steps and padded with the last
        # action of the (shift-initialised) mean, join the first iteration.
        if self._kept is not None and 0 < self._kept.shape[0] and self._shift < self.horizon:
            self._kept = self.action_space.project(shift_plan(self._kept.to(mean.device), self._shift, mean[-1]))
        else:
            self._kept = None
        self._shift = 0
        return super()._optimise(search, mean)
