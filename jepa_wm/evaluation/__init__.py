"""Evaluation tools: read-outs of what the encoder and predictor carry, and of finished plans.

* :mod:`~jepa_wm.evaluation.probe`: linear probes of frozen latents.
* :mod:`~jepa_wm.evaluation.open_loop`: a predictor's open-loop error on held-out clips.
* :mod:`~jepa_wm.evaluation.replay`: replay a plan run's actions and measure what they did.
* :mod:`~jepa_wm.evaluation.arrival`: calibrate the arrival and far energies from replays.
* :mod:`~jepa_wm.evaluation.energy_landscape`: how well an energy orders frames by distance.

They may import the planning core; the core never imports them.
"""
