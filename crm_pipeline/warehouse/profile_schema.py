"""Tables of the profile stage: golden records, the 360 profile (overall and per brand), the timeline.

All four are one snapshot as of one day (`as_of`): a build rewrites, in one transaction, the rows of
the contacts it recomputes (all of them on a full build), so a re-run for the same inputs gives
identical tables and readers never see a half-built profile. The state tables below
(`contact_daily`, `profile_*sources`, `profile_builds`) are what lets a build redo only the contacts
a drop touched or a day moved (`crm_pipeline/profiles/incremental.py`); `profile_changes` names them per
build, for the scoring stage, which reads the timeline and `contact_daily` these builds wrote.

- `golden_records`: one row per contact and golden field, with the value survivorship
  chose and where it came from (source entity, brand, key, record time, rule).
- `profile_360`: ONE row per contact: golden fields, brands, and the figures across
  all brands.
- `profile_360_brand`: one row per contact and brand with the per-brand figures. Per-brand
  figures live here, not as columns of `profile_360`, because the set of brands varies by
  installation (and grows); a fixed-width table cannot name them.
- `timeline`: one row per interaction up to `as_of`, numbered per contact in time order.

The scoring columns of `profile_360` and `profile_360_brand` (engagement score and growth, preferred
channel, lifecycle stage) are filled by the scoring stage for the same `as_of` (see
`crm_pipeline/scoring/`); they are empty until it has run for the profile's day.

Money is summed in each order's own currency: no FX conversion is done. `currencies`
lists the currencies behind a revenue figure so a mixed sum is visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from crm_pipeline.warehouse.schema import (add_missing_columns, column_names, create_server_indexes, in_transaction,
                                          metadata)

GOLDEN_FIELDS = ("first_name", "last_name", "email", "phone", "address_line1", "address_line2", "city",
                 "region", "postal_code", "country", "birth_date")

golden_records = sa.Table(
    "golden_records", metadata,
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("field", sa.String, nullable=False, comment="one of GOLDEN_FIELDS"),
    sa.Column("value", sa.String, nullable=False, comment="as text; birth_date as YYYY-MM-DD"),
    sa.Column("rule", sa.String, nullable=False, comment="most_recent / most_frequent / source_priority"),
    sa.Column("source_entity", sa.String, nullable=False, comment="customers / subscribers / orders"),
    sa.Column("brand", sa.String, nullable=False),
    sa.Column("source_key", sa.String, nullable=False),
    sa.Column("record_at", sa.DateTime(timezone=True), comment="the winning record's timestamp"),
    sa.Column("candidate_count", sa.Integer, nullable=False, comment="records that offered a value"),
)


def _figure_columns() -> list[sa.Column]:
    """Figures computed the same way per brand and across brands."""
    return [
        sa.Column("order_count", sa.Integer, nullable=False, comment="purchases: not cancelled, not fully refunded"),
        sa.Column("revenue", sa.Double, nullable=False, comment="sum of purchase totals; no FX conversion"),
        sa.Column("currencies", sa.String, comment="comma-separated currencies behind revenue"),
        sa.Column("average_order_value", sa.Double),
        sa.Column("first_order_date", sa.Date),
        sa.Column("last_order_date", sa.Date),
        sa.Column("purchased_unit_count", sa.Integer, nullable=False),
        sa.Column("returned_unit_count", sa.Integer, nullable=False),
        sa.Column("return_rate", sa.Double, comment="returned units / purchased units"),
        sa.Column("last_open_at", sa.DateTime(timezone=True)),
        sa.Column("last_click_at", sa.DateTime(timezone=True)),
        sa.Column("last_browse_at", sa.DateTime(timezone=True)),
        sa.Column("email_open_30d_count", sa.Integer, nullable=False),
        sa.Column("email_open_90d_count", sa.Integer, nullable=False),
        sa.Column("email_open_365d_count", sa.Integer, nullable=False),
        sa.Column("email_click_30d_count", sa.Integer, nullable=False),
        sa.Column("email_click_90d_count", sa.Integer, nullable=False),
        sa.Column("email_click_365d_count", sa.Integer, nullable=False),
        sa.Column("top_category_bought", sa.String, comment="top level of the category path, by units"),
        sa.Column("top_category_browsed", sa.String, comment="top level of the category path, by web events"),
        sa.Column("price_band_bought", sa.String, comment="low / mid / high by the brand's price terciles"),
    ]


def _scoring_columns() -> list[sa.Column]:
    """Filled from the scoring tables of the profile's day (NULL = not scored: no interaction yet)."""
    return [
        sa.Column("engagement_score", sa.Double, comment="decayed interaction points (engagement_scores)"),
        sa.Column("engagement_change_7d", sa.Double, comment="score minus the score as of 7 days earlier"),
        sa.Column("engagement_change_30d", sa.Double, comment="score minus the score as of 30 days earlier"),
        sa.Column("engagement_growth_band", sa.String, comment="rising / steady / falling"),
        sa.Column("engagement_top_percent", sa.Double, comment="rank by score as a top percentage (1 = top 1%)"),
        sa.Column("preferred_channel", sa.String, comment="email / web / store (channel_preferences)"),
        sa.Column("lifecycle_stage", sa.String, comment="prospect ... won_back (lifecycle_stages)"),
    ]


SCORING_COLUMNS = tuple(c.name for c in _scoring_columns())


def _golden_columns() -> list[sa.Column]:
    return [sa.Column(name, sa.Date if name == "birth_date" else sa.String) for name in GOLDEN_FIELDS]


profile_360 = sa.Table(
    "profile_360", metadata,
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    *_golden_columns(),
    sa.Column("brands", sa.String, nullable=False, comment="comma-separated brands with a record up to as_of"),
    sa.Column("brand_count", sa.Integer, nullable=False),
    *_figure_columns(),
    sa.Column("subscribed_brands", sa.String, comment="brands whose latest subscription state is subscribed"),
    sa.Column("email_consent_brands", sa.String, comment="brands the contact may be emailed for"),
    sa.Column("email_consent", sa.Boolean, nullable=False, comment="email consent for at least one brand"),
    *_scoring_columns(),
)

profile_360_brand = sa.Table(
    "profile_360_brand", metadata,
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("brand", sa.String, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    *_figure_columns(),
    sa.Column("subscription_status", sa.String, comment="of the brand's latest subscriber record as of as_of"),
    sa.Column("subscribed_date", sa.Date, comment="when that record subscribed"),
    sa.Column("email_consent", sa.Boolean, nullable=False,
              comment="subscribed, and no unsubscribe/bounce/complaint at or after the last subscribe"),
    *_scoring_columns(),
)

TIMELINE_EVENT_TYPES = ("order", "return", "subscribe", "unsubscribe", "email_send", "email_open", "email_click",
                        "email_bounce", "email_complaint", "page_view", "product_view", "add_to_cart", "search",
                        "checkout")

timeline = sa.Table(
    "timeline", metadata,
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("event_number", sa.BigInteger, nullable=False, comment="1, 2, ... per contact in time order"),
    sa.Column("brand", sa.String, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event_type", sa.String, nullable=False, comment="one of TIMELINE_EVENT_TYPES"),
    sa.Column("detail", sa.String, nullable=False),
    sa.Column("source_entity", sa.String, nullable=False),
    sa.Column("source_key", sa.String, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
)

# --- The stage's own memory, for incremental builds -----------------------------------------------------

contact_daily = sa.Table(  # the compact history windows are summed from: one row per contact, brand and UTC day
    "contact_daily", metadata,
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("brand", sa.String, nullable=False),
    sa.Column("day", sa.Date, nullable=False, comment="UTC day; every day a record of the contact is dated on"),
    sa.Column("record_count", sa.Integer, nullable=False, comment="dated times of any record on the day"),
    sa.Column("order_count", sa.Integer, nullable=False),
    sa.Column("purchase_count", sa.Integer, nullable=False),
    sa.Column("revenue", sa.Double, nullable=False, comment="purchase totals; no FX conversion"),
    sa.Column("email_send_count", sa.Integer, nullable=False),
    sa.Column("email_open_count", sa.Integer, nullable=False),
    sa.Column("email_click_count", sa.Integer, nullable=False),
    sa.Column("email_opt_out_count", sa.Integer, nullable=False, comment="unsubscribe, bounce, complaint"),
    sa.Column("web_event_count", sa.Integer, nullable=False),
    sa.Column("product_view_count", sa.Integer, nullable=False),
    sa.Column("last_open_at", sa.DateTime(timezone=True)),
    sa.Column("last_click_at", sa.DateTime(timezone=True)),
    sa.Column("last_opt_out_at", sa.DateTime(timezone=True)),
    sa.Column("last_browse_at", sa.DateTime(timezone=True)),
)

contact_browse_daily = sa.Table(  # what top_category_browsed is counted from (profiles/browse.py)
    "contact_browse_daily", metadata,
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("brand", sa.String, nullable=False),
    sa.Column("day", sa.Date, nullable=False, comment="UTC day of the web events"),
    sa.Column("top_category", sa.String, nullable=False, comment="top level of the viewed product's category"),
    sa.Column("web_event_count", sa.Integer, nullable=False, comment="web events on a product of that category"),
)

# What the last build read: each staged record's contact by its lineage (from identity_map), order lines and the
# catalogue. Comparing them with the tables as they are now names the contacts a drop touched. A staged record's
# entity, brand and key never change under its lineage, so `profile_sources` keeps only its contact: the copy of
# identity_map's every row is a full build's largest write after the timeline.
profile_sources = sa.Table(
    "profile_sources", metadata,
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("_file_id", sa.Integer, nullable=False),
    sa.Column("_row_number", sa.Integer, nullable=False),
)
# Columns an older release kept in a state table and this one does not: dropped where found (the rows stay valid).
_DROPPED_COLUMNS = {profile_sources.name: ("entity", "brand", "source_key")}

profile_line_sources = sa.Table(
    "profile_line_sources", metadata,
    sa.Column("brand", sa.String, nullable=False),
    sa.Column("order_id", sa.String, nullable=False),
    sa.Column("_file_id", sa.Integer, nullable=False),
    sa.Column("_row_number", sa.Integer, nullable=False),
)

profile_product_sources = sa.Table(
    "profile_product_sources", metadata,
    sa.Column("brand", sa.String, nullable=False),
    sa.Column("sku", sa.String, nullable=False),
    sa.Column("_file_id", sa.Integer, nullable=False),
    sa.Column("_row_number", sa.Integer, nullable=False),
)

# Per file of `profile_sources` and `profile_line_sources` (`source`), a summary of its rows as the build wrote
# them (count, sum of row hashes), kept as the builds write: a build hashes this run's side only to find the files
# whose rows changed. Empty or stale (a warehouse from before it, an erasure): those files' rows are compared.
profile_source_files = sa.Table(
    "profile_source_files", metadata,
    sa.Column("source", sa.String, nullable=False, comment="profile_sources / profile_line_sources"),
    sa.Column("_file_id", sa.Integer, nullable=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("hash_sum", sa.Numeric(38, 0), nullable=False, comment="sum of the rows' hashes (DuckDB's hash)"),
)

profile_builds = sa.Table(  # one row per build: the day it was as of, how it ran, how many contacts it redid
    "profile_builds", metadata,
    sa.Column("build_number", sa.Integer, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("mode", sa.String, nullable=False, comment="full / incremental"),
    sa.Column("reason", sa.String, nullable=False, comment="why full, or what made contacts due"),
    sa.Column("contacts_recomputed", sa.Integer, nullable=False),
    sa.Column("rules_key", sa.String, nullable=False, comment="the survivorship rules the build used"),
)

# The contacts each incremental build recomputed and why (a full build recomputes everyone and logs none):
# the stages after profiles redo what the builds since their last run redid, without a lineage copy of their own.
profile_changes = sa.Table(
    "profile_changes", metadata,
    sa.Column("build_number", sa.Integer, nullable=False),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("reason", sa.String, nullable=False,
              comment="records / order_lines / catalogue / new_day (records dated into the build's day) / "
                      "windows (opens or clicks left a 30, 90 or 365-day window)"),
    sa.Column("since_day", sa.Integer,
              comment="UTC day number of the earliest day whose timeline rows the build changed; NULL: any day "
                      "(the contact was rebuilt whole)"),
)

PROFILE_TABLES = [golden_records, profile_360, profile_360_brand, timeline]
PROFILE_STATE_TABLES = [contact_daily, profile_sources, profile_line_sources, profile_product_sources,
                        profile_source_files, profile_builds, profile_changes]

# Lookups by contact on a serving database. DuckDB scans columnar data fast without them, and an
# ART index there slows the bulk delete-then-insert, so they are created on other backends only.
_SERVING_INDEXES = (
    ("ix_golden_records_contact", "golden_records", "contact_id"),
    ("ix_profile_360_contact", "profile_360", "contact_id"),
    ("ix_profile_360_brand_contact", "profile_360_brand", "contact_id"),
    ("ix_timeline_contact", "timeline", "contact_id"),
    ("ix_contact_daily_contact", "contact_daily", "contact_id"),
    ("ix_contact_daily_day", "contact_daily", "day"),
    ("ix_profile_sources_contact", "profile_sources", "contact_id"),
)


def create_profile_tables(bind: sa.Engine | sa.Connection) -> None:
    """Create the profile tables if they are missing (safe to call on every run)."""
    metadata.create_all(bind, tables=PROFILE_TABLES + PROFILE_STATE_TABLES)
    # a warehouse built before the scoring columns existed gets them (no DDL when present)
    add_missing_columns(bind, {profile_360.name: SCORING_COLUMNS, profile_360_brand.name: SCORING_COLUMNS,
                               profile_changes.name: ("since_day",)})
    _drop_columns(bind, _DROPPED_COLUMNS)
    create_server_indexes(bind, _SERVING_INDEXES)


def _drop_columns(bind: sa.Engine | sa.Connection, dropped: dict[str, tuple[str, ...]]) -> None:
    """Drop the columns of `dropped` (table -> columns) an older warehouse still has (no DDL when none is left)."""
    def drop(conn: sa.Connection) -> None:
        for name, columns in dropped.items():
            present = set(column_names(conn, name))
            for column in columns:
                if column in present:
                    conn.execute(sa.text(f"ALTER TABLE {name} DROP COLUMN {column}"))

    in_transaction(bind, drop)


# --- How a build writes -------------------------------------------------------------------------------------

@contextmanager
def unordered_writes(conn: sa.Connection) -> Iterator[None]:
    """On DuckDB, let the statements of the `with` block write rows in any order (`preserve_insertion_order`
    off): keeping a large INSERT ... SELECT in its input's order buffers rows, which spills under a memory
    limit. For a connection outside a transaction (the setting is the session's, kept across a rollback: it
    is set back after the block, in a transaction of its own). No profile table relies on its rows' physical
    order (the timeline is numbered). Nothing elsewhere: PostgreSQL keeps no such order."""
    duckdb = conn.dialect.name == "duckdb"
    if duckdb:
        conn.execute(sa.text("SET preserve_insertion_order = false"))
        conn.commit()
    try:
        yield
    finally:
        if duckdb:
            conn.execute(sa.text("RESET preserve_insertion_order"))
            conn.commit()
