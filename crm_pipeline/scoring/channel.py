"""The preferred channel: the channel a contact buys through, from conversions, or `unknown` and why.

Evidence per contact and brand over the last `lookback_days` up to as_of: purchase days per order
channel (web, app, store, marketplace) and `email` for a purchase day with an email click of the
same brand in the `email_attribution_days` before the order (last click wins: that order counts for
email, not for its own channel). Page views and opens are not conversions. Across brands the brand
counts are summed.

The preferred channel is the one with the most conversions, when there are at least `min_evidence`
of them and no other channel has as many; otherwise `unknown`, with the reason (`no_conversions`,
`thin_evidence`, `tie`) and the counts beside it. No population prior decides for anyone: a contact
with one web order is `unknown` (thin evidence), not `web` because most people buy on the web.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.profiles.sql import day_number
from crm_pipeline.scoring.carry import only_due
from crm_pipeline.scoring.config import ORDER_CHANNELS, ScoringConfig
from crm_pipeline.scoring.engagement import ALL_BRANDS

ALL_CHANNELS = (*ORDER_CHANNELS, "email")


def channel_sql(config: ScoringConfig, due: str | None = None, into: str = "channel_preferences") -> str:
    """INSERT of `channel_preferences` for :as_of, one row per key in tmp_scoring_known (of the `due` contacts only,
    when given).

    Reads the purchase days' conversions from `scoring_daily` (attributed when the day was aggregated)."""
    chans = config.channels
    top = f"GREATEST({', '.join(f'n_{c}' for c in chans)})"
    ties = " + ".join(f"CASE WHEN n_{c} = top THEN 1 ELSE 0 END" for c in chans)
    pick = " ".join(f"WHEN n_{c} = top THEN '{c}'" for c in chans)
    return f"""
INSERT INTO {into} (as_of, contact_id, brand, preferred_channel, preferred_channel_share,
                                 web_conversion_count, app_conversion_count, store_conversion_count,
                                 marketplace_conversion_count, email_conversion_count, evidence_count, reason)
WITH per_brand AS (
    SELECT s.contact_id, brand, {", ".join(f"SUM({c}_conversion) AS n_{c}" for c in ALL_CHANNELS)}
    FROM scoring_daily s{only_due('s', due)} WHERE day >= :since_day AND day <= :as_of_day GROUP BY s.contact_id, brand
),
rolled AS (
    SELECT * FROM per_brand
    UNION ALL
    SELECT contact_id, '{ALL_BRANDS}', {", ".join(f"SUM(n_{c})" for c in ALL_CHANNELS)}
    FROM per_brand GROUP BY contact_id
),
evidence AS (
    SELECT k.contact_id, k.brand, {", ".join(f"COALESCE(r.n_{c}, 0) AS n_{c}" for c in ALL_CHANNELS)},
           {" + ".join(f"COALESCE(r.n_{c}, 0)" for c in chans)} AS n_all
    FROM tmp_scoring_known k{only_due('k', due)} LEFT JOIN rolled r ON r.contact_id = k.contact_id AND r.brand = k.brand
),
topped AS (SELECT e.*, {top} AS top FROM evidence e),
judged AS (
    SELECT topped.*, {ties} AS ties,
           CASE WHEN n_all = 0 THEN 'no_conversions' WHEN n_all < :min_evidence THEN 'thin_evidence'
                WHEN {ties} > 1 THEN 'tie' END AS reason
    FROM topped
)
SELECT CAST(:as_of AS DATE), contact_id, brand,
       CASE WHEN reason IS NULL THEN CASE {pick} END ELSE 'unknown' END,
       CASE WHEN reason IS NULL THEN CAST(top AS DOUBLE PRECISION) / n_all END,
       {", ".join(f"n_{c}" for c in ALL_CHANNELS)}, n_all, reason
FROM judged
"""


def build_channels(conn: sa.Connection, config: ScoringConfig, params: dict, due: str | None = None,
                   into: str | None = None) -> int:
    """Replace the day's `channel_preferences` (inside the caller's transaction), or fill the empty copy `into`;
    returns rows written."""
    if into is None:
        conn.execute(sa.text("DELETE FROM channel_preferences WHERE as_of = :as_of"), {"as_of": params["as_of"]})
    table = into or "channel_preferences"
    as_of_day = day_number(params["as_of"])
    bound = {"as_of": params["as_of"], "as_of_day": as_of_day, "min_evidence": int(config.min_evidence),
             "since_day": as_of_day + 1 - config.channel_lookback_days}  # the lookback's first UTC day
    conn.execute(sa.text(channel_sql(config, due, table)), bound)
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE as_of = :as_of"),
                        {"as_of": params["as_of"]}).scalar_one()
