"""Open or closed fingers from a goal image (:mod:`.reader`), the gripper-target cost term (:mod:`.cost`),
its training (:mod:`.train`)."""
