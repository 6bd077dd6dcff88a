"""Every contact gets a row: one with nothing to score is `unknown` in engagement, lifecycle and channel,
with the reason.

The contacts are those of `identity_map` (every contact has its records there). A contact has
nothing to score when it has no dated interaction and no purchase up to as_of: an account or
subscription record without activity, or orders that were all cancelled or refunded. (A contact
whose timeline starts after the day, seen in a backfill, is not known yet and gets no row; an
account without any dated record cannot be placed in time and counts from its first day in the
warehouse.) Those contacts get one across-brands row
(brand '') in each table: growth band `unknown` (score 0), stage `unknown` and channel `unknown`,
each with the same `reason`, so a marketer sees why rather than a blank.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.scoring.engagement import ALL_BRANDS
from crm_pipeline.scoring.spans import holding
from crm_pipeline.warehouse.scoring_schema import spans_name

# The reason from the kinds of record the contact has (identity_map), most telling first.
UNSCORED_SQL = f"""
CREATE TEMPORARY TABLE tmp_scoring_unscored AS
WITH kinds AS (
    SELECT m.contact_id,
           MAX(CASE WHEN m.entity = 'orders' THEN 1 ELSE 0 END) AS has_orders,
           MAX(CASE WHEN m.entity = 'subscribers' THEN 1 ELSE 0 END) AS has_subscription,
           MAX(CASE WHEN m.entity = 'customers' THEN 1 ELSE 0 END) AS has_account
    FROM identity_map m{{scope}}
    WHERE NOT EXISTS (SELECT 1 FROM tmp_scoring_known k WHERE k.brand = '{ALL_BRANDS}' AND k.contact_id = m.contact_id)
    GROUP BY m.contact_id
),
seen AS (
    SELECT t.contact_id, MIN(t.occurred_at) AS first_at
    FROM timeline t JOIN kinds k ON k.contact_id = t.contact_id GROUP BY t.contact_id
)
SELECT k.contact_id,
       CASE WHEN s.first_at IS NOT NULL THEN 'only_cancelled_or_refunded_orders'
            WHEN k.has_orders = 1 THEN 'orders_without_a_usable_date'
            WHEN k.has_subscription = 1 THEN 'subscription_without_activity'
            WHEN k.has_account = 1 THEN 'account_without_activity'
            ELSE 'no_dated_records' END AS reason
FROM kinds k LEFT JOIN seen s ON s.contact_id = k.contact_id
-- a contact whose timeline starts after the day is not known yet on it (a backfill): no row at all
WHERE s.first_at IS NULL OR s.first_at < :as_of_end
"""

_INSERTS = (
    f"""INSERT INTO {{engagement_scores}} (as_of, contact_id, brand, score, score_7d_ago, score_30d_ago, change_7d,
            change_30d, activity_points, previous_activity_points, growth_rate, growth_band, top_percent,
            interaction_count, first_interaction_date, last_interaction_date)
        SELECT CAST(:as_of AS DATE), contact_id, '{ALL_BRANDS}', 0, 0, 0, 0, 0, 0, 0, NULL, 'unknown', NULL, 0,
               NULL, NULL
        FROM tmp_scoring_unscored""",
    f"""INSERT INTO {{lifecycle_stages}} (as_of, contact_id, brand, stage, stage_since_date, purchase_count,
            last_purchase_date, reason)
        SELECT CAST(:as_of AS DATE), contact_id, '{ALL_BRANDS}', 'unknown', CAST(:as_of AS DATE), 0, NULL, reason
        FROM tmp_scoring_unscored""",
    f"""INSERT INTO {{channel_preferences}} (as_of, contact_id, brand, preferred_channel, preferred_channel_share,
            web_conversion_count, app_conversion_count, store_conversion_count, marketplace_conversion_count,
            email_conversion_count, evidence_count, reason)
        SELECT CAST(:as_of AS DATE), contact_id, '{ALL_BRANDS}', 'unknown', NULL, 0, 0, 0, 0, 0, 0, reason
        FROM tmp_scoring_unscored""",
)


def add_unscored(conn: sa.Connection, params: dict, into: dict[str, str], scope: str | None = None) -> int:
    """Insert the `unknown` rows of the day of the contacts with no row in `tmp_scoring_known` into the copies
    `into` names for the engagement, lifecycle and channel tables (of the contacts in the table `scope` alone,
    when given: an incremental run's, see `carry.unscored_scope`); returns the contacts. They stay in
    `tmp_scoring_unscored` (see `drop_unscored`)."""
    conn.execute(sa.text("DROP TABLE IF EXISTS tmp_scoring_unscored"))
    # the scope's contacts without a known row first: a handful, so identity_map's join keeps few rows
    only = "" if scope is None else (f" JOIN (SELECT contact_id FROM {scope} x WHERE NOT EXISTS (SELECT 1 FROM "
                                     f"tmp_scoring_known k WHERE k.brand = '{ALL_BRANDS}' AND k.contact_id = "
                                     "x.contact_id)) sc ON sc.contact_id = m.contact_id")
    conn.execute(sa.text(UNSCORED_SQL.format(scope=only)), {"as_of_end": params["as_of_end"]})
    for statement in _INSERTS:
        conn.execute(sa.text(statement.format(**into)), {"as_of": params["as_of"]})
    return conn.execute(sa.text("SELECT COUNT(*) FROM tmp_scoring_unscored")).scalar_one()


def unscored_reasons(conn: sa.Connection, as_of) -> dict[str, int]:
    """Contacts with nothing to score on `as_of` per reason, from the stored rows (an incremental run redoes only
    some of them)."""
    reasons = dict(conn.execute(sa.text(
        f"SELECT reason, COUNT(*) FROM {spans_name('lifecycle_stages')} t WHERE {holding()} AND brand = '{ALL_BRANDS}' "
        "AND stage = 'unknown' GROUP BY reason"), {"as_of": as_of}).all())
    return {str(k): int(v) for k, v in reasons.items()}


def drop_unscored(conn: sa.Connection) -> None:
    conn.execute(sa.text("DROP TABLE IF EXISTS tmp_scoring_unscored"))
