"""Tables of the scoring stage: engagement scores, preferences, preferred channel and the lifecycle.

Every table is read by `as_of` (the day computed for, from data up to the end of that day); a run writes
that day's rows in one transaction, so re-running a day gives identical tables. Brand '' means across all
brands (the per-brand set varies by installation). `engagement_scores`, `contact_preferences`,
`channel_preferences` and `lifecycle_stages` are views: their rows are stored once per stretch of days with
equal values in `<name>_spans` (valid_from, valid_to; see `scoring.spans`), and the view shows each day of
`scoring_days` (the days computed) its rows, so a new day writes only the rows that changed. Engagement's
spans hold the scores as of their `anchor` day with the half-life they decay by: the view decays them to the
day shown and computes the changes and the rank (`top_percent`) there.

- `engagement_scores`: per contact and brand, the decayed points score, the same score recomputed as
  of 7 and 30 days earlier, the activity of two equal windows and the growth band they give, and the
  contact's rank as a top percentage. A contact with nothing to score gets one across-brands row with
  growth band `unknown` (the reason is on its `lifecycle_stages` row).
- `contact_preferences`: ONE row per contact: the top category / brand / price band bought and browsed
  with their shares (and the top_n of each as a list), preferred purchase channel, email weekday and
  hour, average discount taken.
- `channel_preferences`: per contact and brand, the channel the contact buys through (most conversions),
  with the conversion counts per channel (the evidence) beside the choice, or `unknown` and the reason.
- `lifecycle_stages`: per contact and brand, the stage on the day and since when; `unknown` with a
  reason for a contact with nothing to stage.

A warehouse whose scoring table has other columns than these (built by an earlier version; a day table
where this version has a view) has that table rebuilt empty on the next scoring run: the tables are derived,
so backfill to refill past days.
- `lifecycle_transitions`: per day and brand, how many contacts moved from one stage to another that
  day (`from_stage` 'new' = first seen that day).

The stage's memory (`scoring_daily`, `scoring_daily_values`, `scoring_builds`) lets a run redo only the
contacts the profile builds since its last run redid (their `profile_changes`): the day's tables are derived
from the daily aggregates.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.warehouse.schema import column_names, in_transaction, metadata

# The day tables shown by views over spans: defined here for their columns (readers select from them by name),
# kept out of the warehouse metadata so that no table of these names is created.
views = sa.MetaData()

engagement_scores = sa.Table(
    "engagement_scores", views,
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("brand", sa.String, nullable=False, comment="'' = across all brands (the sum of the brands)"),
    sa.Column("score", sa.Double, nullable=False, comment="sum of points * 0.5 ** (age_days / half_life_days)"),
    sa.Column("score_7d_ago", sa.Double, nullable=False, comment="the score as of as_of - 7, same data"),
    sa.Column("score_30d_ago", sa.Double, nullable=False, comment="the score as of as_of - 30, same data"),
    sa.Column("change_7d", sa.Double, nullable=False),
    sa.Column("change_30d", sa.Double, nullable=False),
    sa.Column("activity_points", sa.Double, nullable=False,
              comment="positive points earned in the last band_window_days (no decay)"),
    sa.Column("previous_activity_points", sa.Double, nullable=False,
              comment="positive points earned in the band_window_days before those"),
    sa.Column("growth_rate", sa.Double,
              comment="(activity - previous) / max(previous, min_base_points); empty when dormant or unknown"),
    sa.Column("growth_band", sa.String, nullable=False, comment="rising / steady / falling / dormant / unknown"),
    sa.Column("top_percent", sa.Double,
              comment="rank by score to 1e-9 points (highest first, ties share) * 100 / contacts scored "
                      "for the brand"),
    sa.Column("interaction_count", sa.Integer, nullable=False),
    sa.Column("first_interaction_date", sa.Date),
    sa.Column("last_interaction_date", sa.Date),
)


def _top(name: str, kind=sa.String, listed: str | None = None) -> list[sa.Column]:
    columns = [sa.Column(name, kind), sa.Column(f"{name}_share", sa.Double, comment="of the contact's total")]
    if listed:
        columns.append(sa.Column(listed, sa.String,
                                 comment="top_n values with shares, best first: 'Women 83%; Men 17%'"))
    return columns


contact_preferences = sa.Table(
    "contact_preferences", views,
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("contact_id", sa.String, nullable=False),
    *_top("top_category_bought", listed="top_categories_bought"),
    *_top("top_category_browsed", listed="top_categories_browsed"),
    *_top("top_brand_bought", listed="top_brands_bought"), *_top("top_brand_browsed", listed="top_brands_browsed"),
    *_top("price_band_bought", listed="price_bands_bought"), *_top("price_band_browsed", listed="price_bands_browsed"),
    *_top("preferred_purchase_channel"),
    *_top("preferred_email_weekday"),
    *_top("preferred_email_hour", sa.Integer),
    sa.Column("average_discount_rate", sa.Double, comment="mean of discount_total / subtotal over purchases"),
    sa.Column("discounted_order_share", sa.Double, comment="share of purchases with a discount"),
    sa.Column("bought_unit_count", sa.Integer, nullable=False),
    sa.Column("browsed_product_count", sa.Integer, nullable=False),
    sa.Column("email_engagement_count", sa.Integer, nullable=False, comment="opens and clicks"),
)

channel_preferences = sa.Table(
    "channel_preferences", views,
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("brand", sa.String, nullable=False, comment="'' = across all brands"),
    sa.Column("preferred_channel", sa.String, nullable=False,
              comment="web / app / store / marketplace / email / unknown"),
    sa.Column("preferred_channel_share", sa.Double, comment="the chosen channel's share of the conversions"),
    sa.Column("web_conversion_count", sa.Integer, nullable=False, comment="purchase days through web"),
    sa.Column("app_conversion_count", sa.Integer, nullable=False),
    sa.Column("store_conversion_count", sa.Integer, nullable=False),
    sa.Column("marketplace_conversion_count", sa.Integer, nullable=False),
    sa.Column("email_conversion_count", sa.Integer, nullable=False,
              comment="purchase days with an email click in the attribution days before"),
    sa.Column("evidence_count", sa.Integer, nullable=False, comment="all conversions counted"),
    sa.Column("reason", sa.String,
              comment="why unknown: no_conversions / thin_evidence / tie / no_interactions ..."),
)

lifecycle_stages = sa.Table(
    "lifecycle_stages", views,
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("brand", sa.String, nullable=False, comment="'' = across all brands"),
    sa.Column("stage", sa.String, nullable=False,
              comment="prospect / first_time / repeat / loyal / lapsing / lapsed / won_back / unknown"),
    sa.Column("stage_since_date", sa.Date, nullable=False),
    sa.Column("purchase_count", sa.Integer, nullable=False, comment="purchase days up to as_of"),
    sa.Column("last_purchase_date", sa.Date),
    sa.Column("reason", sa.String, comment="why unknown: account_without_activity / "
                                           "only_cancelled_or_refunded_orders / ..."),
)

lifecycle_transitions = sa.Table(
    "lifecycle_transitions", metadata,
    sa.Column("as_of", sa.Date, nullable=False, comment="the day the contacts moved"),
    sa.Column("brand", sa.String, nullable=False, comment="'' = across all brands"),
    sa.Column("from_stage", sa.String, nullable=False, comment="a stage, or 'new' (first seen that day)"),
    sa.Column("to_stage", sa.String, nullable=False),
    sa.Column("contact_count", sa.Integer, nullable=False),
)

# --- The stage's own memory, for incremental runs ------------------------------------------------------------
# Per contact, brand and UTC day (a day number, days since 1970-01-01): what the day's windows, decay, channel
# and lifecycle are summed from, so a new day never rescans the timeline. Rewritten only for contacts a drop
# touched or a new day brought records to.
scoring_daily = sa.Table(
    "scoring_daily", metadata,
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("brand", sa.String, nullable=False),
    sa.Column("day", sa.Integer, nullable=False, comment="UTC day number of the interactions"),
    sa.Column("points", sa.Double, nullable=False, comment="engagement points earned on the day (purchases too)"),
    sa.Column("positive_points", sa.Double, nullable=False, comment="the positive ones only (activity)"),
    sa.Column("interaction_count", sa.Integer, nullable=False),
    sa.Column("purchase_count", sa.Integer, nullable=False, comment="orders that are purchases"),
    sa.Column("discount_rate_sum", sa.Double, nullable=False, comment="sum of discount / subtotal (subtotal > 0)"),
    sa.Column("discount_rate_count", sa.Integer, nullable=False),
    sa.Column("discounted_count", sa.Integer, nullable=False, comment="purchases with a discount"),
    *[sa.Column(f"{c}_conversion", sa.Integer, nullable=False, comment="1 when a purchase day converted here")
      for c in ("web", "app", "store", "marketplace", "email")],
)

# Per contact and UTC day, the weighted values a preference dimension ranks (`preferences.DIMENSIONS` index).
scoring_daily_values = sa.Table(
    "scoring_daily_values", metadata,
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("day", sa.Integer, nullable=False),
    sa.Column("dimension", sa.Integer, nullable=False),
    sa.Column("value", sa.String, nullable=False),
    sa.Column("weight", sa.Double, nullable=False),
)

scoring_builds = sa.Table(  # one row per scoring run: its day, how it ran, how many contacts' aggregates it redid
    "scoring_builds", metadata,
    sa.Column("build_number", sa.Integer, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("mode", sa.String, nullable=False, comment="full / incremental"),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("contacts_recomputed", sa.Integer, nullable=False),
    sa.Column("config_key", sa.String, nullable=False, comment="the scoring settings the aggregates follow"),
    sa.Column("timeline_as_of", sa.Date, comment="the day of the timeline the aggregates were read from"),
    sa.Column("profile_build", sa.Integer, comment="the newest profile build whose changes the run took in"),
)

# --- Validity intervals of the viewed tables ---------------------------------------------------------------
SPANNED = (engagement_scores, contact_preferences, channel_preferences, lifecycle_stages)
# Engagement decays every day: its spans hold the scores as of `anchor`, decayed to the day shown, and the
# columns derived from them (the changes, the rank) are computed in the view.
DECAYED = ("score", "score_7d_ago", "score_30d_ago")
DERIVED = ("change_7d", "change_30d", "top_percent")


def spans_name(table: sa.Table | str) -> str:
    return f"{getattr(table, 'name', table)}_spans"


def _spans(table: sa.Table) -> sa.Table:
    anchored = [sa.Column("anchor", sa.Date, nullable=False, comment="the day the scores are as of"),
                sa.Column("half_life_days", sa.Double, nullable=False, comment="their decay to a later day")]
    return sa.Table(
        spans_name(table), metadata,
        sa.Column("valid_from", sa.Date, nullable=False, comment="the first day these values hold"),
        sa.Column("valid_to", sa.Date, comment="the day after the last they hold; empty: still holding"),
        *(anchored if table is engagement_scores else []),
        *[sa.Column(c.name, c.type, nullable=c.nullable, comment=c.comment) for c in table.columns
          if c.name != "as_of" and c.name not in DERIVED])


SPANS = {table.name: _spans(table) for table in SPANNED}
scoring_days = sa.Table(  # the days scoring computed: the days the views show
    "scoring_days", metadata, sa.Column("as_of", sa.Date, nullable=False))


def decayed(column: str, day: str, alias: str = "s") -> str:
    """An engagement span's score column decayed from its anchor to `day` (a DATE expression)."""
    return (f"{alias}.{column} * POWER(CAST(0.5 AS DOUBLE PRECISION), "
            f"CAST({day} - {alias}.anchor AS DOUBLE PRECISION) / {alias}.half_life_days)")


_UNKNOWN = "growth_band = 'unknown'"
_RANKED = f"PARTITION BY as_of, brand, {_UNKNOWN}"
# Ranked to a billionth of a point: a score decayed from an earlier day and the same score summed on the day
# differ in the last bits, and equal scores must share their rank whichever way they were computed.
_RANK_KEY = "FLOOR(score * 1000000000.0 + 0.5)"


def view_sql(table: sa.Table) -> str:
    """The day rows of `table`: each computed day with the spans holding on it (engagement: decayed to the day,
    with the changes and the rank among the brand's scored contacts of the day)."""
    spans = SPANS[table.name]
    columns = ", ".join(decayed(c.name, "d.as_of") + f" AS {c.name}" if c.name in DECAYED else f"s.{c.name}"
                        for c in spans.columns if c.name not in ("valid_from", "valid_to", "anchor", "half_life_days"))
    held = (f"SELECT d.as_of, {columns} FROM scoring_days d JOIN {spans.name} s "
            f"ON s.valid_from <= d.as_of AND (s.valid_to IS NULL OR s.valid_to > d.as_of)")
    if table is not engagement_scores:
        return held
    derived = {"change_7d": "score - score_7d_ago", "change_30d": "score - score_30d_ago",
               "top_percent": f"CASE WHEN {_UNKNOWN} THEN NULL ELSE CAST(RANK() OVER ({_RANKED} ORDER BY "
                              f"{_RANK_KEY} DESC) AS DOUBLE PRECISION) * 100.0 / COUNT(*) OVER ({_RANKED}) END"}
    listed = ", ".join(f"{derived[c.name]} AS {c.name}" if c.name in derived else c.name for c in table.columns)
    return f"SELECT {listed} FROM ({held}) e"


SCORING_TABLES = [lifecycle_transitions, scoring_days, *SPANS.values(), scoring_daily,
                  scoring_daily_values, scoring_builds]
# Tables an earlier version kept (its own copy of identity_map's lineage, order lines and catalogue), dropped.
RETIRED_TABLES = ("scoring_sources", "scoring_line_sources", "scoring_product_sources")


def create_scoring_tables(bind: sa.Engine | sa.Connection) -> None:
    """Create the tables; one left by an earlier version with other columns is dropped and created again,
    one it kept and this version does not is dropped."""
    def ensure(conn: sa.Connection) -> None:
        for name in RETIRED_TABLES:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        kinds = _kinds(conn)
        for table in SCORING_TABLES:
            if kinds.get(table.name) == "BASE TABLE":
                if column_names(conn, table.name) != [c.name for c in table.columns]:
                    viewed = table.name.removesuffix("_spans")
                    if table.name in {spans_name(t) for t in SPANNED} and kinds.get(viewed) == "VIEW":
                        conn.execute(sa.text(f"DROP VIEW {viewed}"))  # PostgreSQL keeps a view's table
                        kinds.pop(viewed)
                    conn.execute(sa.text(f"DROP TABLE {table.name}"))
        metadata.create_all(conn, tables=SCORING_TABLES)
        for table in SPANNED:  # an earlier version kept the days as a table: derived, so dropped
            if kinds.get(table.name) == "BASE TABLE":
                conn.execute(sa.text(f"DROP TABLE {table.name}"))
            if kinds.get(table.name) != "VIEW":
                conn.execute(sa.text(f"CREATE VIEW {table.name} AS {view_sql(table)}"))

    in_transaction(bind, ensure)


def _kinds(conn: sa.Connection) -> dict[str, str]:
    """'BASE TABLE' or 'VIEW' per scoring table or view present (information_schema: DuckDB and PostgreSQL)."""
    names = [t.name for t in SCORING_TABLES] + [t.name for t in SPANNED]
    rows = conn.execute(sa.text("SELECT table_name, table_type FROM information_schema.tables "
                                "WHERE table_schema = current_schema() AND table_name IN :names")
                        .bindparams(sa.bindparam("names", expanding=True)), {"names": names}).all()
    return {name: kind for name, kind in rows}
