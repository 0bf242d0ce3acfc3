"""Training: YAML configuration, the training loop and training-set statistics (checkpoints: mlanet_lammps.checkpoint; error metrics: mlanet_lammps.metrics)."""
