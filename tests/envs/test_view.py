"""The camera projection matches MuJoCo's renderer, and view boxes stay in the picture."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import envs
from envs.scene import CAMERAS
from envs.scene.arm import WORKSPACE_HIGH, WORKSPACE_LOW
from envs.scene.view import VIEW_MARGIN_PX, project, view_box

SIZE = 64


@pytest.fixture(scope="module")
def reach():
    env = envs.make("reach", image_size=SIZE, render_mode="rgb_array")
    env.reset(seed=0)
    yield env.unwrapped
    env.close()


@pytest.mark.parametrize("camera", ["front", "side"])
def test_projection_finds_the_rendered_marker(camera: str) -> None:
    env = envs.make("reach", image_size=SIZE, camera=camera, render_mode="rgb_array").unwrapped
    env.reset(seed=0)
    env.sim.reset(np.array([0.0, 0.2, 0.28]))  # the arm out of the way, at the back top
    for point in ([0.0, 0.0, 0.1], [0.1, -0.1, 0.05], [-0.1, 0.05, 0.15]):
        env.sim.set_marker("red", np.array(point))
        env.sim.forward()
        image = env.render().astype(int)
        red = (image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)
        rows, cols = np.nonzero(red)
        assert rows.size > 0, f"marker at {point} not rendered"
        col, row = project(env.sim, camera, np.array(point), SIZE)
        # pixel centres sit at +0.5
        assert abs(cols.mean() + 0.5 - col) < 1.0 and abs(rows.mean() + 0.5 - row) < 1.0
    env.close()


@pytest.mark.parametrize("camera", sorted(CAMERAS))
def test_view_box_corners_are_in_the_picture_and_it_is_the_largest(reach, camera: str) -> None:
    low, high = view_box(reach.sim, camera, SIZE)
    assert np.all(low >= WORKSPACE_LOW - 1e-9) and np.all(high <= WORKSPACE_HIGH + 1e-9)
    assert low[2] == WORKSPACE_LOW[2]  # down to the table
    corners = np.array(list(itertools.product(*zip(low, high))))
    pixels = project(reach.sim, camera, corners, SIZE)
    assert np.all((pixels >= VIEW_MARGIN_PX) & (pixels <= SIZE - VIEW_MARGIN_PX))
    if np.all(high >= WORKSPACE_HIGH - 1e-9):
        return  # the whole workspace is in view
    grown = np.array(list(itertools.product(*zip(low - [0.01, 0.01, 0], high + 0.01))))
    pixels = project(reach.sim, camera, grown, SIZE)
    assert not np.all((pixels >= VIEW_MARGIN_PX) & (pixels <= SIZE - VIEW_MARGIN_PX))


def test_env_view_box_holds_the_task_goals(reach) -> None:
    """The front camera's box holds every reach marker position (planning keeps the hand in it)."""
    from envs.tasks.reach import MARKER_HIGH, MARKER_LOW

    low, high = reach.view_box
    assert np.all(low <= MARKER_LOW) and np.all(high >= MARKER_HIGH)
    assert reach.view_box is reach.view_box  # computed once
