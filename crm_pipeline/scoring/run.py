"""`run_scoring`: engagement scores, preferences, preferred channel and lifecycle as of one day, in one transaction."""

from __future__ import annotations

import datetime as dt
from functools import partial
from pathlib import Path

import sqlalchemy as sa

from crm_pipeline.profiles.profile360 import attach_scoring
from crm_pipeline.profiles.sql import as_of_params, day_number
from crm_pipeline.scoring.channel import build_channels
from crm_pipeline.scoring.config import GROWTH_BANDS, STAGES, ScoringConfig, load_scoring_config
from crm_pipeline.scoring.engagement import build_engagement
from crm_pipeline.scoring.lifecycle import build_lifecycle
from crm_pipeline.scoring.preferences import build_preferences
from crm_pipeline.scoring import truth as channel_truth
from crm_pipeline.scoring import carry, incremental, spans
from crm_pipeline.scoring.daily import build_daily
from crm_pipeline.scoring.scratch import create_daily_purchases, create_products, drop_scratch
from crm_pipeline.scoring.unscored import add_unscored, drop_unscored, unscored_reasons
from crm_pipeline.step_clock import StepClock
from crm_pipeline.warehouse.scoring_schema import create_scoring_tables, spans_name

def _refresh_aggregates(conn: sa.Connection, clock: StepClock, config: ScoringConfig, as_of: dt.date,
                        full_refresh: bool) -> tuple:
    """Rewrite the daily aggregates of the contacts that need it (all on a full run): plan, reasons, contacts
    and `scoring_daily` rows recomputed."""
    plan = incremental.plan_run(conn, as_of, incremental.config_key(config), full_refresh=full_refresh)
    reasons = {} if plan.full else clock.run("changes", incremental.select_recompute, conn, plan)
    recomputed = None if plan.full else incremental.recompute_count(conn)
    clock.run("scratch", create_products, conn)
    days = 0
    if plan.full or recomputed:
        days = clock.run("daily", partial(build_daily, full=plan.full), conn, config)
    if plan.full:
        recomputed = conn.execute(sa.text("SELECT COUNT(DISTINCT contact_id) FROM scoring_daily")).scalar_one()
    return plan, reasons, recomputed, days


def _derive(conn: sa.Connection, clock: StepClock, config: ScoringConfig, params: dict,
            plan: incremental.Plan, written: dict) -> tuple[int | None, dict]:
    """Engagement, channel, preferences and lifecycle of the day: only for the contacts whose rows can change,
    the rest holding as they were (everyone on a full run); the `unknown` rows of contacts with nothing to score
    beside them. Writes the rows that changed (counted in `written`); returns the due contacts (None on a full
    run) and the unscored contacts per reason."""
    as_of = params["as_of"]
    carried = None if plan.full else clock.run("due", carry.create_due, conn, config, plan.previous_as_of, as_of)
    incremental.drop_plan_tables(conn)
    due = None if carried is None else carry.DUE
    into = carry.copies(conn)
    clock.run("engagement", build_engagement, conn, config, params, into["engagement_scores"],
              carry.ENGAGED if due else None)
    carry.create_known(conn, params, into["engagement_scores"], None if due is None else plan.previous_as_of)
    create_daily_purchases(conn, day_number(as_of), due)
    clock.run("channel", build_channels, conn, config, params, due, into["channel_preferences"])
    clock.run("preferences", build_preferences, conn, config, params, due, into["contact_preferences"])
    clock.run("lifecycle", build_lifecycle, conn, config, params, carry.KNOWN_DUE if due else carry.KNOWN,
              into["lifecycle_stages"])
    clock.run("unscored", add_unscored, conn, params, into, carry.unscored_scope(conn) if due else None)
    written.update(clock.run("write_spans", carry.write, conn, as_of, due is not None, float(config.half_life_days)))
    drop_unscored(conn)
    carry.drop(conn)
    return carried, unscored_reasons(conn, as_of)


def run_scoring(engine: sa.Engine, *, as_of: dt.date, config: ScoringConfig | None = None,
                config_file: str | Path | None = None, truth_dir: Path | None = None,
                full_refresh: bool = False) -> dict:
    """Rebuild the `as_of` rows of every scoring table from the timeline and staged orders, products and
    web events up to the end of `as_of` (UTC); nothing later counts.

    The day's tables are derived from the daily aggregates (`scoring_daily`, `scoring_daily_values`);
    only the aggregates of contacts whose timeline the profile builds since the last run rewrote are
    rewritten (see `incremental`), all of them when `full_refresh`, on a first run, an earlier day,
    changed settings or after a full profile build. Either way the tables are the same.

    The config is validated before any SQL runs. All tables are written for the day in one
    transaction, so a re-run gives identical rows. The tables are kept as validity intervals (`spans`): only
    the rows of contacts whose rows can change are computed (`carry`), and only those that changed are
    written (counted in `rows_written`); engagement's scores decay to the day shown and are ranked there. When
    `profile_360` is a snapshot of the same day, its engagement, channel and lifecycle columns are filled too. Every
    contact gets a row: one with nothing to score is `unknown` with the reason (`unscored`). With the
    generator's truth, the channel is judged against it and recorded in `model_runs`.
    Returns figures for the asset's metadata.
    """
    config = config or load_scoring_config(config_file)
    params = as_of_params(as_of)
    clock = StepClock()

    key = incremental.config_key(config)
    create_scoring_tables(engine)
    with engine.begin() as conn:
        timeline_as_of = conn.execute(sa.text("SELECT MAX(as_of) FROM timeline")).scalar()
        plan, reasons, recomputed, days = _refresh_aggregates(conn, clock, config, as_of, full_refresh)
        reason = plan.reason if plan.full else ", ".join(f"{k} {v}" for k, v in reasons.items())
        incremental.log_run(conn, as_of, plan, reason, recomputed, key, timeline_as_of)
        spans.add_day(conn, as_of)
        written: dict[str, int] = {}
        carried, unscored = _derive(conn, clock, config, params, plan, written)
        channels, preferences = (conn.execute(sa.text(f"SELECT COUNT(*) FROM {t} WHERE as_of = :d"), {"d": as_of})
                                 .scalar_one() for t in ("channel_preferences", "contact_preferences"))
        channels -= sum(unscored.values())  # the rows of contacts scored (each unscored one has one `unknown` row)
        attached = clock.run("profile_360", attach_scoring, conn, as_of)
        drop_scratch(conn)
        held = f"FROM {spans_name('engagement_scores')} t WHERE {spans.holding()}"  # the view ranks everyone: not read
        bands = dict(conn.execute(sa.text(f"SELECT growth_band, COUNT(*) {held} AND brand = '' GROUP BY growth_band"),
                                  {"as_of": as_of}).all())
        scored = conn.execute(sa.text(f"SELECT COUNT(*) {held} AND growth_band <> 'unknown'"),
                              {"as_of": as_of}).scalar_one()
        chosen = dict(conn.execute(sa.text(
            "SELECT preferred_channel, COUNT(*) FROM channel_preferences WHERE as_of = :d AND brand = '' "
            "GROUP BY preferred_channel"), {"d": as_of}).all())
        stages = dict(conn.execute(sa.text(
            "SELECT stage, COUNT(*) FROM lifecycle_stages WHERE as_of = :d AND brand = '' GROUP BY stage"),
            {"d": as_of}).all())
        evidence = dict(conn.execute(sa.text(
            "SELECT CASE WHEN evidence_count = 0 THEN 'none' WHEN reason = 'thin_evidence' THEN 'thin' "
            "ELSE 'sufficient' END, COUNT(*) FROM channel_preferences WHERE as_of = :d AND brand = '' GROUP BY 1"),
            {"d": as_of}).all())
        judged = clock.run("channel_truth", channel_truth.evaluate_channels, conn, truth_dir, as_of)
        channel_truth.record(conn, as_of, judged, {"min_evidence": config.min_evidence,
                                                   "email_attribution_days": config.email_attribution_days,
                                                   "lookback_days": config.channel_lookback_days})
        moves = conn.execute(sa.text("SELECT COALESCE(SUM(contact_count), 0) FROM lifecycle_transitions "
                                     "WHERE as_of = :d AND brand = ''"), {"d": as_of}).scalar_one()
    note = None
    if timeline_as_of is None or timeline_as_of < as_of:
        note = (f"the timeline is as of {timeline_as_of}: interactions after it are not in these scores; "
                f"rebuild the profiles as of {as_of} first")
    return {
        "as_of": as_of.isoformat(),
        "mode": "full" if plan.full else "incremental",
        "reason": reason,
        "contacts_recomputed": int(recomputed),
        "contacts_by_reason": reasons,
        # the (contact, brand, day) rows summed again: a drop redoes only the days it changed
        "daily_rows_recomputed": int(days),
        "contacts_rederived": int(sum(bands.values()) if carried is None else carried),
        # the rows written by difference, per table (engagement: on a re-run of the same day only)
        "rows_written": written or None,
        "engagement_rows": int(scored),
        "contacts_scored": int(sum(bands.values())),
        "growth_bands": {band: int(bands.get(band, 0)) for band in GROWTH_BANDS},
        "channel_rows": int(channels),
        "preferred_channels": {c: int(chosen.get(c, 0)) for c in (*config.channels, "unknown")},
        "channel_evidence": {k: int(evidence.get(k, 0)) for k in ("sufficient", "thin", "none")},
        "channel_vs_truth": judged,
        "unscored_reasons": unscored,
        "contacts_with_preferences": int(preferences),
        "lifecycle_stages": {stage: int(stages.get(stage, 0)) for stage in STAGES},
        "transitions_today": int(moves),
        "profiles_updated": int(attached),
        "timeline_as_of": timeline_as_of.isoformat() if timeline_as_of else None,
        "note": note,
        "seconds": clock.seconds,
        "step_seconds": clock.steps,
    }
