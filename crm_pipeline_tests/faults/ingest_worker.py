"""A run worker in its own process: one real ingest run on the instance under $DAGSTER_HOME.

`python -m crm_pipeline_tests.faults.ingest_worker [--wait] [PATH ...]` with CRM_LANDING_DIR,
CRM_WAREHOUSE_URL and CRM_HOME_DIR set, as a launched run would have them. Prints `ready` once imported
(with --wait it then waits for a line on stdin, so a test can start two runs at the same moment) and, at
the end, one JSON line: the run's success, its step failures and how often a step was retried.

With CRM_FAULT_KILL_AT_MANIFEST=<path>, the process SIGKILLs itself right after the manifest row of that
file was written and before its transaction commits (its raw rows are in the transaction too): the
worst moment to die, hit every time, as Dagster's own crash tests do with debug crash flags.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import dagster as dg
import sqlalchemy as sa

from crm_pipeline.defs.ingest_assets import ingest_files
from crm_pipeline.defs.resources import default_resources


def kill_at_manifest_row(path: str) -> None:
    @sa.event.listens_for(sa.Engine, "after_cursor_execute")
    def _die(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO FILES") and path in repr(parameters):
            os.kill(os.getpid(), signal.SIGKILL)


def main(args: list[str]) -> int:
    if os.environ.get("CRM_FAULT_KILL_AT_MANIFEST"):
        kill_at_manifest_row(os.environ["CRM_FAULT_KILL_AT_MANIFEST"])
    print("ready", flush=True)
    paths = [a for a in args if a != "--wait"]
    if "--wait" in args:
        sys.stdin.readline()
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            [ingest_files], instance=instance, resources=default_resources(), raise_on_error=False,
            run_config={"ops": {"ingest_files": {"config": {"paths": paths}}},
                        "loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        failures = [e.event_specific_data.error.message for e in result.all_events if e.is_step_failure]
        retries = sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")
        print(json.dumps({"success": result.success, "failures": failures, "retries": retries}), flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
