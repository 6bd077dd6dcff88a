"""The short end-of-run summary: what landed, what was loaded, what later stages made of it."""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.landing.report import loaded_row_totals, manifest_counts


def pipeline_summary(engine: sa.Engine) -> list[tuple[str, str]]:
    """(label, value) lines for the tables that exist; stages not built yet are simply absent."""
    existing = set(sa.inspect(engine).get_table_names())
    lines: list[tuple[str, str]] = []
    with engine.connect() as conn:
        if "files" in existing:
            statuses = manifest_counts(conn)
            lines.append(("files", ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) or "none"))
            counts = loaded_row_totals(conn)
            lines.append(("rows loaded", f"{sum(counts.values()):,} (" +
                          ", ".join(f"{e} {n:,}" for e, n in counts.items()) + ")"))
        if "file_quality" in existing:
            staged, quarantined, deduplicated, held = conn.execute(sa.text(
                "SELECT COALESCE(SUM(staged), 0), COALESCE(SUM(quarantined), 0), COALESCE(SUM(deduplicated), 0), "
                "COALESCE(SUM(CASE WHEN held THEN 1 ELSE 0 END), 0) FROM file_quality WHERE NOT superseded")).one()
            lines.append(("rows staged", f"{int(staged):,}"))
            lines.append(("rows quarantined", f"{int(quarantined):,}"))
            lines.append(("rows deduplicated", f"{int(deduplicated):,}"))
            if held:
                lines.append(("files held", f"{int(held)} (see `crm-pipeline dq report`)"))
        if "contacts" in existing:
            n, multi_brand = conn.execute(sa.text(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN brands LIKE '%,%' THEN 1 ELSE 0 END), 0) FROM contacts")).one()
            lines.append(("contacts", f"{int(n):,} ({int(multi_brand):,} seen in more than one brand)"))
        if "audience_sizes" in existing:
            rows = conn.execute(sa.text(
                "SELECT audience, size FROM audience_sizes WHERE brand_scope = '' AND as_of = "
                "(SELECT MAX(as_of) FROM audience_sizes) ORDER BY audience")).all()
            per_brand = conn.execute(sa.text(
                "SELECT COUNT(*) FROM audience_sizes WHERE brand_scope <> '' AND as_of = "
                "(SELECT MAX(as_of) FROM audience_sizes)")).scalar_one()
            lines.append(("audiences", f"{len(rows)} across brands (+{int(per_brand)} per brand):"))
            lines += [(f"  {name}", f"{int(size):,}") for name, size in rows]
    return lines
