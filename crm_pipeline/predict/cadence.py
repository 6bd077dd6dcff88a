"""When the predict stage trains its models, and when it scores with the ones it stored.

Models are trained on a training day derived from the as-of day alone: the latest cadence boundary
on or before it, counting `retrain_days` from the first partition day. Every as-of day between two
boundaries scores with the models of the last boundary (`predict_models`), so a new day costs one
feature pass and a scoring pass, not a refit of every model.

The models of a training day read only complete days: records dated up to the day before it
(`data_through`). Files arrive all day, so the training day itself is still filling while a run
trains; a model that read it would be trained on a partial day and trained again at every drop of
that day. Records dated on the training day or later are scored with the stored models, never
trained on; a late record dated before it still trains them again.

The stored models are trained again when the training day moves, on a full refresh, when the model
settings changed (`settings_key`), and when the training inputs as of the training day changed
(`training_fingerprint`): a back-dated correction, a late file with old records, a merge of two
contacts. Because the training day and the fingerprint are functions of the data as of that day,
a full refresh and a sequence of incremental runs train the same models.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import sqlalchemy as sa

from crm_pipeline.predict import classifier
from crm_pipeline.predict.features import cutoff_of
from crm_pipeline.warehouse.predict_schema import predict_fingerprint_parts as fingerprint_parts

# Row hashes are reduced modulo a prime before summing, so per-contact sums stay exact in BIGINT;
# per-contact sums go through a non-linear mix so a merge or split of contacts changes the total.
_PRIME = 2147483647
# (staged table, identity entity, its key, the column that dates a row); order lines are dated by their order.
_DATED = (("stg_orders", "orders", "order_id", "ordered_at"), ("stg_email_events", "email_events", "event_id",
          "occurred_at"), ("stg_web_events", "web_events", "event_id", "occurred_at"),
          ("stg_subscribers", "subscribers", "subscriber_id", "subscribed_at"))
# Orders (with their lines) are read up to the last complete day, the other records only up to the classifiers'
# last feature window (`classifier.features_through`) and only of contacts with an order (training reads no one
# else's: its windows hold buyers): what training reads, so a late web event after that window, or new records
# joining two contacts without orders, do not train again. `o` marks an order row.
_ROWS = " UNION ALL ".join(
    f"SELECT m.contact_id, MOD(t._row_hash, {_PRIME}) AS h, {int(entity == 'orders')} AS o FROM {table} t "
    f"JOIN {{identity}} m "
    f"ON m.entity = '{entity}' AND m.brand = t._brand AND m.source_key = t.{key} "
    f"WHERE t.{dated} < {':cutoff' if entity == 'orders' else ':event_cutoff'}"
    for table, entity, key, dated in _DATED)
# Per contact: its dated rows' count and hash sum, stored per training day (`predict_fingerprint_parts`).
_PARTS_SQL = f"""
INSERT INTO predict_fingerprint_parts (trained_on, contact_id, n, s)
SELECT CAST(:day AS DATE), contact_id, COUNT(*), SUM(h) FROM (
    {_ROWS}
    UNION ALL
    SELECT m.contact_id, MOD(i._row_hash, {_PRIME}), 1
    FROM stg_order_items i
    JOIN stg_orders o ON o._brand = i._brand AND o.order_id = i.order_id
    JOIN {{identity}} m ON m.entity = 'orders' AND m.brand = o._brand AND m.source_key = o.order_id
    WHERE o.ordered_at < :cutoff
) r GROUP BY contact_id HAVING MAX(o) = 1
"""
_FINGERPRINT_SQL = f"""
SELECT 'contacts' AS part, COUNT(*) AS a, SUM(n) AS b,
       SUM(MOD(s, 1000003) * MOD(s + n, 999983) + MOD(n * 7919, 1000003)) AS c
FROM predict_fingerprint_parts WHERE trained_on = :day
UNION ALL
SELECT 'products', COUNT(*), SUM(MOD(_row_hash, {_PRIME})), SUM(MOD(MOD(_row_hash, {_PRIME}), 1000003)
                                                                 * MOD(MOD(_row_hash, 999983) + 1, 999983))
FROM stg_products
"""

def training_day(as_of: dt.date, *, retrain_days: int = 1, start: dt.date | None = None) -> dt.date:
    """The latest cadence boundary on or before `as_of`: `start` + k * `retrain_days` (every day when 1)."""
    if retrain_days < 1:
        raise ValueError(f"retrain_days: {retrain_days} must be at least 1")
    start = start or as_of
    return start + dt.timedelta(days=(as_of - start).days // retrain_days * retrain_days)


def data_through(day: dt.date) -> dt.date:
    """The last day whose records the models of training day `day` read: the day before it (the last complete day)."""
    return day - dt.timedelta(days=1)


def training_fingerprint(conn: sa.Connection, day: dt.date, changed: tuple[str, str] | None = None) -> str:
    """A digest of the staged records the models of training day `day` read (their content hashes): orders and
    their lines dated up to `data_through(day)`, other records up to the classifiers' last feature window of the
    contacts with such an order, grouped as identity groups them, and of the catalogue.

    Contact ids themselves do not enter (only which records share a contact), so a warehouse that numbers
    its contacts in another order gets the same fingerprint for the same data. The per-contact parts are
    kept for `day`: given `changed` (a table of contact_id: every contact whose records changed since they
    were kept, and a table of their `identity_map` rows), only those contacts' parts are computed again;
    otherwise all of them.
    """
    through = data_through(day)
    params = {"day": day, "cutoff": cutoff_of(through), "event_cutoff": cutoff_of(classifier.features_through(through))}
    kept = changed is not None and conn.execute(sa.select(sa.func.count()).select_from(fingerprint_parts)
                                                .where(fingerprint_parts.c.trained_on == day)).scalar_one()
    if kept:
        contacts, identity_rows = changed
        conn.execute(sa.text(f"DELETE FROM predict_fingerprint_parts WHERE trained_on = :day "
                             f"AND contact_id IN (SELECT contact_id FROM {contacts})"), params)
        conn.execute(sa.text(_PARTS_SQL.replace("{identity}", identity_rows)), params)
    else:   # the parts of one training day are kept: the ones of an earlier day are not read again
        conn.execute(fingerprint_parts.delete())
        conn.execute(sa.text(_PARTS_SQL.replace("{identity}", "identity_map")), params)
    rows = conn.execute(sa.text(_FINGERPRINT_SQL), params).all()
    text = ";".join(f"{part}:{a}:{b}:{c}" for part, a, b, c in sorted(rows))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def settings_key(**settings) -> str:
    """A digest of the settings a model's training depends on: a change trains again."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str


def decide(stored: dict[str, dict], models: tuple[str, ...], *, fingerprint: str, key: str,
           full_refresh: bool) -> Decision:
    """Train again or score with `stored` (model -> its stored row of the training day)."""
    if full_refresh:
        return Decision(True, "full refresh requested")
    missing = [m for m in models if m not in stored]
    if missing:
        return Decision(True, "no stored model for the training day" if len(missing) == len(models)
                        else f"stored models incomplete ({', '.join(missing)} missing)")
    if any(stored[m]["settings_key"] != key for m in models):
        return Decision(True, "model settings changed")
    if any(stored[m]["input_fingerprint"] != fingerprint for m in models):
        return Decision(True, "training data as of the training day changed")
    return Decision(False, "stored models reused")
