"""Carrying rows forward: the day's rows computed only for contacts whose rows can change.

A contact's preferences, preferred channel and lifecycle stage change only when a day enters or leaves one of
their windows, or their aggregates were rewritten; its engagement scores, kept as of an anchor day, decay by
themselves (in the view) and otherwise change the same way, with windows of their own (the scores 7 and 30
days back, the two activity windows: `tmp_scoring_due_engagement`). So, on an incremental run with the
previous run's rows in place, the due contacts are:
- the contacts whose daily aggregates this run rewrote (`tmp_scoring_recompute`);
- contacts with an aggregate row on a day the run moved over (previous day + 1 .. as_of; as_of alone on
  a same-day run): a new interaction, a purchase, a first day (a contact becoming known);
- contacts with a row on a day that left the preference or channel lookback in that span (none on a same-day
  run: the windows stand where the last run of the day put them, as do engagement's below);
- contacts with a purchase day whose lifecycle threshold (active_days + 1, lapsed_days + 1) falls in it;
- contacts with nothing to score on either day (their `unknown` rows follow their records, see `unscored`),
  and contacts whose stored values differ between the two days (a re-run of an older day split them).
Every stage move of the day belongs to a due contact (a move happens on a purchase day, a threshold day
or a first day), so the day's transitions are counted from them alone. Everyone else keeps the previous
run's values: the row a full computation gives, since none of its inputs moved. The tables keep their rows
as validity intervals (`spans`), so those values hold on the new day without a write; the due contacts'
rows (and the `unknown` rows of the day) are written by difference (`write`).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from crm_pipeline.profiles.sql import as_of_params, day_number
from crm_pipeline.profiles import rewrite
from crm_pipeline.scoring import spans
from crm_pipeline.scoring.config import ScoringConfig
from crm_pipeline.scoring.daily import RECOMPUTE
from crm_pipeline.scoring.engagement import ALL_BRANDS
from crm_pipeline.warehouse.scoring_schema import SPANNED, spans_name

DUE = "tmp_scoring_due"
KNOWN_DUE = "tmp_scoring_known_due"
ENGAGED = "tmp_scoring_due_engagement"
SCOPE = "tmp_scoring_scope"
CARRIED = SPANNED
KEYS = {"engagement_scores": ("contact_id", "brand"), "contact_preferences": ("contact_id",),
        "channel_preferences": ("contact_id", "brand"), "lifecycle_stages": ("contact_id", "brand")}
KNOWN = "tmp_scoring_known"
DATED = "tmp_scoring_dated"
UNSCORED_SCOPE = "tmp_scoring_unscored_scope"


def _in_span(expr: str) -> str:
    return f"({expr} > :lo AND {expr} <= :hi)"


def create_due(conn: sa.Connection, config: ScoringConfig, previous: dt.date | None, as_of: dt.date) -> int | None:
    """Create `tmp_scoring_due` (the contacts whose preferences, channel and lifecycle can change) and
    `tmp_scoring_due_engagement` (those and the contacts whose engagement can change); returns the first count,
    or None when everything is computed (no previous run's rows to carry)."""
    drop(conn)
    held = f"SELECT 1 FROM {spans_name('engagement_scores')} t WHERE {spans.holding()} LIMIT 1"
    if previous is None or conn.execute(sa.text(held), {"as_of": previous}).first() is None:
        return None
    hi = day_number(as_of)
    lo = day_number(previous) if as_of > previous else hi - 1
    thresholds = " OR ".join(_in_span(f"day + {n + 1}") for n in (int(config.active_days), int(config.lapsed_days)))
    moves = f"{_in_span('day')} OR (purchase_count > 0 AND ({thresholds}))"  # a stage move on a day in the span
    if as_of > previous:
        lookbacks = {int(config.preference_lookback_days), int(config.channel_lookback_days)}
        leaving = " OR ".join(_in_span(f"day + {n}") for n in sorted(lookbacks))
        core = f"{moves} OR {leaving}"
        # engagement's: the scores 7 and 30 days back, the two activity windows
        window = int(config.band_window_days)
        engaged = " OR ".join(_in_span(f"day + {n}") for n in sorted({7, 30, window, 2 * window}))
        moving = f"SELECT contact_id, CASE WHEN {core} THEN 1 ELSE 0 END FROM scoring_daily WHERE {core} OR {engaged}"
    else:
        # a same-day run: the windows stand where the last run of the day put them; only the contacts with a move
        # on the day are redone beside the recomputed ones, so that the day's transitions count every move
        moving = f"SELECT contact_id, 1 FROM scoring_daily WHERE {moves}"
    moved = "".join(f"""
            UNION ALL
            SELECT contact_id, 1 FROM {spans_name(t)} t WHERE (t.valid_from > :previous AND t.valid_from <= :as_of)
                OR (t.valid_from <= :previous AND t.valid_to > :previous AND t.valid_to <= :as_of)""" for t in CARRIED)
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE {ENGAGED} AS SELECT contact_id, MAX(core) AS core FROM (
            SELECT contact_id, 1 AS core FROM {RECOMPUTE}
            UNION ALL
            {moving}
            UNION ALL
            SELECT contact_id, 1 FROM {spans_name('lifecycle_stages')} t WHERE t.stage = 'unknown'
                AND t.valid_from <= :as_of AND (t.valid_to IS NULL OR t.valid_to > :previous){moved}
        ) d GROUP BY contact_id"""), {"lo": lo, "hi": hi, "previous": previous, "as_of": as_of})
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {DUE} AS SELECT contact_id FROM {ENGAGED} WHERE core = 1"))
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM {DUE}")).scalar_one()


_FIRST_DAY = "CAST(first_interaction_date - DATE '1970-01-01' AS INTEGER)"


def held_known_sql(contacts: str) -> str:
    """SELECT of the known rows (contact_id, brand, first_day: the UTC day number of the first interaction) of the
    contacts in the table `contacts` from the engagement spans holding on :as_of: a scored row (not `unknown`)
    per contact and brand, whose first interaction date is its first day with a `scoring_daily` row."""
    return (f"SELECT t.contact_id, t.brand, {_FIRST_DAY} AS first_day FROM {spans_name('engagement_scores')} t "
            f"JOIN {contacts} c ON c.contact_id = t.contact_id WHERE {spans.holding()} AND t.growth_band <> 'unknown'")


def create_known(conn: sa.Connection, params: dict, engagement: str, previous: dt.date | None) -> None:
    """`tmp_scoring_known` (contact_id, brand, first_day): the contacts and brands known by as_of (their first
    interaction), from the day's engagement rows computed into `engagement`; `tmp_scoring_known_due` the due
    contacts' among them. When only the due contacts' were computed (`previous`: the last run's day), the rows of
    the others are those holding, and are read only for the contacts with a timeline record dated since that day
    (`tmp_scoring_dated`, who may have become known: see `unscored`), not for everyone."""
    held = ""
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {DATED}"))
    if previous is not None:
        since = as_of_params(previous)["as_of_end"]  # none since on a same-day run: the range is empty
        conn.execute(sa.text(f"""
            CREATE TEMPORARY TABLE {DATED} AS SELECT DISTINCT t.contact_id FROM timeline t
            WHERE t.occurred_at >= :since AND t.occurred_at < :as_of_end
              AND NOT EXISTS (SELECT 1 FROM {ENGAGED} d WHERE d.contact_id = t.contact_id)"""),
                     {"since": since, "as_of_end": params["as_of_end"]})
        held = f" UNION ALL {held_known_sql(DATED)}"
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {KNOWN}"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {KNOWN} AS SELECT contact_id, brand, {_FIRST_DAY} AS first_day "
                         f"FROM {engagement}{held}"), {"as_of": params["as_of"]})
    if previous is not None:
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {KNOWN_DUE} AS SELECT k.* FROM {KNOWN} k "
                             f"JOIN {DUE} d ON d.contact_id = k.contact_id"))


def unscored_scope(conn: sa.Connection) -> str:
    """The contacts whose `unknown` rows an incremental run redoes: the due ones (which hold every contact with
    nothing to score on the last run's day or this one) and those with a record dated since (`create_known`)."""
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {UNSCORED_SCOPE}"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {UNSCORED_SCOPE} AS SELECT contact_id FROM {ENGAGED} UNION ALL "
                         f"SELECT contact_id FROM {DATED}"))
    return UNSCORED_SCOPE


def copies(conn: sa.Connection) -> dict[str, str]:
    """Empty copies to compute the day's rows of the due contacts (of everyone on a full run) into."""
    return {table.name: rewrite.begin(conn, table.name, full=False) for table in CARRIED}


def write(conn: sa.Connection, as_of: dt.date, due: bool, half_life: float) -> dict[str, int]:
    """Bring the day's rows of the due contacts (`due`; of everyone when not) and of those with nothing to score
    (`tmp_scoring_unscored`) to those computed into the copies; returns the keys written per table."""
    written = {}
    for table in CARRIED:
        scope = None
        if due:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {SCOPE}"))
            conn.execute(sa.text(f"CREATE TEMPORARY TABLE {SCOPE} AS SELECT contact_id FROM "
                                 f"{ENGAGED if table.name == 'engagement_scores' else DUE} UNION "
                                 "SELECT contact_id FROM tmp_scoring_unscored"))
            scope = SCOPE
        written[table.name] = spans.write(conn, table, KEYS[table.name], as_of, scope, half_life)
    return written


def only_due(alias: str, due: str | None) -> str:
    """A join keeping the rows of `alias` whose contact is due; nothing when everyone is computed."""
    return "" if due is None else f" JOIN {due} due_{alias} ON due_{alias}.contact_id = {alias}.contact_id"


def drop(conn: sa.Connection) -> None:
    for name in (DUE, ENGAGED, KNOWN, KNOWN_DUE, SCOPE, DATED, UNSCORED_SCOPE,
                 *(rewrite.next_table(t.name) for t in CARRIED)):
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    rewrite.drop_diff(conn)
