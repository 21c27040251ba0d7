"""The planning core: a world model, a goal and an agent behind the contracts of :mod:`jepa_wm.protocols`.

* :mod:`~jepa_wm.planning.latent_model`: the JEPA encoder + predictor as the planner's world model.
* :mod:`~jepa_wm.planning.goals`: goal images -> goal stages and their schedule.
* :mod:`~jepa_wm.planning.costs`: the weighted sum of cost terms, and the core terms.
* :mod:`~jepa_wm.planning.agent`: :class:`~jepa_wm.planning.agent.MPCAgent`, ``reset(goal, obs)`` / ``act(obs)``.
* :mod:`~jepa_wm.planning.episode`: one episode in a simulated env; :mod:`~jepa_wm.planning.runner`: many, from
  a plan config; :mod:`~jepa_wm.planning.outputs`: videos and plots; :mod:`~jepa_wm.planning.loading`: checkpoints.
"""
