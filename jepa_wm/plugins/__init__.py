"""Task plug-ins: small models that read or predict what the latent energy misses, each with its
cost term or world model and its training code beside it.

* :mod:`~jepa_wm.plugins.gripper_reader`: open or closed fingers from a goal image; the gripper-target term.
* :mod:`~jepa_wm.plugins.object_reader`: an object's or the hand's xyz from a latent; the hand-pull term.
* :mod:`~jepa_wm.plugins.object_model`: push's object model (object play data, dynamics, the cost model).

They attach through the plan config (``costs.<name>._target_``, ``world_model._target_``); the
planning core never imports them.
"""
