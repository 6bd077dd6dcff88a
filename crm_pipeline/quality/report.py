"""The data-quality report: per brand and entity, rows, pass rate, top failing rules, countries."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES
from crm_pipeline.quality.rows import COUNTRY_COLUMNS


def quality_by_brand_entity(conn: sa.Connection, brand: str | None = None) -> pd.DataFrame:
    """Rows read, staged, quarantined, deduplicated, held, pass rate and top rules per brand and entity."""
    frame = pd.read_sql(sa.text("""
        SELECT brand, entity, SUM(rows_read) AS rows_read, SUM(staged) AS staged, SUM(quarantined) AS quarantined,
               SUM(deduplicated) AS deduplicated,
               SUM(CASE WHEN held THEN rows_read - quarantined ELSE 0 END) AS held
        FROM file_quality WHERE NOT superseded AND (:brand IS NULL OR brand = :brand)
        GROUP BY brand, entity ORDER BY brand, entity
    """), conn, params={"brand": brand})
    rules = pd.read_sql(sa.text("""
        SELECT brand, entity, rule, COUNT(*) AS n FROM quarantine
        WHERE status = 'open' AND (:brand IS NULL OR brand = :brand)
        GROUP BY brand, entity, rule
    """), conn, params={"brand": brand})
    frame["pass_rate"] = (1 - frame["quarantined"] / frame["rows_read"].where(frame["rows_read"] > 0)).round(4)
    if rules.empty:
        frame["top_rules"] = ""
        return frame
    rules = rules.sort_values(["brand", "entity", "n", "rule"], ascending=[True, True, False, True])
    rules["label"] = rules["rule"] + " (" + rules["n"].astype(str) + ")"
    top = rules.groupby(["brand", "entity"])["label"].apply(lambda labels: ", ".join(labels.head(3)))
    frame = frame.merge(top.rename("top_rules").reset_index(), on=["brand", "entity"], how="left")
    frame["top_rules"] = frame["top_rules"].fillna("")
    return frame


def countries_before_after(conn: sa.Connection, brand: str | None = None) -> pd.DataFrame:
    """How each raw country spelling was standardized (value, ISO code, rows), across country columns."""
    parts = []
    for entity in ENTITIES.values():
        for column in sorted(COUNTRY_COLUMNS & set(entity.column_names)):
            parts.append(
                f"SELECT r.{column} AS raw_value, t.{column} AS standardized, COUNT(*) AS rows_n "
                f"FROM raw_{entity.name} r JOIN typed_{entity.name} t "
                f"ON t._file_id = r._file_id AND t._row_number = r._row_number "
                f"WHERE r.{column} IS NOT NULL AND (:brand IS NULL OR r._brand = :brand) "
                f"GROUP BY r.{column}, t.{column}"
            )
    query = ("SELECT raw_value, standardized, SUM(rows_n) AS rows_n FROM (" + " UNION ALL ".join(parts) +
             ") u GROUP BY raw_value, standardized ORDER BY standardized, rows_n DESC, raw_value")
    return pd.read_sql(sa.text(query), conn, params={"brand": brand})
