"""Identity on a warehouse that already holds it: a full resolution, a 1% drop, and a run with nothing new.

    python bench/identity_incremental.py [--people 100000] [--root bench/out]

Stages the generated data set (seed 11, as bench/e2e.py; not timed) in a landing folder of hard
links, then runs `resolve_identities` (with the Splink pass) three times, each in a child process
so that its peak memory is its own: a full resolution (`full_refresh`), the same after a 1% drop
of web events (bench/e2e.py's drop, staged first, not timed), again with nothing new, after 1,000
more events of visitors already known (no new node: the graph is not clustered again), and a full
refresh with nothing new.
Prints seconds, peak RSS, the run's mode, the nodes it clustered again (of all), what it changed, each
step's seconds (read, deterministic, probabilistic, ids and write) and the rounds its connected components took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import END_DATE, data_set, peak_rss_mb  # noqa: E402

SEED = 11


def _paths(root: Path, people: int) -> tuple[Path, Path]:
    work = root / f"identity_incremental_{people}"
    return work / "landing", work / "warehouse.duckdb"


def _stage(landing: Path, db: Path) -> float:
    from crm_pipeline.landing.ingest import ingest_folder
    from crm_pipeline.landing.scan import LandingFolder
    from crm_pipeline.quality.publish import publish
    from crm_pipeline.quality.typing_run import type_new_files
    from crm_pipeline.warehouse.engine import make_engine

    started, now = time.perf_counter(), datetime.now(timezone.utc)
    engine = make_engine(f"duckdb:///{db}")
    ingest_folder(engine, LandingFolder(landing), now=now)
    type_new_files(engine, now=now)
    publish(engine, hold_share=0.05)
    engine.dispose()
    return time.perf_counter() - started


def timed_resolution(engine, full_refresh: bool, on_step=None):
    """`resolve_identities` as the asset runs it (Splink's pass included), and its seconds; the engine disposed.
    `on_step(name, seconds)` hears of each step as it finishes (the asset logs them)."""
    from crm_pipeline.identity.config import load_identity_config
    from crm_pipeline.identity.probabilistic import match_people
    from crm_pipeline.identity.resolve import resolve_identities

    started = time.perf_counter()
    report = resolve_identities(engine, as_of=END_DATE, config=load_identity_config(), find_pairs=match_people,
                                full_refresh=full_refresh, on_step=on_step)
    seconds = time.perf_counter() - started
    engine.dispose()
    return report, seconds


def _resolve(db: Path, full_refresh: bool) -> dict:
    from crm_pipeline.warehouse.engine import make_engine

    report, seconds = timed_resolution(make_engine(f"duckdb:///{db}"), full_refresh)
    c = report.changes
    return {"seconds": round(seconds, 1), "peak_rss_gib": round(peak_rss_mb() / 1024, 2), "mode": report.mode,
            "records": report.records, "contacts": report.contacts, "records_added": c.records_added,
            "records_removed": c.records_removed, "records_reassigned": c.records_reassigned,
            "contacts_touched": c.contacts_touched, "created": c.contacts_created, "changed": c.contacts_changed,
            "retired": c.contacts_retired, "steps": _steps(report.seconds),
            "nodes": report.nodes, "nodes_recomputed": report.nodes_recomputed,
            "components_recomputed": report.components_recomputed,
            "component_rounds": dict(getattr(report, "rounds", {}))}


def _steps(marks: dict[str, float]) -> dict[str, float]:
    """Each step's own seconds from the report's cumulative marks (the last one, `total`, is the ids and write)."""
    steps, last = {}, 0.0
    for name, mark in marks.items():
        steps["ids and write" if name == "total" and len(marks) > 2 else name] = round(mark - last, 1)
        last = mark
    return steps


def _known_visitors(landing: Path, rows: int) -> None:
    """More events of visitors already known (rows of the 1% drop with no email, under new ids): no new node."""
    import duckdb

    folder = landing / "brand_a" / "web_events"
    drop, out = next(folder.glob("*_drop.csv")), folder / "web_events_known_visitors.csv"
    duckdb.sql(f"""COPY (SELECT 'known_' || event_id AS event_id, * EXCLUDE (event_id)
                         FROM read_csv('{drop.as_posix()}', all_varchar=true)
                         WHERE coalesce(email, '') = '' ORDER BY event_id LIMIT {int(rows)})
                   TO '{out.as_posix()}' (HEADER)""")
    stamp = drop.stat().st_mtime
    os.utime(out, (stamp, stamp))


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        step, landing, db = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
        if step == "stage":
            print(json.dumps({"seconds": round(_stage(landing, db), 1)}))
        else:
            print(json.dumps(_resolve(db, full_refresh=step == "full")))
        return
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--root", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    data = data_set(args.root, args.people, seed=SEED)
    landing, db = _paths(args.root, args.people)
    if landing.parent.exists():
        subprocess.run(["rm", "-rf", str(landing.parent)], check=True)
    for source in (data / "landing").rglob("*"):
        if source.is_file():
            target = landing / source.relative_to(data / "landing")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
    print(f"people={args.people:,}: staging (not timed) ...", flush=True)
    print("  staged in", _child("stage", str(landing), str(db))["seconds"], "s", flush=True)
    rows = []
    rows.append(("full", _child("full", str(landing), str(db))))
    print("  full:", rows[-1], flush=True)

    from bench._e2e_data import total_rows, write_drop

    write_drop(landing, total_rows(data) // 100, END_DATE)
    print("  drop staged in", _child("stage", str(landing), str(db))["seconds"], "s", flush=True)
    rows.append(("1% drop", _child("drop", str(landing), str(db))))
    print("  1% drop:", rows[-1], flush=True)
    rows.append(("no change", _child("again", str(landing), str(db))))
    print("  no change:", rows[-1], flush=True)
    _known_visitors(landing, 1000)
    print("  known visitors' events staged in", _child("stage", str(landing), str(db))["seconds"], "s", flush=True)
    rows.append(("1,000 events of known visitors", _child("known", str(landing), str(db))))
    print("  known visitors:", rows[-1], flush=True)
    rows.append(("full refresh, nothing new", _child("full", str(landing), str(db))))
    print("  full refresh, nothing new:", rows[-1], flush=True)

    print("\n| run | mode | seconds | peak RSS | nodes clustered again (of all) | records added / removed / reassigned "
          "| contacts touched (created, changed, retired) | steps (s) |")
    print("|---|---|---:|---:|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['mode']} | {r['seconds']} | {r['peak_rss_gib']} GiB | {r['nodes_recomputed']:,} "
              f"({r['components_recomputed']:,} contacts) of {r['nodes']:,} | {r['records_added']:,} / "
              f"{r['records_removed']:,} / {r['records_reassigned']:,} | {r['contacts_touched']:,} ({r['created']:,}, "
              f"{r['changed']:,}, {r['retired']:,}) | {r['steps']} {r.get('component_rounds') or ''} |")


if __name__ == "__main__":
    main()
