"""Run tags the stages read: how the run was asked for, beyond its partition."""

import dagster as dg

# Stages that update their tables in place rebuild them from all history on a run with this tag set to "true"
# (`crm-pipeline run --full-refresh`, or the tag added to a launch in the UI).
FULL_REFRESH_TAG = "crm/full_refresh"


def is_full_refresh(context: dg.AssetExecutionContext) -> bool:
    """Whether this run rebuilds from all history rather than from what changed since the last run."""
    return context.run.tags.get(FULL_REFRESH_TAG, "").lower() == "true"
