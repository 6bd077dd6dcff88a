"""Where the quality stage's seconds go on a built warehouse: a full stage, then a 1% drop, part by part.

    python bench/quality_drop.py [--people 100000] [--root bench/out] [--step full|drop|both] [--statements 12]

Prepares once, cached under --root (seed 11, as bench/e2e.py): a copy of the landing, a warehouse with it ingested,
the same after a full quality stage (with its Data Docs folder), and that one after a new web-events file of 1% of
the rows was ingested (bench/e2e.py's drop). Each call then copies the cached warehouse and runs the stage on the
copy, so the drop can be timed again and again after a change: `full` times the stage on the ingested warehouse,
`drop` on the dropped one; `drop-whole` runs the drop through `run_quality_stage` in one call.

Prints each part's wall and CPU seconds (typing's read / standardize / write, publish, GX import, context and
validation, dq_results, Data Docs into the run's persistent docs folder, the reads the `stage_entities` asset
makes after the stage, and the `dq_report` asset, which bench/e2e.py counts in the quality stage), then the
slowest SQL statements of the stage (SQLAlchemy's cursor events), with the load average: the machine is shared,
so compare parts within one run, and CPU seconds across runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import END_DATE, data_set, slowest_statements, statement_clock  # noqa: E402

SEED = 11


CPU: dict[str, float] = {}  # CPU seconds of this process per part (the fair clock on a shared machine)


@contextmanager
def clocked(wall: dict, name: str):
    started, cpu_started = time.perf_counter(), time.process_time()
    yield
    wall[name] = wall.get(name, 0.0) + time.perf_counter() - started
    CPU[name] = CPU.get(name, 0.0) + time.process_time() - cpu_started


def prepare(root: Path, people: int) -> dict[str, Path]:
    """The cached landing and warehouses (built when missing; none of this is timed)."""
    from bench._e2e_data import total_rows, write_drop
    from crm_pipeline.landing.ingest import ingest_folder
    from crm_pipeline.landing.scan import LandingFolder
    from crm_pipeline.quality.stage import run_quality_stage
    from crm_pipeline.warehouse.engine import make_engine

    base = root / f"qdrop_{people}"
    paths = {"landing": Path(f"{base}_landing"), "ingested": Path(f"{base}_ingested.duckdb"),
             "staged": Path(f"{base}_staged.duckdb"), "docs": Path(f"{base}_docs"),
             "dropped": Path(f"{base}_dropped.duckdb")}
    if not paths["ingested"].exists():
        shutil.rmtree(paths["landing"], ignore_errors=True)
        shutil.copytree(data_set(root, people, seed=SEED) / "landing", paths["landing"])
        engine = make_engine(f"duckdb:///{paths['ingested']}.tmp")
        ingest_folder(engine, LandingFolder(paths["landing"]), now=datetime.now(timezone.utc))
        engine.dispose()
        os.replace(f"{paths['ingested']}.tmp", paths["ingested"])
    if not paths["staged"].exists():
        shutil.copy(paths["ingested"], f"{paths['staged']}.tmp")
        shutil.rmtree(paths["docs"], ignore_errors=True)
        engine = make_engine(f"duckdb:///{paths['staged']}.tmp")
        run_quality_stage(engine, hold_share=0.05, docs_dir=paths["docs"], now=datetime.now(timezone.utc))
        engine.dispose()
        os.replace(f"{paths['staged']}.tmp", paths["staged"])
    if not paths["dropped"].exists():
        # 1% of the landing's rows, as bench/e2e.py writes it
        write_drop(paths["landing"], round(total_rows(data_set(root, people, seed=SEED)) * 0.01), END_DATE)
        shutil.copy(paths["staged"], f"{paths['dropped']}.tmp")
        engine = make_engine(f"duckdb:///{paths['dropped']}.tmp")
        ingest_folder(engine, LandingFolder(paths["landing"]), now=datetime.now(timezone.utc))
        engine.dispose()
        os.replace(f"{paths['dropped']}.tmp", paths["dropped"])
    return paths


def time_stage(source: Path, docs_source: Path | None, work: Path, statements: int) -> None:
    """The stage on a copy of `source`, part by part, as `run_quality_stage` and the asset after it run them."""
    import sqlalchemy as sa

    from crm_pipeline.contract import ENTITIES
    from crm_pipeline.quality.accounting import file_balances
    from crm_pipeline.quality.publish import publish
    from crm_pipeline.quality.report import countries_before_after, quality_by_brand_entity
    from crm_pipeline.quality.typing_run import TypingTimes, type_new_files
    from crm_pipeline.warehouse.bulk import read_frame
    from crm_pipeline.warehouse.quality_schema import dq_results

    import crm_pipeline.definitions  # noqa: F401  (loaded before the stage runs, as in a pipeline run: not timed)

    db, docs, engine = fresh_copy(source, docs_source, work)
    spent = statement_clock(engine)
    wall: dict[str, float] = {}
    CPU.clear()   # this timing's parts only (`--step both` times the full stage first)
    times = TypingTimes()
    now = datetime.now(timezone.utc)
    with clocked(wall, "stage"):
        with clocked(wall, "typing"):
            typed = type_new_files(engine, now=now, times=times)
        for phase, seconds in times.wall.items():
            wall[f"  typing {phase}"], CPU[f"  typing {phase}"] = seconds, times.cpu[phase]
        with clocked(wall, "publish"):
            published = publish(engine, hold_share=0.05)
        with clocked(wall, "GX import"):
            from crm_pipeline.quality import expectations
            from crm_pipeline.quality.stage import store_results, validate_files
        with clocked(wall, "GX context"):
            expectations._context()
        with clocked(wall, "GX validation"):
            runs = validate_files(engine, typed)
        with clocked(wall, "dq_results"):
            store_results(engine, typed, runs)
        with clocked(wall, "Data Docs"):
            expectations.build_data_docs(runs, docs)
    with clocked(wall, "asset reads after"), engine.connect() as conn:  # stage_entities' metadata, as it reads it
        for name in ENTITIES:
            conn.execute(sa.text(f"SELECT COUNT(*) FROM stg_{name}")).scalar_one()
        conn.execute(sa.text("SELECT entity, COUNT(DISTINCT CAST(file_id AS VARCHAR) || ':' || "
                             "CAST(row_number AS VARCHAR)) FROM quarantine WHERE status = 'open' GROUP BY entity"))
        conn.execute(sa.text("SELECT COUNT(*) FROM quarantine")).scalar_one()
        for name in ENTITIES:
            file_balances(conn, name, published.entities[name].files)
        read_frame(conn, sa.select(dq_results))
    with clocked(wall, "dq_report asset"), engine.connect() as conn:
        quality_by_brand_entity(conn)
        countries_before_after(conn)
    rows = sum(t.rows for t in typed)
    print(f"{source.name}: {rows:,} rows typed in {len(typed)} file(s), publish {published.mode}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"   {'part':<22}{'wall s':>8}{'CPU s':>8}")
    for part, seconds in wall.items():
        print(f"   {part:<22}{seconds:8.2f}{CPU[part]:8.2f}")
    print(f"   slowest statements (of {sum(len(v) for v in spent.values())}, "
          f"{sum(sum(v) for v in spent.values()):.1f} s in all):")
    for line in slowest_statements(spent, statements):
        print(f"   {line}")
    engine.dispose()
    db.unlink(missing_ok=True)
    shutil.rmtree(docs, ignore_errors=True)


def fresh_copy(source: Path, docs_source: Path | None, work: Path):
    """A copy of the warehouse `source` (and its Data Docs folder) at `work`: (file, docs folder, engine)."""
    from crm_pipeline.warehouse.engine import make_engine

    db, docs = work.with_suffix(".duckdb"), work.with_suffix(".docs")
    shutil.copy(source, db)
    shutil.rmtree(docs, ignore_errors=True)
    if docs_source is not None:
        shutil.copytree(docs_source, docs)
    return db, docs, make_engine(f"duckdb:///{db}")


def time_whole_stage(source: Path, docs_source: Path | None, work: Path) -> None:
    """`run_quality_stage` as the asset calls it, on a copy of `source`: its wall and CPU seconds, GX's import
    included (this process has not imported it)."""
    import crm_pipeline.definitions  # noqa: F401  (loaded before the stage runs, as in a pipeline run: not timed)
    from crm_pipeline.quality.stage import run_quality_stage

    db, docs, engine = fresh_copy(source, docs_source, work)
    wall: dict[str, float] = {}
    CPU.clear()
    with clocked(wall, "stage"):
        report = run_quality_stage(engine, hold_share=0.05, docs_dir=docs, now=datetime.now(timezone.utc))
    print(f"{source.name}: run_quality_stage, {sum(t.rows for t in report.typed):,} rows typed; wall "
          f"{wall['stage']:.2f} s, CPU {CPU['stage']:.2f} s; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    engine.dispose()
    db.unlink(missing_ok=True)
    shutil.rmtree(docs, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--root", type=Path, default=Path("bench/out"))
    parser.add_argument("--step", choices=["full", "drop", "both", "drop-whole"], default="both",
                        help="drop-whole: the drop through run_quality_stage in one call (no parts)")
    parser.add_argument("--statements", type=int, default=12)
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    paths = prepare(args.root, args.people)
    if "great_expectations" in sys.modules:  # preparing ran the stage: time in a fresh process (GX's import counts)
        import subprocess

        sys.exit(subprocess.run([sys.executable, *sys.argv]).returncode)
    work = args.root / f"qdrop_{args.people}_work"
    if args.step in ("full", "both"):
        time_stage(paths["ingested"], None, work, args.statements)
    if args.step in ("drop", "both"):
        time_stage(paths["dropped"], paths["docs"], work, args.statements)
    if args.step == "drop-whole":
        time_whole_stage(paths["dropped"], paths["docs"], work)


if __name__ == "__main__":
    main()
