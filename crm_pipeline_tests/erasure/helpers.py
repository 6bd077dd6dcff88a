"""Looking into a warehouse from erasure tests: row counts, text searches, people worth erasing."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa


def table_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one()
                for t in sa.inspect(conn).get_table_names()}


def text_hits(engine: sa.Engine, *, text: str | None = None, digits: str | None = None) -> dict[str, int]:
    """Rows per table.column whose text contains `text` (case-insensitive) or, ignoring punctuation, `digits`."""
    hits = {}
    with engine.connect() as conn:
        columns = conn.execute(sa.text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR'")).all()
        for table, column in columns:
            conditions, params = [], {}
            if text:
                conditions.append(f'POSITION(:text IN LOWER("{column}")) > 0')
                params["text"] = text.lower()
            if digits:
                conditions.append(f"""POSITION(:digits IN REGEXP_REPLACE("{column}", '[^0-9]', '', 'g')) > 0""")
                params["digits"] = digits
            n = conn.execute(sa.text(f'SELECT COUNT(*) FROM "{table}" WHERE {" OR ".join(conditions)}'),
                             params).scalar_one()
            if n:
                hits[f"{table}.{column}"] = n
    return hits


def people(engine: sa.Engine) -> pd.DataFrame:
    """Contacts with a customer account: contact id, brand, email, E.164 phone, raw phone, records, landed file."""
    with engine.connect() as conn:
        return pd.read_sql(sa.text("""
            SELECT m.contact_id, t._brand AS brand, t.email, t.phone, r.phone AS raw_phone, f.path,
                   (SELECT COUNT(*) FROM identity_map x WHERE x.contact_id = m.contact_id) AS records,
                   (SELECT COUNT(*) FROM audience_members a WHERE a.contact_id = m.contact_id) AS memberships
            FROM identity_map m
            JOIN typed_customers t ON t._file_id = m._file_id AND t._row_number = m._row_number
            JOIN raw_customers r ON r._file_id = t._file_id AND r._row_number = t._row_number
            JOIN files f ON f.file_id = t._file_id
            WHERE m.entity = 'customers' AND t.email IS NOT NULL AND t.phone IS NOT NULL
              AND (SELECT COUNT(*) FROM identity_map y JOIN typed_customers c ON c._file_id = y._file_id
                   AND c._row_number = y._row_number WHERE y.contact_id = m.contact_id AND c.email <> t.email) = 0
            ORDER BY records DESC, m.contact_id
        """), conn)
