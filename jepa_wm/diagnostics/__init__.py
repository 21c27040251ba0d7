"""Privileged diagnostics: they read the simulator's truth, so they bound planning but never plan for a robot.

* :mod:`~jepa_wm.diagnostics.simulator`: the simulator as the world model (the encoder's energy alone).
* :mod:`~jepa_wm.diagnostics.state_oracle`: MPC on the true object state.
* :mod:`~jepa_wm.diagnostics.goal_pose_follower`: servo through the goal images' true hand poses.
* :mod:`~jepa_wm.diagnostics.oracle_agreement`: how often the predictor ranks candidates as the simulator does.

They may import the planning core; the policy path never imports them.
"""
