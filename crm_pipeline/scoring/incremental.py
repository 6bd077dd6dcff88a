"""Which contacts' daily aggregates a scoring run rewrites: those the profile builds since its last run redid.

A run is full when asked (`full_refresh`), on a warehouse's first run, when the as-of day moves
backwards, when the scoring settings changed and when a profile build since the last run was full
(it may have changed any contact's timeline). Otherwise it rewrites only the aggregates of the
contacts the incremental profile builds since the last run recomputed (`profile_changes`):
- touched contacts (`records`, `order_lines`, `catalogue`): the profile build compared
  `identity_map`, the order lines and the catalogue with what it read before and rewrote their
  timeline; the aggregates read that timeline and the same staged rows;
- contacts with a record dated into a build's new day (`new_day`): the build added those records
  to their timeline. The builds' days rather than the run's: the aggregates hold what the timeline
  held when they were read, so a run ahead of the profile build catches up after it.
Each comes with the first day any of those builds changed its timeline on (`since_day`; none when one
rebuilt it whole): only its days from there are summed again. Contacts a build redid only because opens
or clicks left a 30/90/365-day window (`windows`) keep their aggregates: their timeline did not change.
The scoring stage keeps no lineage copy of its own.
The day's tables are then derived from the aggregates for everyone, as a full run derives them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json

import sqlalchemy as sa

from crm_pipeline.profiles import incremental as profile_changes
from crm_pipeline.scoring.config import ScoringConfig
from crm_pipeline.scoring.daily import RECOMPUTE

# The profile builds' reasons that changed a contact's timeline (and so its aggregates).
REASONS = profile_changes.RECORD_REASONS
Plan = profile_changes.FollowerPlan


def config_key(config: ScoringConfig) -> str:
    """A digest of the scoring settings: a change redoes every contact (the aggregates follow the points,
    channels and attribution; the rows carried forward follow every threshold and lookback)."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_run(conn: sa.Connection, as_of: dt.date, key: str, *, full_refresh: bool) -> Plan:
    last = conn.execute(sa.text("SELECT as_of, config_key, profile_build FROM scoring_builds "
                                "ORDER BY build_number DESC LIMIT 1")).first()
    before = last.profile_build if last is not None else None
    since = profile_changes.changes_since(conn, before)
    previous = (last.as_of if last is not None else None, before, since.latest)
    why = profile_changes.follower_full_because(previous[0], as_of, full_refresh=full_refresh)
    if why:
        return Plan(True, why, *previous)
    if key != last.config_key:
        return Plan(True, "scoring settings changed", *previous)
    if since.full:
        return Plan(True, "the profiles were rebuilt in full", *previous)
    return Plan(False, "incremental", *previous)


def select_recompute(conn: sa.Connection, plan: Plan) -> dict[str, int]:
    """Create `tmp_scoring_recompute` (contact_id, since_day: the first day to redo, NULL for all) for an
    incremental run; returns contacts per reason."""
    drop_plan_tables(conn)
    return profile_changes.changed_contacts(conn, RECOMPUTE, plan.previous_profile_build, plan.profile_build,
                                            REASONS, since=True)


def recompute_count(conn: sa.Connection) -> int:
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM {RECOMPUTE}")).scalar_one()


def log_run(conn: sa.Connection, as_of: dt.date, plan: Plan, reason: str, recomputed: int, key: str,
            timeline_as_of: dt.date | None) -> None:
    conn.execute(sa.text(
        "INSERT INTO scoring_builds (build_number, as_of, mode, reason, contacts_recomputed, config_key, "
        "timeline_as_of, profile_build) SELECT COALESCE(MAX(build_number), 0) + 1, :as_of, :mode, :reason, :n, :key, "
        ":timeline, :profile_build FROM scoring_builds"),
        {"as_of": as_of, "mode": "full" if plan.full else "incremental", "reason": reason, "n": recomputed,
         "key": key, "timeline": timeline_as_of, "profile_build": plan.profile_build})
    profile_changes.forget_changes(conn, plan.profile_build)


def drop_plan_tables(conn: sa.Connection) -> None:
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {RECOMPUTE}"))
