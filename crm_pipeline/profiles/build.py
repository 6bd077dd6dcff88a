"""`build_profiles`: golden records, the 360 profile and the timeline as of one day, in one transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from pathlib import Path

import sqlalchemy as sa

from crm_pipeline.profiles import incremental
from crm_pipeline.profiles.browse import build_browse_daily, contact_browse_daily, create_browse_table
from crm_pipeline.profiles.daily import build_contact_daily
from crm_pipeline.profiles.profile360 import attach_scoring, build_profile_360
from crm_pipeline.profiles.scratch import create_new_scratch, create_scratch, create_window_scratch, drop_scratch
from crm_pipeline.profiles.slices import event_slices
from crm_pipeline.profiles.sql import BROWSED, WHOLE, WINDOWED, as_of_params
from crm_pipeline.profiles.survivorship import build_golden_records, load_rules
from crm_pipeline.profiles.timeline import build_timeline
from crm_pipeline.step_clock import StepClock
from crm_pipeline.warehouse.profile_schema import create_profile_tables, unordered_writes


class _Steps(StepClock):
    """The build's step clock, telling `on_step(name, seconds)` of each step as it finishes."""

    def __init__(self, on_step: Callable[[str, float], None] | None) -> None:
        super().__init__()
        self.on_step = on_step

    def run(self, name: str, fn, *args):
        result = super().run(name, fn, *args)
        if self.on_step is not None:
            self.on_step(name, self.steps[name])
        return result


def build_profiles(engine: sa.Engine, *, as_of: dt.date, survivorship_file: str | Path | None = None,
                   full_refresh: bool = False, on_step: Callable[[str, float], None] | None = None) -> dict:
    """Bring `golden_records`, `profile_360`, `profile_360_brand`, `timeline` (and `contact_daily`) to `as_of`.

    Reads the staging tables and `identity_map`; ignores everything after the end of `as_of`
    (UTC). Incremental unless `full_refresh` (or a first build, an earlier as-of day, changed
    rules, a new state table: see `incremental`): only the contacts a drop touched or the new day
    moved are rewritten, most by taking in their new records and the records dated into the day
    (no step reads the history of their events), and the result equals a full rebuild. The survivorship rules are validated
    before any SQL runs. One transaction (the recomputed contacts' rows written by difference, see
    `rewrite`), so a re-run gives identical tables and a failure leaves the previous build in place. Returns figures for
    the asset's metadata: `mode`, `contacts_recomputed` and why. `on_step(name, seconds)` hears of each
    step as it finishes (a full build at 1M people runs for minutes).
    """
    rules = load_rules(survivorship_file)
    key = incremental.rules_key(rules)
    params = as_of_params(as_of)
    clock = _Steps(on_step)

    create_profile_tables(engine)
    new_state = contact_browse_daily.name if create_browse_table(engine) else ""
    with engine.connect() as conn, unordered_writes(conn), conn.begin():
        plan = incremental.plan_build(conn, as_of, key, full_refresh=full_refresh, new_state=new_state)
        full, due = plan.full, {}
        if not full:
            due = clock.run("changes", incremental.select_recompute, conn, plan, as_of)
            if plan.previous_as_of != as_of:
                clock.run("advance_day", incremental.advance_day, conn, as_of)
        recomputed = None if full else incremental.recompute_count(conn)
        rebuilt_whole = browse_only = windows_only = None
        slices = [(None, None)]
        # the previous build's day end, when the day moved: records dated from it on join the timelines
        since = None if full or plan.previous_as_of == as_of else as_of_params(plan.previous_as_of)["as_of_end"]
        if full or recomputed:
            rebuilt_whole = None if full else incremental.recompute_count(conn, WHOLE)
            browse_only = None if full else incremental.recompute_count(conn, BROWSED)
            windows_only = None if full else incremental.recompute_count(conn, WINDOWED)
            whole = full or rebuilt_whole > 0
            clock.run("scratch", partial(create_scratch, full=full, whole=whole), conn, params)
            if not full:
                clock.run("new_records", create_new_scratch, conn, params)
            if since is not None:
                clock.run("day_records", create_window_scratch, conn, params, since)
            slices = event_slices(conn)  # contact ranges the daily counts are summed in, in turn
            clock.run("contact_daily", partial(build_contact_daily, full=full, whole=whole, slices=slices), conn)
            clock.run("browse_daily", partial(build_browse_daily, full=full, whole=whole), conn)
            clock.run("golden_records", partial(build_golden_records, full=full), conn, params, rules)
            clock.run("profile_360", partial(build_profile_360, full=full), conn, params)
            clock.run("timeline", partial(build_timeline, full=full, whole=whole, since=since), conn, params)
            drop_scratch(conn)
        if not full and plan.previous_as_of != as_of:
            attach_scoring(conn, as_of)  # kept rows lost the old day's scores; the new day's may exist already
        clock.run("sources", partial(incremental.remember_sources, full=full), conn)
        figures = {name: conn.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one() for name in
                   ("profile_360", "profile_360_brand", "golden_records", "timeline")}
        if full:
            recomputed = figures["profile_360"]
        reason = plan.reason if full else ", ".join(f"{k} {v}" for k, v in due.items())
        incremental.log_build(conn, as_of, plan, reason, recomputed, key)
        incremental.drop_plan_tables(conn)
    return {
        "as_of": as_of.isoformat(),
        "mode": "full" if full else "incremental",
        "reason": reason,
        "contacts_recomputed": int(recomputed),
        "contacts_by_reason": due,
        # of the contacts recomputed, those rebuilt from all their records (the rest took in their new records)
        "contacts_rebuilt_whole": int(recomputed if full else rebuilt_whole or 0),
        # of the contacts recomputed, those with new web events only: their browse figures alone are set
        "contacts_browse_only": int(browse_only or 0),
        # ... and those due only to opens or clicks leaving a window: their engagement counts alone are set
        "contacts_windows_only": int(windows_only or 0),
        "contacts_profiled": int(figures["profile_360"]),
        "contact_brand_rows": int(figures["profile_360_brand"]),
        "golden_values": int(figures["golden_records"]),
        "timeline_rows": int(figures["timeline"]),
        # contact ranges the daily counts were summed in, one at a time (`slices`)
        "contact_slices": len(slices),
        "seconds": clock.seconds,
        "step_seconds": clock.steps,
    }
