"""jepa-wm: JEPA world models for robot planning (V-JEPA 2-AC recipe)."""

__version__ = "0.1.0"
