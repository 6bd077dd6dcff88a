"""Clerical review: the borderline pairs of the last run, and a reviewer's must-link / cannot-link decisions.

A decision is stored in `identity_decisions` and honoured by every later run (a must-link
joins the pair before matching; a cannot-link removes the model's edges between them),
and it is logged in `merge_log` with the two contacts as they stood when it was made.
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.identity.nodes import person_records
from crm_pipeline.warehouse.bulk import read_frame
from crm_pipeline.warehouse.identity_schema import DECISIONS, create_identity_tables, identity_decisions, merge_log


def borderline_pairs(conn: sa.Connection, limit: int = 20) -> pd.DataFrame:
    """The last run's pairs nearest the threshold, with both people's names and birth dates, any decision
    already taken, and the field-by-field weights."""
    pairs = read_frame(conn, sa.text(
        "SELECT b.node_a, b.node_b, b.match_probability, b.accepted, b.field_weights, d.decision "
        "FROM identity_borderline b LEFT JOIN identity_decisions d ON d.node_a = b.node_a AND d.node_b = b.node_b "
        "ORDER BY abs(b.match_probability - 0.5), b.node_a, b.node_b"))
    pairs = pairs.head(limit)
    people = person_records(conn).drop_duplicates("node_id").set_index("node_id")
    label = (people["first_name"].fillna("") + " " + people["last_name"].fillna("") + " "
             + people["birth_date"].astype("string").fillna("")).str.strip()
    return pd.DataFrame({
        "node_a": pairs["node_a"], "person_a": label.reindex(pairs["node_a"]).values,
        "node_b": pairs["node_b"], "person_b": label.reindex(pairs["node_b"]).values,
        "probability": pairs["match_probability"].round(4), "joined": pairs["accepted"],
        "decision": pairs["decision"].fillna(""), "weights (bits)": pairs["field_weights"],
    })


def record_decision(engine: sa.Engine, node_a: str, node_b: str, decision: str, *, now: datetime, as_of: date,
                    note: str | None = None) -> tuple[str, str]:
    """Store (or replace) the decision on a pair and log it; returns the pair's contacts at that moment."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    node_a, node_b = sorted((node_a, node_b))
    if node_a == node_b:
        raise ValueError("a pair needs two different records")
    create_identity_tables(engine)
    with engine.begin() as conn:
        contact = dict(conn.execute(sa.text("SELECT node_id, contact_id FROM identity_nodes "
                                            "WHERE node_id IN (:a, :b)"), {"a": node_a, "b": node_b}).all())
        unknown = [n for n in (node_a, node_b) if n not in contact]
        if unknown:
            raise ValueError(f"no such record node: {', '.join(unknown)} (see `crm-pipeline identity review`)")
        conn.execute(identity_decisions.delete().where(identity_decisions.c.node_a == node_a,
                                                       identity_decisions.c.node_b == node_b))
        conn.execute(identity_decisions.insert().values(node_a=node_a, node_b=node_b, decision=decision,
                                                        note=note, decided_at=now))
        conn.execute(merge_log.insert().values(
            kind=decision, old_contact_id=contact[node_b], new_contact_id=contact[node_a], as_of=as_of,
            reason=f"clerical review: {decision.replace('_', '-')} {node_a} + {node_b}"
                   + (f" ({note})" if note else "")))
    return contact[node_a], contact[node_b]
