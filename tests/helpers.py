"""Small builders shared by several test packages."""

import numpy as np

from jepa_wm.data.hdf5 import Episode


def random_episode(n: int, seed: int, size: int = 16) -> Episode:
    """An ``n``-step episode of random ``size`` x ``size`` images, states and actions."""
    rng = np.random.default_rng(seed)
    return Episode(
        images=rng.integers(0, 256, size=(n + 1, size, size, 3), dtype=np.uint8),
        robot_states=rng.normal(size=(n + 1, 7)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, 7)).astype(np.float32),
        rewards=np.zeros(n),
        dones=np.arange(n) == n - 1,
        success=np.zeros(n, dtype=bool),
        sim_states=np.zeros((n, 3)),
        seed=seed,
        noise=0.0,
        instruction="test",
    )
