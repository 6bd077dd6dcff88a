"""Files landed -> one downstream refresh once ingestion has drained, on a real (temporary) instance."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pytest

from crm_pipeline.definitions import defs
from crm_pipeline.defs.resources import default_resources
from crm_pipeline.defs.sensors import refresh_after_ingest_sensor
from crm_pipeline.landing.settle import IngestActivity, refresh_due
from crm_pipeline.settings import load_settings
from crm_pipeline_tests.conftest import drop


@pytest.fixture
def instance(dagster_instance):
    return dagster_instance


def test_a_burst_of_file_runs_waits_for_the_queue_to_drain():
    assert not refresh_due(IngestActivity("r1", 100.0, still_running=3), refreshed_up_to=0)
    assert refresh_due(IngestActivity("r9", 180.0, still_running=0), refreshed_up_to=0)
    assert not refresh_due(IngestActivity("r9", 180.0, still_running=0), refreshed_up_to=180.0)


def test_a_successful_ingest_run_requests_one_refresh_for_today(instance, tmp_path, landing_dir):
    drop(landing_dir, "brand_a/customers/c.csv", "customer_id,email\nC1,a@x.com\n")
    context = dg.build_sensor_context(instance=instance)
    assert refresh_after_ingest_sensor(context).run_requests == []

    settings = load_settings(env={}, home_dir=tmp_path / "home", landing_dir=landing_dir)
    job = defs.resolve_job_def("ingest_job")
    result = job.execute_in_process(instance=instance, resources=default_resources(settings),
                                    run_config={"ops": {"ingest_files": {"config": {"paths": []}}}})
    assert result.success

    first = refresh_after_ingest_sensor(dg.build_sensor_context(instance=instance))
    [request] = first.run_requests
    assert request.partition_key == datetime.now(timezone.utc).date().isoformat()
    assert request.run_key == f"refresh-after-{result.run_id}"
    again = refresh_after_ingest_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert again.run_requests == []
