"""The whole Definitions object loads: a broken wire fails here first."""

import dagster as dg

from crm_pipeline.definitions import defs


def test_definitions_load_with_every_resource_bound():
    repository = defs.get_repository_def()
    repository.load_all_definitions()
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert {"files", "raw_customers", "raw_orders", "raw_web_events"} <= keys
    assert repository.get_sensor_def("landing_sensor").default_status == dg.DefaultSensorStatus.RUNNING


def test_every_asset_has_a_group_owner_and_description():
    repository = defs.get_repository_def()
    graph = repository.asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name and node.group_name != "default", key
        assert node.owners, key
        assert node.description, key


def test_the_instance_the_cli_creates_is_the_projects_dagster_yaml():
    from pathlib import Path

    from crm_pipeline.defs.headless import INSTANCE_YAML

    project_yaml = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
    assert project_yaml.read_text(encoding="utf-8") == INSTANCE_YAML
    assert "max_concurrent_runs: 1" in INSTANCE_YAML  # one writer for the DuckDB file


def test_every_asset_shows_kinds_in_the_ui():
    graph = defs.get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        assert graph.get(key).kinds, key


def test_every_run_executes_in_one_process_so_the_warehouse_sees_one_writer():
    repository = defs.get_repository_def()
    for job_name in ("ingest_job", "refresh_after_ingest", "daily_refresh"):
        assert repository.get_job(job_name).executor_def is dg.in_process_executor, job_name


def test_the_project_instance_retries_crashed_runs_but_not_failed_steps(tmp_path):
    from crm_pipeline.defs.headless import INSTANCE_YAML

    (tmp_path / "dagster.yaml").write_text(INSTANCE_YAML, encoding="utf-8")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure  # a data error must not loop
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
        assert instance.freshness_enabled
