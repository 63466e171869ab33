"""Latent algorithms: pure editing functions, refinement, directions and quality metrics."""
