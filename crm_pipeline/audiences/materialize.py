"""Audience membership for one day: every configured audience, across all brands and per brand.

One transaction per run: a new day's snapshot in `audience_members` is inserted and its
`audience_history` (and that of the next snapshot day, if one exists, since its comparison point
changed) built; a re-run of a day (a drop) computes the members of the contacts whose inputs changed
since the day's last run only (`incremental`: the rest of the day stays as stored), writes only the
membership rows that changed and the history of those (audience, contact) pairs; `audience_sizes` is
replaced. Re-running a day gives the same rows. Every statement reads or deletes one day (the previous
snapshot day is found in the small `audience_sizes`), so a day costs the same however many days are kept.
The heavy work is SQL: one scratch table of profile rows (one across brands, brand '', plus one per
contact and brand, carrying only the fields the rules read and an `opted_out` flag), then ONE INSERT of
every audience's members (a UNION ALL of the compiled rules, consent applied per audience) joined to the
golden contact details, minus the suppression list.

Choices a reader relies on:
- Profile figures are read as they stand (the latest profile build); windows count from `as_of`.
- Email consent (`consent: email`, the default): a brand row is opted out when its latest
  subscription state is unsubscribed/bounced, or subscribed with an unsubscribe, bounce or
  complaint at or after the last subscribe (`profile_360_brand.email_consent` is false). Across
  brands (and for cross-brand and predictive audiences) opted out at ANY brand leaves a contact out.
- Predictive audiences read `predictions` rows whose as_of is the run's as_of; no table (or no
  `as_of`/`contact_id` column) = skipped with a note, size 0. Contacts need a profile row to be members.
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.audiences import incremental
from crm_pipeline.audiences.compile import Compiler, sa_type
from crm_pipeline.audiences.config import Audience, AudienceConfig, load_audiences
from crm_pipeline.audiences.incremental import DETAILS
from crm_pipeline.audiences.rules import PREDICTION_FIELDS, PROFILE_FIELDS, All, AnyOf, FieldCondition, Not
from crm_pipeline.audiences.sql import sha256_hex
from crm_pipeline.profiles import rewrite
from crm_pipeline.warehouse.audience_schema import (
    audience_history, audience_members, audience_sizes, create_audience_tables,
)
from crm_pipeline.warehouse.engine import is_postgresql
from crm_pipeline.warehouse.profile_schema import profile_360

ALL_BRANDS = ""  # brand_scope of audiences computed across all brands
_GOLDEN = ("email", "phone", "first_name", "last_name", "country", "region", "city", "postal_code", "birth_date")


def _later(a: str, b: str) -> str:
    return f"CASE WHEN {b} IS NULL OR {a} >= {b} THEN COALESCE({a}, {b}) ELSE {b} END"


_OPT_OUT_BRAND = ("CASE WHEN {r}.subscription_status IN ('unsubscribed', 'bounced') "
                  "OR ({r}.subscription_status = 'subscribed' AND NOT {r}.email_consent) THEN 1 ELSE 0 END")
# Per field: its expression on the across-brands row (p = profile_360, s = subscription roll-up)
# and on a brand row (r = profile_360_brand, p = profile_360). Names come from the allow-list only.
_OVERALL_EXPR = {f: f"p.{f}" for f in PROFILE_FIELDS}
_OVERALL_EXPR.update({
    "last_engagement_at": _later("p.last_open_at", "p.last_click_at"),
    "subscription_status": "CASE WHEN s.any_subscribed = 1 THEN 'subscribed' ELSE s.any_status END",
    "subscribed_date": "s.subscribed_date",
})
_BRAND_EXPR = {f: (f"p.{f}" if f in (*_GOLDEN, "brand_count") else f"r.{f}") for f in PROFILE_FIELDS}
_BRAND_EXPR["last_engagement_at"] = _later("r.last_open_at", "r.last_click_at")


def base_select(fields: list[str], *, contacts: str | None = None, details: bool = False) -> str:
    """Fixed SQL (field names from the allow-list, no user text): one row per contact across brands
    (brand '') and one per contact and brand, with only the fields the rules read; of the contacts in the
    table `contacts` only, when given; with `details` also the member details (`incremental.DETAILS`) across
    brands (NULL on brand rows)."""
    unknown = [f for f in fields if f not in PROFILE_FIELDS]
    if unknown:
        raise ValueError(f"not profile fields: {unknown}")
    overall = "".join(f", {_OVERALL_EXPR[f]} AS {f}" for f in fields)
    brand = "".join(f", {_BRAND_EXPR[f]} AS {f}" for f in fields)
    if details:
        overall += "".join(f", p.{c}" for c in DETAILS)
        brand += "".join(f", CAST(NULL AS VARCHAR) AS {c}" for c in DETAILS)
    brand_join = ("LEFT JOIN profile_360 p ON p.contact_id = r.contact_id"
                  if any(_BRAND_EXPR[f].startswith("p.") for f in fields) else "")

    def only(alias: str) -> str:
        return f" JOIN {contacts} x ON x.contact_id = {alias}.contact_id" if contacts else ""

    return f"""
WITH subs AS (
    SELECT b.contact_id,
           MAX(b.subscribed_date) AS subscribed_date,
           MAX(CASE WHEN b.subscription_status = 'subscribed' THEN 1 ELSE 0 END) AS any_subscribed,
           MAX(b.subscription_status) AS any_status,
           MAX({_OPT_OUT_BRAND.format(r="b")}) AS opted_out
    FROM profile_360_brand b{only("b")} GROUP BY b.contact_id
)
SELECT p.contact_id, '{ALL_BRANDS}' AS brand, COALESCE(s.opted_out, 0) AS opted_out{overall}
FROM profile_360 p{only("p")} LEFT JOIN subs s ON s.contact_id = p.contact_id
UNION ALL
SELECT r.contact_id, r.brand, {_OPT_OUT_BRAND.format(r="r")} AS opted_out{brand}
FROM profile_360_brand r{only("r")} {brand_join}
"""


def base_sql(fields: list[str], contacts: str | None = None) -> str:
    """The scratch table of `base_select`'s rows, laid out by brand (each scope's query reads one brand)."""
    return f"CREATE TEMPORARY TABLE tmp_audience_base AS {base_select(fields, contacts=contacts)} ORDER BY brand"


def _base_subquery(fields: list[str]) -> sa.Subquery:
    """Every base row with the member details, unmaterialized: what `incremental.inputs_select` reads."""
    columns = [sa.column("contact_id", sa.String()), sa.column("brand", sa.String()),
               sa.column("opted_out", sa.Integer()), *[sa.column(f, sa_type(PROFILE_FIELDS[f])) for f in fields],
               *[sa.column(c, sa.String()) for c in DETAILS]]
    return sa.text(base_select(fields, details=True)).columns(*columns).subquery("b")


BASE = sa.table("tmp_audience_base", sa.column("contact_id", sa.String()), sa.column("brand", sa.String()),
                sa.column("opted_out", sa.Integer()), *[sa.column(n, sa_type(k)) for n, k in PROFILE_FIELDS.items()])

_PREDICTION_NEEDS = ("as_of", "contact_id")
# The day's predictions with the fields rules read, computed once: each predictive audience's branch of the
# members' INSERT read the ranked subquery again (a window over every scored contact, a dozen times a run).
PREDICTIONS_DAY = sa.Table("tmp_audience_predictions", sa.MetaData(), sa.Column("contact_id", sa.String()),
                           *[sa.Column(n, sa_type(k)) for n, k in PREDICTION_FIELDS.items()],
                           prefixes=["TEMPORARY"])
CROSS_BRAND = sa.Table("tmp_audience_cross_brand", sa.MetaData(), sa.Column("contact_id", sa.String()),
                       *[sa.Column(n, sa.BigInteger()) for n in ("very_active", "not_inactive", "middle", "opted_out")],
                       prefixes=["TEMPORARY"])
_PREDICTIONS_CHANGED = "tmp_audience_predictions_changed"
_SCRATCH = ("tmp_audience_base", "tmp_audience_suppressed", PREDICTIONS_DAY.name, CROSS_BRAND.name,
            _PREDICTIONS_CHANGED)


def materialize_audiences(engine: sa.Engine, *, as_of: dt.date, audiences_file=None,
                          full_refresh: bool = False) -> pd.DataFrame:
    """Rebuild the `as_of` snapshot of every audience; returns audience, size, entered, exited (and notes).

    A drop (a re-run of the last run's day) recomputes only the contacts whose inputs changed (`incremental`);
    `attrs` carry the mode, its reason and `contacts_recomputed` beside the rows written."""
    config = load_audiences(audiences_file)
    key = incremental.config_key(config)
    create_audience_tables(engine)
    with engine.begin() as conn:
        plan = incremental.plan_run(conn, as_of, key, config, full_refresh=full_refresh)
        _, changed, plan, recomputed = build_members(conn, config, as_of, plan)
        history_written = write_history(conn, as_of, changed)
        incremental.remember_inputs(conn, kept=not incremental.has_events(config))
        incremental.log_run(conn, as_of, plan, recomputed, key)
        incremental.drop_scratch(conn)
        summary = audience_summary(conn, as_of)
    summary.attrs.update({"members_written": changed, "history_written": history_written,
                          "mode": "full" if plan.full else "incremental", "reason": plan.reason,
                          "contacts_recomputed": recomputed})
    return summary


def fields_used(config: AudienceConfig) -> list[str]:
    """The profile fields any profile rule reads (the scratch table carries only these)."""
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, FieldCondition):
            found.add(node.field)
        elif isinstance(node, Not):
            walk(node.item)
        elif isinstance(node, (All, AnyOf)):
            for item in node.items:
                walk(item)

    for audience in config.audiences:
        if audience.source == "profile" and audience.rule is not None:
            walk(audience.rule)
    if any(a.type == "cross_brand" for a in config.audiences):
        walk(config.very_active)
        walk(config.inactive)
    return sorted(found)


def build_members(conn: sa.Connection, config: AudienceConfig, as_of: dt.date,
                  plan: incremental.Plan | None = None) -> tuple[list[dict], int | None, incremental.Plan, int]:
    """Write the day's `audience_members` and `audience_sizes`; returns the audiences planned, on a re-run of the
    day the membership rows that changed (None: a new day, written whole), the plan as run (an incremental one
    may turn whole, see `_narrow`) and the contacts whose memberships were computed."""
    plan = plan or incremental.Plan(True, "whole")
    for name in _SCRATCH:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    fields = fields_used(config)
    brands = list(conn.execute(sa.text("SELECT DISTINCT brand FROM profile_360_brand ORDER BY brand")).scalars())
    predictions = _predictions(conn, as_of)
    if predictions is not None:
        PREDICTIONS_DAY.create(conn)
        conn.execute(sa.insert(PREDICTIONS_DAY).from_select([c.name for c in predictions.c], predictions))
        predictions = PREDICTIONS_DAY
    any_suppressed = _suppressed(conn)
    planned: list[dict] = []  # name, label, kind, brand_scope, note, query
    for audience in config.audiences:
        planned.extend(_plan(conn, audience, config, as_of, brands, predictions))
    # a day run before (a drop re-runs it) is written by difference; a new day straight into the table
    rerun = conn.execute(sa.select(audience_sizes.c.as_of).where(audience_sizes.c.as_of == as_of).limit(1)).first()
    plan, changed_contacts = _narrow(conn, config, as_of, plan, planned, rerun is not None, predictions, fields)
    contacts = None if plan.full else incremental.CHANGED
    conn.execute(sa.text(base_sql(fields, contacts)))
    if predictions is not None and contacts:
        _only_changed(conn)
    if any(a.type == "cross_brand" for a in config.audiences):
        _cross_brand_counts(conn, config, as_of)
    recomputed = changed_contacts if contacts else conn.execute(  # every contact has its row across brands
        sa.text(f"SELECT COUNT(*) FROM tmp_audience_base WHERE brand = '{ALL_BRANDS}'")).scalar_one()

    queries = [p["query"] for p in planned if p["query"] is not None]
    into = rewrite.begin(conn, "audience_members", full=False) if rerun else "audience_members"
    rewrite.drop_diff(conn)
    if not rerun:
        conn.execute(audience_members.delete().where(audience_members.c.as_of == as_of))
    if queries:
        _insert_members(conn, into, queries, as_of, any_suppressed)
    # A re-run writes only the (audience, contact) rows that entered, left or whose contact details changed,
    # listed in `rewrite.DIFF` for `write_history`: deleting and inserting the whole day and its history
    # again cost a drop more than a full run. A drop compares the changed contacts' rows only.
    only = "" if plan.full else f" JOIN {incremental.CHANGED} c ON c.contact_id = t.contact_id"
    changed = rewrite.finish(conn, "audience_members", ("as_of", "audience", "contact_id"), None, full=False,
                             stored=f"SELECT t.* FROM audience_members t{only} WHERE t.as_of = :as_of",
                             params={"as_of": as_of}, keep=True) if rerun else None
    _write_sizes(conn, as_of, planned)
    for name in _SCRATCH:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    return planned, changed, plan, int(recomputed)


def _narrow(conn: sa.Connection, config: AudienceConfig, as_of: dt.date, plan: incremental.Plan, planned: list[dict],
            rerun: bool, predictions, fields: list[str]) -> tuple[incremental.Plan, int | None]:
    """The base rows whose inputs changed since the last run (kept for the next drop, whatever the plan), and for an
    incremental plan the changed contacts (`incremental.CHANGED`) and their count; the plan turns whole when the
    day has no stored run, its audiences differ from the stored ones, or most contacts changed."""
    if incremental.has_events(config):
        return plan, None
    now = incremental.inputs_select(config, as_of, _base_subquery(fields), predictions,
                                    "tmp_audience_suppressed")
    changed, stored = incremental.find_changed(conn, now)
    if plan.full:
        return plan, None
    if not rerun:
        return incremental.Plan(True, "no stored day to compare with"), None
    if not incremental.same_plan(conn, as_of, planned):
        return incremental.Plan(True, "the day's audiences changed (a brand or segment came or went)"), None
    if changed > incremental.MOST * stored:
        return incremental.Plan(True, f"most contacts changed ({changed} of {stored})"), None
    return plan, changed


def _only_changed(conn: sa.Connection) -> None:
    """Narrow the day's predictions (ranked over everyone) to the changed contacts."""
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_PREDICTIONS_CHANGED} AS SELECT p.* FROM {PREDICTIONS_DAY.name} p "
                         f"JOIN {incremental.CHANGED} c ON c.contact_id = p.contact_id"))
    conn.execute(sa.text(f"DELETE FROM {PREDICTIONS_DAY.name}"))
    conn.execute(sa.text(f"INSERT INTO {PREDICTIONS_DAY.name} SELECT * FROM {_PREDICTIONS_CHANGED}"))


def _insert_members(conn: sa.Connection, into: str, queries: list, as_of: dt.date, any_suppressed: bool) -> None:
    """One statement: every audience's members, with the golden contact details, minus suppressions."""
    hits = (sa.union_all(*queries) if len(queries) > 1 else queries[0]).subquery("hits")
    p360 = profile_360
    suppressed = sa.table("tmp_audience_suppressed", sa.column("contact_id", sa.String()))
    members = hits.join(p360, p360.c.contact_id == hits.c.contact_id)
    if any_suppressed:
        members = members.outerjoin(suppressed, suppressed.c.contact_id == hits.c.contact_id)
    rows = (sa.select(sa.bindparam("as_of", as_of, type_=sa.Date()), hits.c.audience, hits.c.contact_id,
                      p360.c.email, p360.c.phone, p360.c.first_name, p360.c.last_name, hits.c.brand_scope)
            .select_from(members))
    if any_suppressed:
        rows = rows.where(_absent(suppressed.c.contact_id))
    conn.execute(sa.insert(sa.table(into, *[sa.column(c.name) for c in audience_members.columns])).from_select(
        ["as_of", "audience", "contact_id", "email", "phone", "first_name", "last_name", "brand_scope"], rows))


def _write_sizes(conn: sa.Connection, as_of: dt.date, planned: list[dict]) -> None:
    """Replace the day's `audience_sizes`, counted from the day's members."""
    if is_postgresql(conn):
        # the new day is not in the planner's statistics yet: estimated at one row, the history diff
        # would run as a nested loop over the two days (minutes). ANALYZE samples a bounded number of rows.
        conn.execute(sa.text("ANALYZE audience_members"))
    sizes = dict(conn.execute(sa.select(audience_members.c.audience, sa.func.count())
                              .where(audience_members.c.as_of == as_of).group_by(audience_members.c.audience)).all())
    conn.execute(audience_sizes.delete().where(audience_sizes.c.as_of == as_of))
    rows = [{"as_of": as_of, "audience": p["name"], "label": p["label"], "kind": p["kind"],
             "brand_scope": p["brand_scope"], "size": sizes.get(p["name"], 0), "note": p["note"]} for p in planned]
    if rows:
        conn.execute(audience_sizes.insert(), rows)


def _entry(name, audience: Audience, scope: str, query, note=None) -> dict:
    return {"name": name, "label": audience.label, "kind": audience.kind, "brand_scope": scope,
            "note": note, "query": query}


def _hit_select(name: str, scope: str, contact_id) -> sa.Select:
    return sa.select(sa.literal(name, sa.String()).label("audience"), contact_id.label("contact_id"),
                     sa.literal(scope, sa.String()).label("brand_scope"))


def _plan(conn, audience: Audience, config: AudienceConfig, as_of, brands, predictions) -> list[dict]:
    if audience.type == "rule" and audience.source == "profile":
        out = []
        scopes = ([ALL_BRANDS] if "all" in audience.scopes else []) + (brands if "brands" in audience.scopes else [])
        for scope in scopes:
            name = audience.name if scope == ALL_BRANDS else f"{scope}:{audience.name}"
            compiler = Compiler(BASE, as_of=as_of, brand=scope or None)
            condition = compiler.compile(audience.rule)
            query = _hit_select(name, scope, BASE.c.contact_id).select_from(compiler.joined()).where(
                BASE.c.brand == sa.literal(scope, sa.String()), condition)
            if audience.consent == "email":
                query = query.where(BASE.c.opted_out == 0)
            out.append(_entry(name, audience, scope, query))
        return out
    if audience.type == "cross_brand":
        return [_entry(audience.name, audience, ALL_BRANDS, _cross_brand(audience))]
    # predictive
    if predictions is None:
        return [_entry(audience.name, audience, ALL_BRANDS, None, "skipped: no predictions table")]
    if audience.type == "rfm_segments":
        segments = list(conn.execute(sa.select(predictions.c.rfm_segment).distinct()
                                     .where(predictions.c.rfm_segment.is_not(None))).scalars())
        by_slug: dict[str, list[str]] = {}
        for segment in segments:
            slug = re.sub(r"[^a-z0-9]+", "_", str(segment).lower()).strip("_") or "unnamed"
            by_slug.setdefault(slug, []).append(segment)
        if not by_slug:
            return [_entry(audience.name, audience, ALL_BRANDS, None, f"no rfm_segment in predictions for {as_of}")]
        return [_entry(f"{audience.name}_{slug}", audience, ALL_BRANDS,
                       _consented(_hit_select(f"{audience.name}_{slug}", ALL_BRANDS, predictions.c.contact_id)
                                  .where(predictions.c.rfm_segment.in_(values)), audience, predictions).distinct())
                for slug, values in sorted(by_slug.items())]
    condition = Compiler(predictions, as_of=as_of).compile(audience.rule)
    return [_entry(audience.name, audience, ALL_BRANDS,
                   _consented(_hit_select(audience.name, ALL_BRANDS, predictions.c.contact_id).where(condition),
                              audience, predictions).distinct())]


def _consented(query: sa.Select, audience: Audience, source) -> sa.Select:
    """Predictions rows: leave out contacts opted out of email (read from the across-brands profile row)."""
    if audience.consent != "email":
        return query
    opted_out = BASE.alias("opted_out")
    return query.select_from(source.outerjoin(opted_out, sa.and_(
        opted_out.c.contact_id == source.c.contact_id, opted_out.c.brand == sa.literal(ALL_BRANDS, sa.String()),
        opted_out.c.opted_out != 0))).where(_absent(opted_out.c.contact_id))


def _absent(joined_id) -> sa.ColumnElement:
    """The anti-join's condition: no row of the LEFT JOINed list (whose ids are never NULL) matched.

    A LEFT JOIN ... IS NULL, not NOT IN (subquery): PostgreSQL hashes a NOT IN only while the list fits in work_mem
    and otherwise rescans the list for every row (at a million contacts, minutes), and NOT IN returns nothing once
    the list holds a NULL; both engines plan this as a hash anti-join (DuckDB ran a correlated NOT EXISTS as a
    delim join). A row without a contact id matches nothing and stays, but the members' join with profile_360
    leaves such a row out anyway."""
    return joined_id.is_(None)


def _cross_brand_counts(conn: sa.Connection, config: AudienceConfig, as_of) -> None:
    """Per contact over its brand rows: how many brands are very active, and how many are neither
    very active nor inactive (a brand without a row counts as inactive); computed once for every cross-brand
    audience (the very active and inactive rules are the config's, the same for all)."""
    compiler = Compiler(BASE, as_of=as_of)
    very = compiler.compile(config.very_active)
    inactive = compiler.compile(config.inactive)
    one, zero = sa.literal(1, sa.Integer()), sa.literal(0, sa.Integer())
    per_contact = (sa.select(BASE.c.contact_id,
                             sa.func.sum(sa.case((very, one), else_=zero)).label("very_active"),
                             sa.func.sum(sa.case((inactive, zero), else_=one)).label("not_inactive"),
                             sa.func.sum(sa.case((sa.or_(very, inactive), zero), else_=one)).label("middle"),
                             sa.func.max(BASE.c.opted_out).label("opted_out"))
                   .select_from(compiler.joined())
                   .where(BASE.c.brand != sa.literal(ALL_BRANDS, sa.String()))
                   .group_by(BASE.c.contact_id))
    CROSS_BRAND.create(conn)
    conn.execute(sa.insert(CROSS_BRAND).from_select([c.name for c in CROSS_BRAND.c], per_contact))


def _cross_brand(audience: Audience) -> sa.Select:
    """The members of a cross-brand audience, from the per-contact counts (`_cross_brand_counts`)."""
    per_contact = CROSS_BRAND
    if audience.pattern == "very_active_on_many":
        where = per_contact.c.very_active >= sa.bindparam(None, audience.min_brands)
    elif audience.pattern == "very_active_on_one_inactive_on_others":
        where = sa.and_(per_contact.c.very_active == 1, per_contact.c.middle == 0)
    else:
        where = per_contact.c.not_inactive == 0
    query = _hit_select(audience.name, ALL_BRANDS, per_contact.c.contact_id).where(where)
    # opted out at any brand = opted out across brands, as for the other across-brands audiences
    return query.where(per_contact.c.opted_out == 0) if audience.consent == "email" else query


def _predictions(conn: sa.Connection, as_of: dt.date) -> sa.Subquery | None:
    """The day's predictions with the fields rules read (missing columns read as NULL), or None."""
    inspector = sa.inspect(conn)
    if not inspector.has_table("predictions"):
        return None
    # the column names from an empty result: the inspector's column query does not run on DuckDB
    present = set(conn.execute(sa.text("SELECT * FROM predictions WHERE 1 = 0")).keys())
    if not set(_PREDICTION_NEEDS) <= present:
        return None
    p = sa.table("predictions", *[sa.column(n) for n in present])
    cols = [p.c.contact_id.label("contact_id")]
    for name, kind in PREDICTION_FIELDS.items():
        if name == "clv_top_percent":
            continue
        cols.append(sa.cast(p.c[name], sa_type(kind)).label(name) if name in present
                    else sa.cast(sa.null(), sa_type(kind)).label(name))
    if "predicted_clv" in present:
        clv = sa.cast(p.c.predicted_clv, sa.Double())
        rank = sa.func.row_number().over(order_by=(clv.desc().nulls_last(), p.c.contact_id))
        cols.append(sa.case((clv.is_(None), sa.null()),
                            else_=sa.cast(rank, sa.Double()) * 100.0 / sa.func.count(clv).over())
                    .label("clv_top_percent"))
    else:
        cols.append(sa.cast(sa.null(), sa.Double()).label("clv_top_percent"))
    return sa.select(*cols).where(p.c.as_of == sa.bindparam(None, as_of, type_=sa.Date())).subquery("predictions_day")


def _suppressed(conn: sa.Connection) -> bool:
    """Contacts on the suppression list by contact id, or by the hash of their golden email; whether any."""
    conn.execute(sa.text("CREATE TEMPORARY TABLE tmp_audience_suppressed AS "
                         "SELECT DISTINCT contact_id FROM suppression_list WHERE contact_id IS NOT NULL"))
    has_hashes = conn.execute(sa.text("SELECT COUNT(*) FROM suppression_list WHERE email_sha256 IS NOT NULL"))
    if has_hashes.scalar_one():
        conn.execute(sa.text(f"""
            INSERT INTO tmp_audience_suppressed (contact_id)
            SELECT p.contact_id FROM profile_360 p
            JOIN suppression_list s ON LOWER(TRIM(s.email_sha256)) = {sha256_hex(conn, "LOWER(TRIM(p.email))")}
            WHERE p.email IS NOT NULL
        """))
    return conn.execute(sa.text("SELECT 1 FROM tmp_audience_suppressed LIMIT 1")).first() is not None


def write_history(conn: sa.Connection, as_of: dt.date, changed: int | None = None) -> int:
    """Entries and exits of `as_of` against the previous snapshot; then those of the next snapshot
    (its previous snapshot is now this one), so re-running a past day keeps later history true.

    After a re-run written by difference (`changed`, from `build_members`), only the history of the changed
    (audience, contact) pairs is redone, when the day's stored history is against the same previous day: a
    pair whose membership did not change keeps its entry or exit. Returns the day's history rows written."""
    previous = snapshot_day(conn, before=as_of)
    against = conn.execute(sa.text("SELECT COUNT(*) FROM audience_history WHERE as_of = :d "
                                   "AND previous_as_of IS DISTINCT FROM :p").bindparams(
        sa.bindparam("d", type_=sa.Date()), sa.bindparam("p", type_=sa.Date())),
        {"d": as_of, "p": previous}).scalar_one() if changed is not None else None
    written = _history_for(conn, as_of, previous, only=rewrite.DIFF if against == 0 else None)
    following = snapshot_day(conn, after=as_of)
    if following is not None:
        _history_for(conn, following, as_of)
    rewrite.drop_diff(conn)
    return written


def snapshot_day(conn: sa.Connection, *, before: dt.date | None = None, after: dt.date | None = None):
    """The nearest day before (or after) the given one that has members, or None.

    Read from `audience_sizes` (a row per audience and day; size > 0 exactly when the day has
    members of that audience) rather than from `audience_members`, whose rows grow with every day kept.
    """
    s = audience_sizes
    if before is not None:
        query = sa.select(sa.func.max(s.c.as_of)).where(s.c.as_of < before)
    else:
        query = sa.select(sa.func.min(s.c.as_of)).where(s.c.as_of > after)
    return conn.execute(query.where(s.c.size > 0)).scalar_one()


def _history_for(conn: sa.Connection, day: dt.date, previous: dt.date | None, only: str | None = None) -> int:
    """Rewrite the `day`'s entries and exits against `previous` (of the pairs listed in the table `only`, when
    given); returns the rows written."""
    dates = (sa.bindparam("day", type_=sa.Date()), sa.bindparam("previous", type_=sa.Date()))
    pairs = "" if only is None else f" AND (audience, contact_id) IN (SELECT audience, contact_id FROM {only})"
    conn.execute(sa.text(f"DELETE FROM audience_history WHERE as_of = :day{pairs}").bindparams(dates[0]),
                 {"day": day})
    if only is not None and conn.execute(sa.text(f"SELECT 1 FROM {only} LIMIT 1")).first() is None:
        return 0

    def members(day: str, alias: str) -> str:
        listed = "" if only is None else \
            f" JOIN {only} x ON x.audience = {alias}.audience AND x.contact_id = {alias}.contact_id"
        return (f"SELECT {alias}.audience, {alias}.contact_id FROM audience_members {alias}{listed} "
                f"WHERE {alias}.as_of = {day}")

    # One full outer join of the two days' members (keys never NULL): a pair on one side only entered or exited.
    # Two correlated NOT EXISTS ran as two delim joins, each over both days.
    conn.execute(sa.text(f"""
        INSERT INTO audience_history (as_of, audience, contact_id, event, previous_as_of)
        SELECT CAST(:day AS DATE), COALESCE(c.audience, p.audience), COALESCE(c.contact_id, p.contact_id),
               CASE WHEN p.contact_id IS NULL THEN 'entered' ELSE 'exited' END, CAST(:previous AS DATE)
        FROM ({members(":day", "c")}) c
        FULL OUTER JOIN ({members(":previous", "p")}) p ON p.audience = c.audience AND p.contact_id = c.contact_id
        WHERE c.contact_id IS NULL OR p.contact_id IS NULL
    """).bindparams(*dates), {"day": day, "previous": previous})
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM audience_history WHERE as_of = :day{pairs}")
                        .bindparams(dates[0]), {"day": day}).scalar_one()


def audience_summary(conn: sa.Connection, as_of: dt.date) -> pd.DataFrame:
    """audience, size, entered, exited (and label, kind, brand_scope, note) for `as_of`."""
    sizes = pd.DataFrame(conn.execute(
        sa.select(audience_sizes.c.audience, audience_sizes.c.label, audience_sizes.c.kind,
                  audience_sizes.c.brand_scope, audience_sizes.c.size, audience_sizes.c.note)
        .where(audience_sizes.c.as_of == as_of)).all(),
        columns=["audience", "label", "kind", "brand_scope", "size", "note"])
    moves = pd.DataFrame(conn.execute(
        sa.select(audience_history.c.audience, audience_history.c.event, sa.func.count())
        .where(audience_history.c.as_of == as_of)
        .group_by(audience_history.c.audience, audience_history.c.event)).all(),
        columns=["audience", "event", "n"])
    counts = (moves.pivot_table(index="audience", columns="event", values="n", aggfunc="sum")
              if len(moves) else pd.DataFrame(columns=["entered", "exited"]))
    counts = counts.reindex(columns=["entered", "exited"])
    # audiences that vanished (e.g. an RFM segment no longer present) still report their exits
    gone = [a for a in counts.index if a not in set(sizes["audience"])]
    if gone:
        sizes = pd.concat([sizes, pd.DataFrame({"audience": gone, "size": 0, "note": "no longer defined"})],
                          ignore_index=True)
    out = sizes.merge(counts, left_on="audience", right_index=True, how="left")
    out[["entered", "exited"]] = out[["entered", "exited"]].fillna(0).astype("int64")
    out["size"] = out["size"].astype("int64")
    return out[["audience", "size", "entered", "exited", "label", "kind", "brand_scope", "note"]] \
        .sort_values("audience", ignore_index=True)
