"""scoring: engagement scores, preferences, preferred channel and lifecycle stages as of a day."""
