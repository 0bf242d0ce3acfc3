"""Training: YAML configuration, the training loop, checkpoints and metrics."""
