"""Which contacts an audience run recomputes, and the memory that lets it know.

A run of the same day as the last run (a drop) recomputes the memberships of the contacts whose inputs changed
since, and compares only theirs with the stored day; every other contact's rows stay. A run is whole when asked
(`full_refresh`), on the first run, on another day than the last run's (a new day moves every window), when the
audience definitions changed (`config_key`), when a rule has an event condition (it reads the staged events,
which `audience_inputs` does not follow), when the day's planned audiences differ from the stored ones (a new
brand or RFM segment), and when most contacts changed (the whole computation is then cheaper).

What changed is found here, not in the upstream logs: `profile_changes` is forgotten once predictions and
scoring took it in, and scoring and predictions redo ranks (`engagement_top_percent`, RFM, risk bands,
`clv_top_percent`) over everyone. So each run keeps, per base row (a contact across brands, or a contact and
brand), what decides its memberships (`audience_inputs`): as bits, every profile and cross-brand rule's outcome on
the row and its opt-out, and across brands the suppression, the prediction row's presence and every predictive
rule's outcome; across brands also copies of the contact details members carry and of the RFM segment. A rank
shifting by a hair for everyone changes the bits of the contacts crossing a threshold only. A contact with a row
changed, added or gone (erased, merged away) is recomputed with all its rows, so its cross-brand counts are whole.
The next run's comparison reads the stored rows and this run's in one pass (`find_changed`) and writes only the
rows that differ, after a whole run too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa

from crm_pipeline.audiences.compile import Compiler
from crm_pipeline.audiences.config import AudienceConfig, _has_event
from crm_pipeline.warehouse.audience_schema import audience_inputs, audience_runs

# Bump when the kept inputs change meaning: the next run then counts as changed definitions and runs whole.
DIGEST_VERSION = "1"
DIFF = "tmp_audience_inputs_diff"
CHANGED = "tmp_audience_changed"
# A drop recomputing more than this share of the contacts runs whole: the narrowing would only add to it.
MOST = 0.5


@dataclass(frozen=True)
class Plan:
    full: bool
    reason: str


def config_key(config: AudienceConfig) -> str:
    """A digest of the audience definitions in force (the parsed rules, so comments and key order do not count)."""
    return hashlib.sha256(f"{DIGEST_VERSION}|{config!r}".encode()).hexdigest()[:16]


def has_events(config: AudienceConfig) -> bool:
    """Whether any rule reads the staged events (what `audience_inputs` does not follow)."""
    rules = [a.rule for a in config.audiences if a.rule is not None]
    return any(_has_event(r) for r in (*rules, config.very_active, config.inactive) if r is not None)


def plan_run(conn: sa.Connection, as_of: dt.date, key: str, config: AudienceConfig, *, full_refresh: bool) -> Plan:
    """Whole or incremental, and why, from the last run's log (the day's plan and size are checked later)."""
    last = conn.execute(sa.select(audience_runs.c.as_of, audience_runs.c.config_key)
                        .order_by(audience_runs.c.run_number.desc()).limit(1)).first()
    if full_refresh:
        return Plan(True, "full refresh requested")
    if last is None:
        return Plan(True, "first run")
    if last.as_of != as_of:
        return Plan(True, f"a new day (last run as of {last.as_of})")
    if has_events(config):
        return Plan(True, "a rule reads the staged events")
    if last.config_key != key:
        return Plan(True, "audience definitions changed")
    return Plan(False, "incremental")


def same_plan(conn: sa.Connection, as_of: dt.date, planned: list[dict]) -> bool:
    """Whether the day's stored sizes name the audiences (and notes) planned now."""
    stored = set(conn.execute(sa.text("SELECT audience, note FROM audience_sizes WHERE as_of = :d")
                              .bindparams(sa.bindparam("d", type_=sa.Date())), {"d": as_of}).all())
    return stored == {(p["name"], p["note"]) for p in planned}


def _bits(conditions: list) -> list[sa.ColumnElement]:
    """The conditions as BIGINT bit masks, 62 to a mask (sums of distinct powers of two: never overflow)."""
    masks = []
    for start in range(0, len(conditions), 62):
        chunk = conditions[start:start + 62]
        masks.append(sum((sa.case((c, sa.literal(2 ** i, sa.BigInteger())), else_=sa.literal(0, sa.BigInteger()))
                          for i, c in enumerate(chunk)), sa.literal(0, sa.BigInteger())))
    return masks or [sa.literal(0, sa.BigInteger())]


# The brand of the rows across brands, as a column: per-contact facts join those rows on (contact_id, brand), an
# equi-join. With `b.brand = ''` in the ON clause instead DuckDB joined by nested loops (minutes at 1M contacts).
_ACROSS = sa.literal("", sa.String()).label("brand_key")


def _on_row_across_brands(facts: sa.Subquery, base: sa.FromClause) -> sa.ColumnElement:
    return sa.and_(facts.c.contact_id == base.c.contact_id, facts.c.brand_key == base.c.brand)


def inputs_select(config: AudienceConfig, as_of: dt.date, base: sa.FromClause,
                  predictions: sa.FromClause | None, suppressed: str) -> sa.Select:
    """contact_id, brand, outcomes, details of every row of `base` (the base rows with the fields the rules read,
    `opted_out` and, across brands, the member details `DETAILS`), see the module docstring. Outcomes are bits
    (evaluating the rules costs less than hashing them); the details and RFM segment copies (on the row across
    brands), the same on every backend."""
    profile = Compiler(base, as_of=as_of)
    rules = [a.rule for a in config.audiences if a.source == "profile" and a.type == "rule"]
    if any(a.type == "cross_brand" for a in config.audiences):
        rules += [config.very_active, config.inactive]
    conditions = [profile.compile(r) for r in rules] + [base.c.opted_out != 0]
    table = sa.table(suppressed, sa.column("contact_id", sa.String()))
    listed = sa.select(table.c.contact_id, _ACROSS).group_by(table.c.contact_id).subquery("suppressed")
    joined = base.outerjoin(listed, _on_row_across_brands(listed, base))
    conditions.append(listed.c.contact_id.is_not(None))
    details = [base.c[c] for c in DETAILS]
    if predictions is not None:
        predictions = sa.select(*predictions.c, _ACROSS).subquery("predicted")
        joined = joined.outerjoin(predictions, _on_row_across_brands(predictions, base))
        predicted = Compiler(predictions, as_of=as_of)
        conditions.append(predictions.c.contact_id.is_not(None))
        conditions += [predicted.compile(a.rule) for a in config.audiences
                       if a.source == "predictions" and a.rule is not None]
        details.append(predictions.c.rfm_segment)
    else:
        details.append(sa.cast(sa.null(), sa.String()).label("rfm_segment"))
    masks = _bits(conditions)
    more = None  # more conditions than a BIGINT's bits: the other masks as text
    for mask in masks[1:]:
        text = sa.cast(mask, sa.String())
        more = text if more is None else more + sa.literal(",") + text
    return sa.select(base.c.contact_id, base.c.brand, masks[0].label("outcomes"),
                     (more if more is not None else sa.cast(sa.null(), sa.String())).label("more_outcomes"),
                     *(d.label(d.name) for d in details)).select_from(joined)


# The contact details a member row carries (from profile_360): a change rewrites the contact's rows.
DETAILS = ("email", "phone", "first_name", "last_name")
# compared as they are (NULL equal to NULL), beside the first mask of outcomes
_KEPT = ("more_outcomes", *DETAILS, "rfm_segment")
_VALUES = ("outcomes", *_KEPT)
# per value column whether it changed, so the UPDATE sets only the columns some row changed (a drop moves outcomes;
# DuckDB rewrites each updated column of the row groups it touches)
_DIFF = sa.Table(DIFF, sa.MetaData(), *[sa.Column(c.name, c.type) for c in audience_inputs.columns],
                 sa.Column("action", sa.String()), *[sa.Column(f"changed_{c}", sa.Integer()) for c in _VALUES],
                 prefixes=["TEMPORARY"])


def find_changed(conn: sa.Connection, now: sa.Select) -> tuple[int, int]:
    """Create `DIFF` (the rows of `now` whose outcomes or details differ from the last run's, or that only one side
    has, with the action that brings `audience_inputs` to `now`) and `CHANGED` (their contacts), in one pass: this
    run's rows are never stored whole. Returns (changed contacts, stored contacts)."""
    for name in (DIFF, CHANGED):
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    n, s = now.subquery("n"), audience_inputs.alias("s")
    differs = sa.or_(n.c.contact_id.is_(None), s.c.contact_id.is_(None), n.c.outcomes != s.c.outcomes,
                     *(n.c[c].is_distinct_from(s.c[c]) for c in _KEPT))
    action = sa.case((s.c.contact_id.is_(None), "insert"), (n.c.contact_id.is_(None), "delete"), else_="update")
    flags = [sa.case((n.c[c].is_distinct_from(s.c[c]), 1), else_=0) for c in _VALUES]
    rows = sa.select(sa.func.coalesce(n.c.contact_id, s.c.contact_id), sa.func.coalesce(n.c.brand, s.c.brand),
                     *(n.c[c] for c in _VALUES), action, *flags).select_from(
        n.join(s, sa.and_(s.c.contact_id == n.c.contact_id, s.c.brand == n.c.brand), full=True)).where(differs)
    _DIFF.create(conn)
    conn.execute(sa.insert(_DIFF).from_select([c.name for c in _DIFF.c], rows))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {CHANGED} AS SELECT DISTINCT contact_id FROM {DIFF}"))
    changed = conn.execute(sa.text(f"SELECT COUNT(*) FROM {CHANGED}")).scalar_one()
    stored = conn.execute(sa.text("SELECT COUNT(*) FROM audience_inputs WHERE brand = ''")).scalar_one()
    return int(changed), int(stored)


def remember_inputs(conn: sa.Connection, *, kept: bool) -> None:
    """Bring `audience_inputs` to this run's rows by the difference `find_changed` found (an UPDATE of a changed
    row, not a delete and insert: cheaper on DuckDB's checkpoint). Without them (`kept` false: an event rule)
    the table is emptied, so no later drop compares against stale rows."""
    if not kept:
        conn.execute(audience_inputs.delete())
        return
    keys = "n.contact_id = audience_inputs.contact_id AND n.brand = audience_inputs.brand"
    changed = conn.execute(sa.text(f"SELECT {', '.join(f'MAX(changed_{c})' for c in _VALUES)} FROM {DIFF} "
                                   "WHERE action = 'update'")).one()
    values = [c for c, flag in zip(_VALUES, changed) if flag]
    if values:
        conn.execute(sa.text(f"UPDATE audience_inputs SET {', '.join(f'{c} = n.{c}' for c in values)} FROM {DIFF} n "
                             f"WHERE n.action = 'update' AND {keys}"))
    listed = ", ".join(("contact_id", "brand", *_VALUES))
    conn.execute(sa.text(f"INSERT INTO audience_inputs ({listed}) SELECT {listed} FROM {DIFF} WHERE action = 'insert'"))
    conn.execute(sa.text(f"DELETE FROM audience_inputs WHERE (contact_id, brand) IN "
                         f"(SELECT contact_id, brand FROM {DIFF} WHERE action = 'delete')"))


def log_run(conn: sa.Connection, as_of: dt.date, plan: Plan, recomputed: int, key: str) -> None:
    conn.execute(sa.text(
        "INSERT INTO audience_runs (run_number, as_of, mode, reason, contacts_recomputed, config_key) "
        "SELECT COALESCE(MAX(run_number), 0) + 1, :as_of, :mode, :reason, :n, :key FROM audience_runs")
        .bindparams(sa.bindparam("as_of", type_=sa.Date())),
        {"as_of": as_of, "mode": "full" if plan.full else "incremental", "reason": plan.reason, "n": recomputed,
         "key": key})


def drop_scratch(conn: sa.Connection) -> None:
    for name in (DIFF, CHANGED):
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
