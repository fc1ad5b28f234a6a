"""The data-quality side of a night's defects, counted for the run report: names as other systems
write them (placeholders, annotations, pinyin, invisible characters) per dataset, and the hukou's
public-security defects — numbers two persons share (一号多人) and persons with a second, cancelled
number (一人多号). The data-quality bulletin builds on these counts."""

from __future__ import annotations

from datetime import date

import duckdb

from bidui.connectors import warehouse as wh
from bidui.matching.records import ensure_identity, records_sql
from bidui.names import DEFECT_PATTERNS


def night_defects(con: duckdb.DuckDBPyConnection, night: date) -> dict[str, dict[str, int]]:
    """{dataset: {count name: n}} for the snapshots in force on the night (only counts above zero)."""
    out: dict[str, dict[str, int]] = {}
    counts = ", ".join(f"count(*) FILTER (WHERE regexp_matches(name_raw, ?)) AS {k}" for k in DEFECT_PATTERNS)
    patterns = list(DEFECT_PATTERNS.values())
    sql, args, _ = records_sql(con, night)
    hukou = wh.in_force(con, night).get("hukou")
    queries = []
    if sql is not None:
        queries.append((f"SELECT dataset, {counts} FROM ({sql}) GROUP BY dataset", [*patterns, *args]))
    if hukou is not None:
        queries.append((f"SELECT 'hukou', {counts} FROM ds_hukou WHERE snapshot_date = ?", [*patterns, hukou]))
    for query, params in queries:
        for dataset, *found in con.execute(query, params).fetchall():
            named = {k: int(n) for k, n in zip(DEFECT_PATTERNS, found, strict=True) if n}
            if named:
                out[dataset] = named
    if hukou is not None:
        ensure_identity(con, hukou)
        shared, second = con.execute("""
            SELECT count(DISTINCT split_part(person_key, '~', 1)) FILTER (WHERE person_key LIKE '%~%'),
                   count(*) FILTER (WHERE NOT is_primary)
            FROM hukou_identity WHERE snapshot_date = ?""", [hukou]).fetchone()
        found = {k: int(n) for k, n in (("shared_ids", shared), ("second_numbers", second)) if n}
        if found:
            out["hukou"] = out.get("hukou", {}) | found
    return out
