"""Where a prediction run's seconds go on a built warehouse: `run_predictions` timed on copies, statement by statement.

    PYTHONPATH=. python bench/predict_day.py --warehouse W.duckdb --as-of 2025-07-01 [--repeat 3] [--profile]
    PYTHONPATH=. python bench/predict_day.py --prepare W.duckdb --landing L --as-of 2025-07-01 --out W2.duckdb

`--prepare` copies a warehouse (after a `crm-pipeline run`) and runs the stages before predictions on the copy
for `--as-of` (ingest, quality, identity and profiles: a new day, or a drop when a file was added to the
landing folder), so the copy is what `predict_customers` starts from. The timing mode runs `run_predictions`
(as the asset calls it: weekly cadence from 1990-01-01, no truth) on a fresh copy `--repeat` times and prints
wall and CPU seconds (CPU includes DuckDB's threads: steadier than wall time on a shared machine), the
slowest SQL statements, and with `--profile` the Python functions by cumulative time. Never part of the tests.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import importlib
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import slowest_statements, statement_clock  # noqa: E402

START = dt.date(1990, 1, 1)     # the settings' partition_start_date: the retraining cadence counts from it


def time_on_copies(warehouse: Path, as_of: dt.date, run, *, repeat: int, profile: bool, top: int = 8) -> None:
    """`run(engine, as_of)` on `repeat` fresh copies of `warehouse`: wall and CPU seconds, the slowest statements."""
    from crm_pipeline.warehouse.engine import make_engine

    print(f"load {os.getloadavg()[0]:.1f} (1 min)")
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            copy = Path(tmp) / "copy.duckdb"
            shutil.copy(warehouse, copy)
            engine = make_engine(f"duckdb:///{copy}")
            spent = statement_clock(engine)
            profiler = cProfile.Profile() if profile and i == repeat - 1 else None
            wall, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            outcome = run(engine, as_of)
            if profiler:
                profiler.disable()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"run {i + 1}: {wall:.2f} s wall, {cpu:.2f} s CPU, SQL {sum(map(sum, spent.values())):.2f} s in "
                  f"{sum(map(len, spent.values()))} statements; {outcome}")
            if i == repeat - 1:
                for line in slowest_statements(spent, top):
                    print(f"  {line}")
            if profiler:
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
            engine.dispose()


def prepare(source: Path, landing: Path, as_of: dt.date, out: Path, groups: list[str]) -> None:
    """A copy of `source` with the stage groups before the timed one run for `as_of` (its own Dagster home)."""
    import dagster as dg

    shutil.copy(source, out)
    home = Path(tempfile.mkdtemp(prefix="bench_day_"))
    os.environ.update(DAGSTER_HOME=str(home / "dagster"), CRM_HOME_DIR=str(home / "home"))
    (home / "dagster").mkdir(parents=True)
    from crm_pipeline.definitions import ALL_ASSETS
    from crm_pipeline.defs.headless import EPHEMERAL_JOB_NAME, local_instance
    from crm_pipeline.defs.resources import default_resources
    from crm_pipeline.settings import load_settings

    settings = load_settings(None, landing_dir=str(landing), warehouse_url=f"duckdb:///{out}").with_overrides(
        as_of=as_of)
    for group in groups:    # one run per group: the stages before profiles have no daily partitions
        daily = group in ("predict", "scoring", "audiences")
        config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        if group == "ingest":
            config["ops"] = {"ingest_files": {"config": {"paths": []}}}
        job = dg.define_asset_job(EPHEMERAL_JOB_NAME, selection=dg.AssetSelection.groups(group))
        defs = dg.Definitions(jobs=[job], assets=ALL_ASSETS, resources=default_resources(settings),
                              loggers={"console": dg.colored_console_logger})
        started = time.perf_counter()
        result = defs.resolve_job_def(EPHEMERAL_JOB_NAME).execute_in_process(
            run_config=config, instance=local_instance(settings), raise_on_error=True,
            partition_key=as_of.isoformat() if daily else None, tags={"crm/as_of": as_of.isoformat()})
        print(f"{group}: {'ok' if result.success else 'failed'} in {time.perf_counter() - started:.1f} s")
    shutil.rmtree(home, ignore_errors=True)


def _predict(engine: sa.Engine, as_of: dt.date) -> str:
    from crm_pipeline.predict.run import run_predictions

    with tempfile.TemporaryDirectory() as models:
        result = run_predictions(engine, as_of=as_of, model_dir=Path(models), truth_dir=None, retrain_days=7,
                                 cadence_start=START)
    run = result["run"]
    return (f"{run['mode']}, retrained {result['training']['retrained']}, recomputed {run['contacts_recomputed']}, "
            f"rescored {run['contacts_rescored']}")


def main(run=_predict, groups=("ingest", "quality", "identity"), imports=("crm_pipeline.predict.run",)) -> None:
    """Time `run` (after importing `imports`, which the pipeline process has already), or `--prepare`."""
    parser = argparse.ArgumentParser(description=(sys.modules["__main__"].__doc__ or "").split("\n")[0])
    parser.add_argument("--warehouse", type=Path, help="the warehouse to time on (copied, never changed)")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the last run")
    parser.add_argument("--prepare", type=Path, help="make --out from this warehouse instead of timing")
    parser.add_argument("--landing", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare, args.landing, args.as_of, args.out, list(groups))
    else:
        for module in imports:
            importlib.import_module(module)
        time_on_copies(args.warehouse, args.as_of, run, repeat=args.repeat, profile=args.profile)


if __name__ == "__main__":
    main()
