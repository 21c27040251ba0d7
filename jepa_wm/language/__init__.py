"""Language goals: a frozen text encoder (``text_encoder``), instruction templates
(``instructions``) and the predictor that maps a sentence and the current observation to goal
latents in the frozen video encoder's space (``goal_predictor``, ``losses``)."""
