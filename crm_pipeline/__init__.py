"""crm_pipeline: a retail Customer Data Platform run as a Dagster project."""
