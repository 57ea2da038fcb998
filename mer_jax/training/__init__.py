"""Optimiser, train/eval steps, sharding, checkpoints and the training loop."""
