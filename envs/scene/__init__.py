"""Tabletop scenes composed from reusable pieces (arena, gantry arm, props, cameras).

>>> from envs.scene import build_scene
>>> sim = build_scene(image_size=64, cubes=("red",), pads=("blue",))
>>> sim.reset(ee_pos=np.array([0.0, 0.0, 0.15]))
>>> sim.step(np.array([1.0, 0, 0, 0, 0, 0, -1.0]))  # 5 cm along +x, gripper open
"""

from __future__ import annotations

from envs.scene.arena import CAMERAS, add_cameras, add_table, new_spec
from envs.scene.arm import add_gantry_arm
from envs.scene.props import COLORS, add_cube, add_marker, add_pad
from envs.scene.sim import CONTROL_HZ, SceneIds, TabletopSim

__all__ = ["CAMERAS", "COLORS", "CONTROL_HZ", "TabletopSim", "build_scene"]


def build_scene(
    image_size: int,
    cubes: tuple[str, ...] = (),
    pads: tuple[str, ...] = (),
    markers: tuple[str, ...] = (),
) -> TabletopSim:
    """Compile a table, the gantry arm, the cameras and the named props.

    Args:
        image_size: offscreen buffer side in pixels (at least the rendered image size).
        cubes, pads, markers: colours (keys of :data:`COLORS`) of the props to add.
    """
    spec = new_spec(image_size)
    add_table(spec)
    add_cameras(spec)
    add_gantry_arm(spec)
    for color in cubes:
        add_cube(spec, color)
    for color in pads:
        add_pad(spec, color)
    for color in markers:
        add_marker(spec, color)
    model = spec.compile()
    return TabletopSim(model, SceneIds.lookup(model, cubes, pads, markers))
