"""Episode storage (robomimic-layout HDF5) and training clips."""
