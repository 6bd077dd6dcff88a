"""The sensor daemon's own tick code (dagster._daemon.sensor.execute_sensor_iteration) on a test instance,
in this process or as a separate one that can die mid-tick.

`python -m crm_pipeline_tests.faults.daemon DEFS_FILE TICK_AT [CRASH_POINT]` runs one tick of the sensors
in DEFS_FILE at epoch time TICK_AT (the daemon's clock, so the 30 s minimum interval passes between
ticks without waiting). With CRASH_POINT (a Dagster debug crash flag such as RUN_LAUNCHED) the process
SIGKILLs itself at that point of the tick, as Dagster's own sensor crash-recovery tests do.
"""

from __future__ import annotations

import logging
import sys

import dagster as dg
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.sensor import execute_sensor_iteration
from dagster._utils import get_terminate_signal

LOCATION = "crm_faults"


def workspace_target(defs_file: str) -> InProcessWorkspaceLoadTarget:
    origin = LoadableTargetOrigin(executable_path=sys.executable, python_file=defs_file, attribute="defs")
    return InProcessWorkspaceLoadTarget(InProcessCodeLocationOrigin(origin, location_name=LOCATION))


def tick(instance: dg.DagsterInstance, defs_file: str, at: float, crash_point: str | None = None) -> None:
    """One iteration of the sensor daemon at time `at` (every sensor that is due ticks once)."""
    flags = {"landing_sensor": {crash_point: get_terminate_signal()}} if crash_point else None
    with freeze_time(at), create_test_daemon_workspace_context(workspace_target(defs_file), instance) as context:
        for _ in execute_sensor_iteration(context, logging.getLogger("crm_faults.daemon"), None, None,
                                          debug_crash_flags=flags):
            pass


if __name__ == "__main__":
    defs_file, at, *crash = sys.argv[1:]
    with dg.DagsterInstance.get() as instance:
        tick(instance, defs_file, float(at), crash[0] if crash else None)
