"""Training: YAML configuration, the training loop and training-set statistics (checkpoints are in
mlanet_lammps.checkpoint, error metrics in mlanet_lammps.metrics)."""
