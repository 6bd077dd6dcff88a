"""Which contacts a prediction run computes the features of from their records, and the memory that lets it know.

A run is full when asked (`full_refresh`), on a warehouse's first run, when the as-of day moves
backwards, when the warehouse has no profile builds to follow, and when a profile build since the last
run was full (the log of the builds, `profile_changes`, is kept until this stage and scoring have both
read it). Models trained in the run do not make it full (their training pass reads the classifier's
sampled buyers only), but then every buyer is scored again, from a day table that holds everyone. Otherwise the
features of a contact are computed from its records only when:
- the profile builds since the last run recomputed it for a changed record, order line or catalogue
  (`profile_changes`, the reasons the scoring stage follows too), or for a record dated into a new day;
- it has a record dated after the last run's day up to today (`new_day`, from `contact_daily`).
On a new day every other contact is carried from the last run's features: its sums stay, its day counts
move by the days between, its 30- and 90-day windows are summed again from `contact_daily`
(`features.carry_to_day`), and every buyer is scored again (BG/NBD's age T moves for everyone, and the
classifiers read the moved features) from a narrow read of the day's table. On the same day (a drop)
only the recomputed contacts' rows are rewritten and scored; the others keep theirs, and only the day's
ranks (RFM, risk bands, lift) are redone over everyone. The stored models are checked against the
training inputs without reading them when no record changed since the last run, else by recomputing
the recomputed contacts' parts of the digest (`cadence.training_fingerprint`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from crm_pipeline.profiles import incremental as profile_changes
from crm_pipeline.warehouse.predict_schema import predict_builds

RECOMPUTE = "tmp_predict_recompute"
RECOMPUTE_MAP = "tmp_predict_recompute_map"     # their identity rows: the staged tables are probed against these
# The profile builds' reasons that mean a contact's records changed (`windows` only moved its 360 figures).
REASONS = profile_changes.RECORD_REASONS


@dataclass(frozen=True)
class Plan(profile_changes.FollowerPlan):
    previous_trained_on: dt.date | None = None
    previous_fingerprint: str | None = None

    def known_fingerprint(self, conn: sa.Connection, training_day: dt.date) -> str | None:
        """The training inputs' digest without reading them, when the last run checked it for the same training day
        and no record changed since (records dated after that day are not its inputs); else None."""
        if self.full or self.previous_trained_on != training_day:
            return None
        changed = conn.execute(sa.text(
            "SELECT COUNT(*) FROM profile_changes WHERE build_number > :after AND build_number <= :upto "
            "AND reason IN ('records', 'order_lines', 'catalogue')"),
            {"after": -1 if self.previous_profile_build is None else self.previous_profile_build,
             "upto": self.profile_build}).scalar_one()
        return None if changed else self.previous_fingerprint


def _has(conn: sa.Connection, table: str) -> bool:
    return sa.inspect(conn).has_table(table)


def plan_run(conn: sa.Connection, as_of: dt.date, *, full_refresh: bool) -> Plan:
    """Full or incremental, whether or not the run trains its models."""
    last = conn.execute(sa.select(predict_builds).order_by(predict_builds.c.build_number.desc()).limit(1)).first()
    following = _has(conn, "profile_builds") and _has(conn, "profile_changes") and _has(conn, "contact_daily")
    before = last.profile_build if last is not None else None
    since = profile_changes.changes_since(conn, before) if following else None
    previous = (last.as_of if last is not None else None, before, since.latest if since else None,
                last.trained_on if last is not None else None, last.input_fingerprint if last is not None else None)
    why = profile_changes.follower_full_because(previous[0], as_of, full_refresh=full_refresh)
    if why:
        return Plan(True, why, *previous)
    if since is None or since.latest is None:
        return Plan(True, "no profile build to follow", *previous)
    if since.full:
        return Plan(True, "the profiles were rebuilt in full", *previous)
    return Plan(False, "incremental", *previous)


def select_recompute(conn: sa.Connection, plan: Plan, as_of: dt.date) -> dict[str, int]:
    """Create `tmp_predict_recompute` (contact_id) for an incremental run, and `tmp_predict_recompute_map` (their
    identity rows); returns contacts per reason."""
    drop_plan_tables(conn)
    counts = profile_changes.changed_contacts(conn, RECOMPUTE, plan.previous_profile_build, plan.profile_build,
                                              REASONS)
    if as_of > plan.previous_as_of:
        params = {"previous": plan.previous_as_of, "as_of": as_of}
        counts["dated_since_last_run"] = conn.execute(sa.text(
            "SELECT COUNT(DISTINCT contact_id) FROM contact_daily WHERE day > :previous AND day <= :as_of"),
            params).scalar_one()
        conn.execute(sa.text(f"INSERT INTO {RECOMPUTE} (contact_id) SELECT DISTINCT contact_id FROM contact_daily "
                             f"WHERE day > :previous AND day <= :as_of "
                             f"AND contact_id NOT IN (SELECT contact_id FROM {RECOMPUTE})"), params)
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {RECOMPUTE_MAP} AS SELECT m.entity, m.brand, m.source_key, "
                         f"m.contact_id FROM identity_map m JOIN {RECOMPUTE} r ON r.contact_id = m.contact_id"))
    return counts


def recompute_count(conn: sa.Connection) -> int:
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM {RECOMPUTE}")).scalar_one()


def log_run(conn: sa.Connection, as_of: dt.date, plan: Plan, recomputed: int, rescored: int, trained_on: dt.date,
            fingerprint: str) -> None:
    conn.execute(sa.text(
        "INSERT INTO predict_builds (build_number, as_of, mode, reason, contacts_recomputed, contacts_rescored, "
        "profile_build, trained_on, input_fingerprint) SELECT COALESCE(MAX(build_number), 0) + 1, :as_of, :mode, "
        ":reason, :recomputed, :rescored, :profile_build, :trained_on, :fingerprint FROM predict_builds"),
        {"as_of": as_of, "mode": "full" if plan.full else "incremental", "reason": plan.reason,
         "recomputed": recomputed, "rescored": rescored, "profile_build": plan.profile_build,
         "trained_on": trained_on, "fingerprint": fingerprint})


def drop_plan_tables(conn: sa.Connection) -> None:
    for name in (RECOMPUTE, RECOMPUTE_MAP):
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
