"""The lifecycle: each contact's stage per brand (and across brands) on a day, and the moves between stages.

Stages (thresholds in scoring.yaml, `lifecycle`), from the purchase days (same-day orders merged) up to
the day: n purchase days, `since` = days since the last one, `gap` = days between the last two.
    prospect    n = 0 (known: any interaction so far)
    lapsed      since > lapsed_days
    lapsing     since > active_days
    won_back    active, n >= 2 and gap > active_days (came back after lapsing or lapsed)
    loyal       active, n >= loyal_min_purchases
    repeat      active, n >= 2
    first_time  active, n = 1
(checked top down). A contact enters as `new` -> prospect on the day of their first interaction
(`new` -> first_time when that is a purchase).

A stage can only change on a purchase day or when a threshold is crossed with no purchase in
between (last purchase + active_days + 1 -> lapsing, + lapsed_days + 1 -> lapsed). So the moves are
derived from the purchase history directly, one row per possible change, rather than from a stage
per contact per day: the same answer as comparing every day's stages with the day before (a test
checks exactly that with `stages_on_days`), for any window, on a fresh warehouse, in one pass.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.profiles.sql import as_of_params, day_number, utc_day
from crm_pipeline.scoring.carry import held_known_sql
from crm_pipeline.scoring.config import STAGES, ScoringConfig
from crm_pipeline.scoring.engagement import ALL_BRANDS
from crm_pipeline.scoring.scratch import create_daily_purchases, create_scratch, drop_scratch
from crm_pipeline.scoring.spans import holding
from crm_pipeline.scoring.sql import day_date
from crm_pipeline.warehouse.bulk import read_frame
from crm_pipeline.warehouse.scoring_schema import spans_name

FUNNEL_ORDER = ("new", *STAGES)


def stage_case(config: ScoringConfig, n: str, since: str, gap: str) -> str:
    """The stage for n purchase days, `since` days after the last and `gap` days between the last two.

    Thresholds are validated whole numbers from the config, written in as literals.
    """
    active, lapsed, loyal = int(config.active_days), int(config.lapsed_days), int(config.loyal_min_purchases)
    return (f"CASE WHEN {n} = 0 THEN 'prospect' WHEN {since} > {lapsed} THEN 'lapsed' "
            f"WHEN {since} > {active} THEN 'lapsing' "
            f"WHEN {n} >= 2 AND {gap} > {active} THEN 'won_back' "
            f"WHEN {n} >= {loyal} THEN 'loyal' WHEN {n} >= 2 THEN 'repeat' ELSE 'first_time' END")


# Purchase days (UTC day numbers) per contact and brand, and across brands (brand '').
_PURCHASE_DAYS = f"""
    brand_days AS (SELECT DISTINCT contact_id, brand, purchase_day FROM tmp_scoring_purchases),
    purchase_days AS (
        SELECT contact_id, brand, purchase_day FROM brand_days
        UNION ALL
        SELECT DISTINCT contact_id, '{ALL_BRANDS}', purchase_day FROM brand_days
    )"""


def changes_sql(config: ScoringConfig, known: str = "tmp_scoring_known") -> str:
    """Every stage change up to :as_of_day: contact_id, brand, change_day, step, from_stage, to_stage,
    purchase_count and last_purchase_day after the change (UTC day numbers; reads tmp_scoring_purchases
    and tmp_scoring_known)."""
    active, lapsed = int(config.active_days), int(config.lapsed_days)
    before = stage_case(config, "s.n - 1", "(s.d - 1) - s.prev", "s.prev - s.prev2")
    after = stage_case(config, "s.n", "0", "s.d - s.prev")
    return f"""
WITH {_PURCHASE_DAYS},
seq AS (
    SELECT contact_id, brand, purchase_day AS d,
           ROW_NUMBER() OVER (PARTITION BY contact_id, brand ORDER BY purchase_day) AS n,
           LAG(purchase_day) OVER (PARTITION BY contact_id, brand ORDER BY purchase_day) AS prev,
           LAG(purchase_day, 2) OVER (PARTITION BY contact_id, brand ORDER BY purchase_day) AS prev2,
           LEAD(purchase_day) OVER (PARTITION BY contact_id, brand ORDER BY purchase_day) AS next
    FROM purchase_days
),
firsts AS (
    SELECT k.contact_id, k.brand, k.first_day, s.d AS first_purchase
    FROM {known} k LEFT JOIN seq s ON s.contact_id = k.contact_id AND s.brand = k.brand AND s.n = 1
),
changes AS (
    SELECT contact_id, brand, first_day AS change_day, 0 AS step, 'new' AS from_stage, 'prospect' AS to_stage,
           0 AS purchase_count, CAST(NULL AS INTEGER) AS last_purchase_day
    FROM firsts WHERE first_purchase IS NULL OR first_purchase > first_day
    UNION ALL
    SELECT s.contact_id, s.brand, s.d, 1,
           CASE WHEN s.n > 1 THEN {before} WHEN s.d > f.first_day THEN 'prospect' ELSE 'new' END,
           {after}, s.n, s.d
    FROM seq s JOIN firsts f ON f.contact_id = s.contact_id AND f.brand = s.brand
    UNION ALL
    SELECT s.contact_id, s.brand, s.d + {active + 1}, 2, {after}, 'lapsing', s.n, s.d
    FROM seq s WHERE s.next IS NULL OR s.next > s.d + {active + 1}
    UNION ALL
    SELECT s.contact_id, s.brand, s.d + {lapsed + 1}, 3, 'lapsing', 'lapsed', s.n, s.d
    FROM seq s WHERE s.next IS NULL OR s.next > s.d + {lapsed + 1}
)
SELECT * FROM changes WHERE change_day <= :as_of_day AND from_stage <> to_stage
"""


def build_lifecycle(conn: sa.Connection, config: ScoringConfig, params: dict,
                    known: str = "tmp_scoring_known", into: str | None = None) -> dict:
    """Replace the day's `lifecycle_stages` (or fill the empty copy `into`) and the day's `lifecycle_transitions`
    (scratch tables ready) of the contacts in `known` (the purchases scratch holds theirs)."""
    as_of = params["as_of"]
    conn.execute(sa.text("DROP TABLE IF EXISTS tmp_scoring_changes"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE tmp_scoring_changes AS {changes_sql(config, known)}"),
                 {"as_of_day": day_number(as_of)})
    if into is None:
        conn.execute(sa.text("DELETE FROM lifecycle_stages WHERE as_of = :as_of"), {"as_of": as_of})
    conn.execute(sa.text(f"""
        INSERT INTO {into or "lifecycle_stages"} (as_of, contact_id, brand, stage, stage_since_date, purchase_count,
                                      last_purchase_date)
        SELECT CAST(:as_of AS DATE), contact_id, brand, to_stage, {day_date('change_day')}, purchase_count,
               {day_date('last_purchase_day')}
        FROM (SELECT c.*, ROW_NUMBER() OVER (PARTITION BY contact_id, brand ORDER BY change_day DESC, step DESC)
                          AS latest
              FROM tmp_scoring_changes c) r
        WHERE latest = 1"""), {"as_of": as_of})
    conn.execute(sa.text("DELETE FROM lifecycle_transitions WHERE as_of = :as_of"), {"as_of": as_of})
    conn.execute(sa.text("""
        INSERT INTO lifecycle_transitions (as_of, brand, from_stage, to_stage, contact_count)
        SELECT CAST(:as_of AS DATE), brand, from_stage, to_stage, COUNT(*) FROM tmp_scoring_changes
        WHERE change_day = :as_of_day GROUP BY brand, from_stage, to_stage"""),
                 {"as_of": as_of, "as_of_day": day_number(as_of)})
    stages = dict(conn.execute(sa.text(
        f"SELECT stage, COUNT(*) FROM {into or 'lifecycle_stages'} WHERE as_of = :as_of AND brand = '' GROUP BY stage"),
        {"as_of": as_of}).all())
    conn.execute(sa.text("DROP TABLE tmp_scoring_changes"))
    return {stage: int(stages.get(stage, 0)) for stage in STAGES}


# --- from history alone: the funnel over a window, and day-by-day stages ------------------------------

KNOWN_FROM_TIMELINE_SQL = f"""
CREATE TEMPORARY TABLE tmp_scoring_known AS
WITH firsts AS (
    SELECT contact_id, brand, MIN(day) AS first_day FROM (
        SELECT contact_id, brand, {utc_day('occurred_at')} AS day FROM timeline
        WHERE event_type <> 'order' AND occurred_at < :as_of_end
        UNION ALL
        SELECT contact_id, brand, purchase_day FROM tmp_scoring_purchases
    ) x GROUP BY contact_id, brand
)
SELECT contact_id, brand, first_day FROM firsts
UNION ALL
SELECT contact_id, '{ALL_BRANDS}', MIN(first_day) FROM firsts GROUP BY contact_id
"""


# Only the contacts with a move after :since_date (in any scope), from the stages the run of the day stored: a
# stage's since day is its latest move, so a contact whose stages all date from before has no move to count, and
# the funnel reads the purchase history of the contacts still moving, not of everyone who ever bought. An
# `unknown` row's since day is the run's day, not a move: a contact with nothing to score has no purchase day and
# no known row, so it moves nowhere, and reading it would only make every such contact a mover every day.
MOVERS_SQL = f"""
CREATE TEMPORARY TABLE tmp_scoring_movers AS
SELECT DISTINCT contact_id FROM {spans_name('lifecycle_stages')} t
WHERE {holding()} AND stage_since_date > :since_date AND stage <> 'unknown'
"""


def _history(conn: sa.Connection, as_of: dt.date, from_aggregates: bool = False, days: int = 0) -> None:
    """Scratch purchases and known contacts up to the end of `as_of`, from the timeline alone, or from
    `scoring_daily` and the engagement rows of the day (`from_aggregates`: right after a scoring run of `as_of`,
    the same moves in the `days` days ending with `as_of` without reading the timeline, of the contacts with one)."""
    if from_aggregates:
        drop_scratch(conn)
        conn.execute(sa.text(MOVERS_SQL), {"as_of": as_of, "since_date": as_of - dt.timedelta(days=days)})
        create_daily_purchases(conn, day_number(as_of), "tmp_scoring_movers")
        # the movers' first interaction days from their engagement rows of the day, a row per contact and brand,
        # where grouping the aggregates read every day of every contact
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE tmp_scoring_known AS {held_known_sql('tmp_scoring_movers')}"),
                     {"as_of": as_of})
        return
    params = as_of_params(as_of)
    create_scratch(conn, params)
    conn.execute(sa.text(KNOWN_FROM_TIMELINE_SQL), {"as_of_end": params["as_of_end"]})


def transitions_by_day(conn: sa.Connection, config: ScoringConfig, *, as_of: dt.date, days: int,
                       brand: str | None = None, from_aggregates: bool = False) -> pd.DataFrame:
    """day, brand, from_stage, to_stage, contact_count for the `days` days ending with `as_of`.

    Computed from the timeline and staged orders (no stored history needed); brand None = every
    scope ('' = across brands), else that brand only.
    """
    try:
        _history(conn, as_of, from_aggregates, days)
        where = "change_day > :start_day" + (" AND brand = :brand" if brand is not None else "")
        query = sa.text(f"""
            SELECT {day_date('change_day')} AS day, brand, from_stage, to_stage, COUNT(*) AS contact_count
            FROM ({changes_sql(config)}) c WHERE {where}
            GROUP BY change_day, brand, from_stage, to_stage ORDER BY change_day, brand, from_stage, to_stage""")
        params = {"as_of_day": day_number(as_of), "start_day": day_number(as_of) - days}
        if brand is not None:
            params["brand"] = brand
        frame = pd.DataFrame(conn.execute(query, params).mappings().all(),
                             columns=["day", "brand", "from_stage", "to_stage", "contact_count"])
    finally:
        drop_scratch(conn)
    frame["contact_count"] = frame["contact_count"].astype("int64")
    return frame


def funnel(conn: sa.Connection, config: ScoringConfig, *, as_of: dt.date, days: int | None = None,
           brand: str | None = None, from_aggregates: bool = False) -> pd.DataFrame:
    """from_stage, to_stage, contacts: the moves between lifecycle stages in the `days` days ending with
    `as_of` (default: the config's funnel_days), across brands or for one brand, in funnel order."""
    days = days or config.funnel_days
    moves = transitions_by_day(conn, config, as_of=as_of, days=days, brand=brand if brand else ALL_BRANDS,
                               from_aggregates=from_aggregates)
    out = (moves.groupby(["from_stage", "to_stage"], as_index=False)["contact_count"].sum()
           .rename(columns={"contact_count": "contacts"}))
    order = {stage: i for i, stage in enumerate(FUNNEL_ORDER)}
    out = out.assign(_f=out["from_stage"].map(order), _t=out["to_stage"].map(order))
    return out.sort_values(["_f", "_t"], ignore_index=True)[["from_stage", "to_stage", "contacts"]]


def stages_on_days(conn: sa.Connection, config: ScoringConfig, days: list[dt.date]) -> pd.DataFrame:
    """day, contact_id, brand, stage on each of `days`, straight from the definitions: a date spine joined
    to the purchase history (for checks and small windows; the moves above scale better)."""
    last = max(days)
    try:
        _history(conn, last)
        spine = " UNION ALL ".join(f"SELECT {day_number(d)} AS day" for d in days)  # fixed integers
        query = sa.text(f"""
            WITH {_PURCHASE_DAYS},
            spine AS ({spine}),
            upto AS (
                SELECT s.day, p.contact_id, p.brand, p.purchase_day,
                       ROW_NUMBER() OVER (PARTITION BY s.day, p.contact_id, p.brand ORDER BY p.purchase_day DESC)
                           AS back
                FROM spine s JOIN purchase_days p ON p.purchase_day <= s.day
            ),
            agg AS (
                SELECT day, contact_id, brand, COUNT(*) AS n, MAX(CASE WHEN back = 1 THEN purchase_day END) AS last,
                       MAX(CASE WHEN back = 2 THEN purchase_day END) AS prev
                FROM upto GROUP BY day, contact_id, brand
            )
            SELECT {day_date('s.day')} AS day, k.contact_id, k.brand,
                   {stage_case(config, "COALESCE(a.n, 0)", "s.day - a.last", "a.last - a.prev")} AS stage
            FROM spine s JOIN tmp_scoring_known k ON k.first_day <= s.day
            LEFT JOIN agg a ON a.day = s.day AND a.contact_id = k.contact_id AND a.brand = k.brand
            ORDER BY s.day, k.contact_id, k.brand""")
        rows = conn.execute(query).mappings().all()
    finally:
        drop_scratch(conn)
    return pd.DataFrame(rows, columns=["day", "contact_id", "brand", "stage"])


def stage_counts(conn: sa.Connection, as_of: dt.date, brand: str = ALL_BRANDS) -> pd.DataFrame:
    """stage, contacts on `as_of` from the stored `lifecycle_stages` (in funnel order)."""
    from crm_pipeline.warehouse.scoring_schema import lifecycle_stages as t

    frame = read_frame(conn, sa.select(t.c.stage, sa.func.count().label("contacts"))
                       .where(t.c.as_of == as_of, t.c.brand == brand).group_by(t.c.stage))
    order = {stage: i for i, stage in enumerate(STAGES)}
    return frame.assign(_o=frame["stage"].map(order)).sort_values("_o", ignore_index=True)[["stage", "contacts"]]
