"""Live tests: the real `dagster dev` service and a real browser on it."""
