"""`build_profiles`: golden records, the 360 profile and the timeline as of one day, in one transaction."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from crm_pipeline.profiles.profile360 import build_profile_360
from crm_pipeline.profiles.scratch import create_scratch, drop_scratch
from crm_pipeline.profiles.sql import as_of_params
from crm_pipeline.profiles.survivorship import build_golden_records, load_rules
from crm_pipeline.profiles.timeline import build_timeline
from crm_pipeline.step_clock import StepClock
from crm_pipeline.warehouse.profile_schema import create_profile_tables


def build_profiles(engine: sa.Engine, *, as_of: dt.date, survivorship_file: str | Path | None = None) -> dict:
    """Rebuild `golden_records`, `profile_360`, `profile_360_brand` and `timeline` as of `as_of`.

    Reads the staging tables and `identity_map`; ignores everything after the end of `as_of`
    (UTC). The survivorship rules are validated before any SQL runs. All four tables are
    replaced in one transaction (delete-then-insert), so a re-run gives identical tables and
    a failure leaves the previous build in place. Returns figures for the asset's metadata.
    """
    rules = load_rules(survivorship_file)
    params = as_of_params(as_of)
    clock = StepClock()

    create_profile_tables(engine)
    with engine.begin() as conn:
        clock.run("scratch", create_scratch, conn, params)
        golden = clock.run("golden_records", build_golden_records, conn, params, rules)
        contacts = clock.run("profile_360", build_profile_360, conn, params)
        rows = clock.run("timeline", build_timeline, conn, params)
        drop_scratch(conn)
        brand_rows = conn.execute(sa.text("SELECT COUNT(*) FROM profile_360_brand")).scalar_one()
    return {
        "as_of": as_of.isoformat(),
        "contacts_profiled": int(contacts),
        "contact_brand_rows": int(brand_rows),
        "golden_values": int(golden),
        "timeline_rows": int(rows),
        "seconds": clock.seconds,
        "step_seconds": clock.steps,
    }
