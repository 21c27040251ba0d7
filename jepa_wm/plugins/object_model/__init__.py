"""Push's object model: object play data (:mod:`.play`), the dynamics (:mod:`.dynamics`), their training
(:mod:`.train`), and the world model and cost term that plan with them (:mod:`.model`)."""
