"""The gripper-target cost term: plans charged for commanding the gripper the goal image does not show.

The latent energy sees the fingers only a little; :class:`~jepa_wm.plugins.gripper_reader.reader.GripperReader`
reads from each goal stage's image whether its gripper is open (-1) or closed (+1) (a goal from a sentence
carries the expert's command at each stage instead), and the term charges
``mean_t |a[t, dim] - target| / 2`` (1 per step of the opposite binary command)::

    costs:
      gripper: {_target_: jepa_wm.plugins.gripper_reader.cost.GripperTarget.build, weight: 0.05,
                reader: ${world_model.gripper_reader}}
"""

from __future__ import annotations

from torch import Tensor

from jepa_wm.planning.costs import BuildContext, Candidates, check_weight
from jepa_wm.plugins.gripper_reader.reader import GripperReader
from jepa_wm.protocols import CostModel, Goal


class GripperTarget:
    """Each goal stage's gripper command, read from its image, as a target for the planned gripper commands.

    Args:
        reader: reads open / closed from a goal image.
        dim: the action dimension of the gripper command.
        weight: its factor in the cost.
    """

    def __init__(self, reader: GripperReader, dim: int = 6, weight: float = 0.0) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise ValueError(f"costs.gripper.dim must be a non-negative action index, got {dim!r}")
        self.reader, self.dim, self.weight = reader, dim, check_weight(weight, "gripper")
        self.targets: list[float] = []

    @classmethod
    def build(cls, context: BuildContext, model: CostModel, *, weight: float, reader: str | None, dim: int = 6
              ) -> GripperTarget:
        if reader is None:
            raise ValueError("costs.gripper reads each goal image's gripper with a gripper reader, and the world model "
                             "pair has none (world_model.gripper_reader=null): train one with experiments/"
                             "train_gripper_reader.py, or drop the term (costs.gripper=null)")
        loaded, _ = GripperReader.load(reader)
        image_hw = tuple(context.env.unwrapped.image_hw)
        if loaded.image_hw != image_hw:
            raise ValueError(f"costs.gripper: the gripper reader {reader} reads {loaded.image_hw[0]}x{loaded.image_hw[1]} "
                             f"images, task {context.task!r} renders {image_hw[0]}x{image_hw[1]}: train one on this "
                             "task's images")
        if dim >= context.env.action_space.shape[0]:
            raise ValueError(f"costs.gripper.dim {dim} out of range for {context.env.action_space.shape[0]}-D actions")
        return cls(loaded, dim, weight)

    def reset(self, goal: Goal, model: CostModel) -> None:
        """Read each stage's gripper command from its image (a goal without images: the commands it carries)."""
        if goal.images is not None:
            self.targets = self.reader.targets(goal.images)
        elif goal.gripper is not None:
            self.targets = [float(g) for g in goal.gripper]
        else:
            raise ValueError("costs.gripper reads the gripper from goal images; this goal has neither images nor "
                             "gripper commands: drop the term (costs.gripper=null)")

    def __call__(self, candidates: Candidates) -> Tensor:
        target = self.targets[candidates.stage]
        return (candidates.actions[..., self.dim] - target).abs().mean(-1) / 2  # (B,)
