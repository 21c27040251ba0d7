"""robosuite tasks (Panda, end-effector delta control) behind the contract of :mod:`envs.interface`.

>>> import envs
>>> env = envs.make("robosuite_stack", image_size=64, camera="agentview")
>>> obs, info = env.reset(seed=0)      # {"image": (64, 64, 3) uint8 upright, "state": (7,) float32}
>>> expert = env.unwrapped.make_expert(noise=0.0)
>>> obs, reward, terminated, truncated, info = env.step(expert.act())
>>> goals = env.unwrapped.goal_images()  # "grasped", "above_target", "final"

Registering imports nothing from robosuite: the entry points are strings, and robosuite is
imported when a task is first made.
"""

from envs.registry import TaskSpec, register

_TASKS = (
    # (name, class in envs.robosuite_tasks.tasks, time limit in control steps at 20 Hz: about
    # twice the clean expert's mean episode, 40 / 70 / 141 steps)
    ("robosuite_lift", "RobosuiteLift", 80),
    ("robosuite_stack", "RobosuiteStack", 140),
    ("robosuite_pick_place_can", "RobosuitePickPlaceCan", 250),
)

for _name, _cls, _steps in _TASKS:
    register(
        TaskSpec(
            name=_name,
            entry_point=f"envs.robosuite_tasks.tasks:{_cls}",
            max_episode_steps=_steps,
            backend="robosuite",
        )
    )
