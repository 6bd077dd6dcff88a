"""The data side of bench/e2e.py: the raw-load floor and the 1% drop, both plain DuckDB on the landing files."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from datetime import date, datetime, time, timezone
from pathlib import Path

from crm_pipeline.contract.layout import classify

_READERS = {
    "csv": "read_csv('{p}', all_varchar=true, header=true)",
    "csv.gz": "read_csv('{p}', all_varchar=true, header=true)",
    "jsonl": "read_json('{p}', format='newline_delimited')",
    "parquet": "read_parquet('{p}')",
}
# An ISO timestamp in UTC as brand_a writes them; the drop moves its rows to the drop day at the same time of day.
_UTC_ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"


def landing_files(landing: Path) -> dict[str, list[Path]]:
    """Every accepted landing file, by entity."""
    by_entity: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        place = classify(path.relative_to(landing).as_posix())
        if place.accepted:
            by_entity[place.entity].append(path)
    return by_entity


def raw_load_floor(landing: Path, db: Path) -> int:
    """Read every landing file into one all-VARCHAR DuckDB table per entity and nothing else; returns rows."""
    import duckdb

    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    rows = 0
    try:
        for entity, paths in landing_files(landing).items():
            parts = []
            for p in paths:
                reader = _READERS[classify(p.relative_to(landing).as_posix()).format].format(p=p.as_posix())
                parts.append(f"SELECT COLUMNS(*)::VARCHAR FROM {reader}")
            con.execute(f"CREATE TABLE raw_{entity} AS " + " UNION ALL BY NAME ".join(parts))
            rows += con.execute(f"SELECT COUNT(*) FROM raw_{entity}").fetchone()[0]
    finally:
        con.close()
        db.unlink(missing_ok=True)
    return rows


def total_rows(data: Path) -> int:
    """Rows in the generated landing folder, from the generator's truth/files.csv."""
    with open(data / "truth" / "files.csv", newline="", encoding="utf-8") as f:
        return sum(int(r["rows"]) for r in csv.DictReader(f))


def write_drop(landing: Path, rows: int, day: date, brand: str = "brand_a") -> Path:
    """A new web-events file of `rows` valid rows for `day`: existing visitors' events (a deterministic sample of
    the brand's own web events, so cookies, logins and products are real) under new event ids, moved to `day`
    at their own time of day. New bytes and new keys, so the pipeline loads every row as new.

    Only events that were valid where they first landed are copied: the generator writes some events dated after
    the UTC day their file was written (quarantined as in the future); moved to `day`, such a copy would become valid, and a
    login the pipeline never accepted would join two existing contacts (17 merges at 1M), which no real repeat
    visit does."""
    import duckdb

    paths = sorted((landing / brand / "web_events").glob("*.csv"))
    sources = [p.as_posix() for p in paths]
    written_at = [value for p in paths for value in (p.as_posix(), p.stat().st_mtime)]
    file_written = ", ".join("(?, ?)" for _ in paths)
    out = landing / brand / "web_events" / f"web_events_{day.isoformat()}_drop.csv"
    con = duckdb.connect()
    try:
        con.execute(f"""
            COPY (
              SELECT printf('aw_d{day:%Y%m%d}_%09d', ROW_NUMBER() OVER (ORDER BY hash(event_id), event_id)) AS event_id,
                     cookie_id, session_id, customer_id, email, event_type, url, sku,
                     strftime(DATE '{day.isoformat()}' + CAST(ts AS TIME), '%Y-%m-%dT%H:%M:%SZ') AS occurred_at
              FROM (SELECT *, try_strptime(occurred_at, '%Y-%m-%dT%H:%M:%SZ') AS ts
                    FROM read_csv(?, all_varchar=true, header=true, union_by_name=true, filename=true)) e
              JOIN (VALUES {file_written}) AS w(path, written_epoch) ON w.path = e.filename
              WHERE cookie_id <> '' AND event_type IN ('page_view', 'product_view', 'add_to_cart', 'search', 'checkout')
                AND regexp_full_match(occurred_at, '{_UTC_ISO}') AND ts IS NOT NULL
                AND epoch(ts) < (floor(w.written_epoch / 86400) + 1) * 86400   -- quality's rule: by the end of its UTC day
              ORDER BY hash(event_id), event_id
              LIMIT {int(rows)}
            ) TO '{out.as_posix()}' (HEADER, DELIMITER ',')
        """, [sources, *written_at])
    finally:
        con.close()
    written = datetime.combine(day, time(23, 59, 59), tzinfo=timezone.utc).timestamp()
    os.utime(out, (written, written))   # exported at the end of its day, as the generator dates its files
    return out
