"""The engagement score: decayed points per contact and brand, its growth and a growth band.

score(day) = sum over interactions on or before `day` of points * 0.5 ** ((day - interaction day) /
half_life_days). The score 7 and 30 days earlier is recomputed from the same data (interactions on
or before that day), so a fresh warehouse has growth on its first run; one pass gives all three
(each day's points decayed to each of the three days). The pass reads `scoring_daily` (points per
contact, brand and UTC day), not the timeline: decay is linear, so a day's interactions decay
together and the sum over days equals the sum over interactions. Ages are whole UTC
days (as_of minus the interaction's UTC day), so an interaction on as_of counts in full.

Across brands (brand '') the score is the sum of the brand scores (decay is linear).

Growth compares activity, not the decayed score (a score decays by itself, so a person with no news
read as "falling" under a score comparison). Activity = positive points earned, without decay, in
two equal windows of band_window_days: the last ones up to as_of (W) and the ones before (P).
    dormant   W = 0 (nothing in the current window)
    steady    W + P < min_volume_points (too little to call a trend), or the rate in between
    rising    (W - P) / max(P, min_base_points) >= rising_at
    falling   (W - P) / max(P, min_base_points) <= falling_at
So `falling` always holds someone still active now, just less than before.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.profiles.sql import day_number
from crm_pipeline.scoring.config import ScoringConfig
from crm_pipeline.scoring.sql import day_date

ALL_BRANDS = ""
_HALF = "CAST(0.5 AS DOUBLE PRECISION)"


def _decayed(age: str, lag: int) -> str:
    """A day's points decayed to the day `lag` days before as_of; days after that day count nothing."""
    if lag == 0:
        return f"points * POWER({_HALF}, CAST({age} AS DOUBLE PRECISION) / :half_life)"
    return (f"CASE WHEN {age} >= {lag} THEN points * POWER({_HALF}, CAST({age} - {lag} AS DOUBLE PRECISION) "
            f"/ :half_life) ELSE 0 END")


_COLUMNS = ("score, score_7d_ago, score_30d_ago, change_7d, change_30d, activity_points, previous_activity_points, "
            "growth_rate, growth_band, interaction_count, first_interaction_date, last_interaction_date")


def engagement_sql(config: ScoringConfig, into: str, only: str | None = None) -> str:
    """INSERT of the day's engagement rows into the copy `into` for :as_of (reads `scoring_daily` up to
    :as_of_day), of the contacts in `only` alone when given. The rank (`top_percent`) is left to the view, which
    ranks the day's rows of everyone."""
    window = int(config.band_window_days)
    base = "CASE WHEN previous_activity > :min_base THEN previous_activity ELSE :min_base END"
    rate = f"(activity - previous_activity) / {base}"
    restricted = "" if only is None else f" JOIN {only} o ON o.contact_id = s.contact_id"
    return f"""
INSERT INTO {into} (as_of, contact_id, brand, {_COLUMNS})
WITH days AS (
    SELECT s.contact_id, brand, :as_of_day - day AS age, points, positive_points, interaction_count
    FROM scoring_daily s{restricted} WHERE day <= :as_of_day
),
per_brand AS (
    SELECT contact_id, brand, SUM({_decayed('age', 0)}) AS score, SUM({_decayed('age', 7)}) AS score_7d_ago,
           SUM({_decayed('age', 30)}) AS score_30d_ago,
           SUM(CASE WHEN age < {window} THEN positive_points ELSE 0 END) AS activity,
           SUM(CASE WHEN age >= {window} AND age < {2 * window} THEN positive_points ELSE 0 END)
               AS previous_activity,
           SUM(interaction_count) AS interaction_count, MAX(age) AS oldest_age, MIN(age) AS newest_age
    FROM days GROUP BY contact_id, brand
),
rolled AS (
    SELECT * FROM per_brand
    UNION ALL
    SELECT contact_id, '{ALL_BRANDS}', SUM(score), SUM(score_7d_ago), SUM(score_30d_ago), SUM(activity),
           SUM(previous_activity), SUM(interaction_count), MAX(oldest_age), MIN(newest_age)
    FROM per_brand GROUP BY contact_id
),
rates AS (SELECT r.*, CASE WHEN activity > 0 THEN {rate} END AS growth_rate FROM rolled r),
scored AS (
    SELECT contact_id, brand, score, score_7d_ago, score_30d_ago, score - score_7d_ago AS change_7d,
           score - score_30d_ago AS change_30d, activity AS activity_points,
           previous_activity AS previous_activity_points, growth_rate,
           CASE WHEN activity <= 0 THEN 'dormant' WHEN activity + previous_activity < :min_volume THEN 'steady'
                WHEN growth_rate >= :rising_at THEN 'rising' WHEN growth_rate <= :falling_at THEN 'falling'
                ELSE 'steady' END AS growth_band,
           CAST(interaction_count AS INTEGER) AS interaction_count,
           {day_date(':as_of_day - oldest_age')} AS first_interaction_date,
           {day_date(':as_of_day - newest_age')} AS last_interaction_date
    FROM rates
)
SELECT CAST(:as_of AS DATE), contact_id, brand, {_COLUMNS} FROM scored
"""


def engagement_params(config: ScoringConfig, params: dict) -> dict:
    return {"as_of": params["as_of"], "as_of_day": day_number(params["as_of"]),
             "half_life": float(config.half_life_days),
             "min_base": float(config.min_base_points), "min_volume": float(config.min_volume_points),
             "rising_at": float(config.rising_at),
             "falling_at": float(config.falling_at)}


def build_engagement(conn: sa.Connection, config: ScoringConfig, params: dict, into: str,
                     only: str | None = None) -> int:
    """Fill the empty copy `into` with the day's engagement rows (of the contacts in `only` alone, when given;
    inside the caller's transaction); returns the rows computed."""
    conn.execute(sa.text(engagement_sql(config, into, only)), engagement_params(config, params))
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM {into}")).scalar_one()
