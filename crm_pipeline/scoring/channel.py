"""The preferred channel: where a contact most likely responds (email, web visit, store).

Evidence per contact and brand, over the last `lookback_days` up to as_of: email responses = days
with an email open or click, web visits = days with a web event, store visits = days with a store
purchase. Across brands the brand counts are summed.

The estimate is the posterior mean of a Dirichlet prior centred on the population:
    p(c) = (n_c + s * share_c) / (N + s)
with N = the contact's responses, s = `prior_strength` (pseudo-responses) and share_c = channel c's
share of all responses in the population that day (same brand scope; equal shares when nobody
responded). A contact with no history gets the population's favourite; a few responses move them
only part of the way; a long history speaks for itself. The highest p wins (ties: the order in the
config's channel list). The counts and probabilities are stored beside the choice, so a marketer can
see how much evidence it rests on (`low_evidence` when N < min_evidence).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from crm_pipeline.contract.entities import WEB_EVENT_TYPES
from crm_pipeline.profiles.sql import in_list, utc_day
from crm_pipeline.scoring.config import CHANNELS, ScoringConfig
from crm_pipeline.scoring.engagement import ALL_BRANDS

EMAIL_RESPONSES = ("email_open", "email_click")


def _choice(channels: tuple[str, ...]) -> str:
    """CASE picking the channel with the highest posterior; earlier channels win ties."""
    whens = []
    for i, c in enumerate(channels[:-1]):
        beats = " AND ".join(f"p_{c} >= p_{o}" for o in channels[i + 1:])
        whens.append(f"WHEN {beats} THEN '{c}'")
    return f"CASE {' '.join(whens)} ELSE '{channels[-1]}' END" if whens else f"'{channels[0]}'"


def channel_sql(config: ScoringConfig) -> str:
    """INSERT of `channel_preferences` for :as_of, one row per key in tmp_scoring_known."""
    chans = config.channels
    day = utc_day("occurred_at")
    total = " + ".join(f"n_{c}" for c in chans)
    share = {c: (f"CASE WHEN pop.n_all > 0 THEN CAST(pop.n_{c} AS DOUBLE PRECISION) / pop.n_all "
                 f"ELSE 1.0 / {len(chans)} END") for c in chans}
    posterior = {c: (f"CASE WHEN e.n_all + :prior_strength > 0 THEN (e.n_{c} + :prior_strength * {share[c]}) "
                     f"/ (e.n_all + :prior_strength) ELSE {share[c]} END") for c in chans}
    probs = ", ".join(f"{posterior[c]} AS p_{c}" for c in chans)
    best = " ".join(f"WHEN '{c}' THEN p_{c}" for c in chans)
    return f"""
INSERT INTO channel_preferences (as_of, contact_id, brand, preferred_channel, preferred_channel_probability,
                                 email_response_count, web_visit_count, store_visit_count, evidence_count,
                                 p_email, p_web, p_store, low_evidence)
WITH responses AS (
    SELECT contact_id, brand, CASE WHEN event_type IN ({in_list(EMAIL_RESPONSES)}) THEN 'email' ELSE 'web' END
               AS channel, COUNT(DISTINCT {day}) AS n
    FROM timeline
    WHERE event_type IN ({in_list(EMAIL_RESPONSES + WEB_EVENT_TYPES)}) AND occurred_at >= :since
      AND occurred_at < :as_of_end
    GROUP BY contact_id, brand, CASE WHEN event_type IN ({in_list(EMAIL_RESPONSES)}) THEN 'email' ELSE 'web' END
    UNION ALL
    SELECT contact_id, brand, 'store', COUNT(DISTINCT purchase_day) FROM tmp_scoring_purchases
    WHERE channel = 'store' AND ordered_at >= :since
    GROUP BY contact_id, brand
),
per_brand AS (
    SELECT contact_id, brand, {", ".join(f"SUM(CASE WHEN channel = '{c}' THEN n ELSE 0 END) AS n_{c}"
                                         for c in CHANNELS)}
    FROM responses GROUP BY contact_id, brand
),
rolled AS (
    SELECT * FROM per_brand
    UNION ALL
    SELECT contact_id, '{ALL_BRANDS}', {", ".join(f"SUM(n_{c})" for c in CHANNELS)} FROM per_brand GROUP BY contact_id
),
evidence AS (
    SELECT k.contact_id, k.brand, {", ".join(f"COALESCE(r.n_{c}, 0) AS n_{c}" for c in CHANNELS)},
           {" + ".join(f"COALESCE(r.n_{c}, 0)" for c in chans)} AS n_all
    FROM tmp_scoring_known k LEFT JOIN rolled r ON r.contact_id = k.contact_id AND r.brand = k.brand
),
pop AS (
    SELECT brand, {", ".join(f"SUM(n_{c}) AS n_{c}" for c in chans)}, SUM({total}) AS n_all
    FROM evidence GROUP BY brand
),
estimated AS (
    SELECT e.contact_id, e.brand, e.n_email, e.n_web, e.n_store, e.n_all, {probs}
    FROM evidence e JOIN pop ON pop.brand = e.brand
),
chosen AS (
    SELECT estimated.*, {_choice(chans)} AS choice FROM estimated
)
SELECT CAST(:as_of AS DATE), contact_id, brand, choice, CASE choice {best} END,
       n_email, n_web, n_store, n_all,
       {", ".join(f"p_{c}" if c in chans else "CAST(NULL AS DOUBLE PRECISION)" for c in CHANNELS)},
       n_all < :min_evidence
FROM chosen
"""


def build_channels(conn: sa.Connection, config: ScoringConfig, params: dict) -> int:
    """Replace the day's `channel_preferences` (inside the caller's transaction); returns rows written."""
    conn.execute(sa.text("DELETE FROM channel_preferences WHERE as_of = :as_of"), {"as_of": params["as_of"]})
    conn.execute(sa.text(channel_sql(config)), {
        "as_of": params["as_of"], "as_of_end": params["as_of_end"],
        "since": params["as_of_end"] - dt.timedelta(days=config.channel_lookback_days),
        "prior_strength": float(config.prior_strength), "min_evidence": int(config.min_evidence)})
    return conn.execute(sa.text("SELECT COUNT(*) FROM channel_preferences WHERE as_of = :as_of"),
                        {"as_of": params["as_of"]}).scalar_one()

