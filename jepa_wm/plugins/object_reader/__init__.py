"""An object's or the hand's xyz from a latent (:mod:`.reader`), the hand-pull cost term (:mod:`.cost`), its
training and the predictor's object-motion check (:mod:`.train`)."""
