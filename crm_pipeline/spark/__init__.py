"""Spark runners of the pipeline's stages: each reuses its domain room and renders its SQL for Spark."""
