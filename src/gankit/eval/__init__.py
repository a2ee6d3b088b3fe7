"""Evaluation of generators and of the GAN game: divergences, scores and diagnostics."""
