"""What a place map would cost the readers of a snapshot (issue 18; docs/storage-redesign.md, step 4).

Today a row that only moved in its file (a new row came above it) is stored again at its new
row. The redesign would keep it where it was stored and give tonight's row through a map of runs
(rows stored on night S from `lo` to `hi` stand `shift` rows lower on night N), read by the
`ds_<code>_at` macro. This script builds that storage for one dataset of a home whose last night
moved its rows (a night-2 home of `bench/endtoend.py`), beside the warehouse (opened read-only),
and times the same reads through both macros: the one the warehouse has, and one that joins the
map. It checks that both give the same rows. Prints a table of medians.

    python bench/place_map.py --home HOME [--dataset vehicles] [--night 2026-11-21] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bidui.connectors import snapshot_rows
from bidui.datasets import BY_CODE


def build(con: duckdb.DuckDBPyConnection, code: str, night: date, before: date) -> tuple[int, int]:
    """`alt.ds_<code>`: the snapshot rows of `before` and `night` with the rows that only moved kept
    where they were stored (open), and `alt.places`, the runs of their rows on `night`. Returns
    (rows that moved, runs)."""
    n, b = f"DATE '{night}'", f"DATE '{before}'"
    # The rows stored on `night` paired with the rows of `before` that ended on it, by what they say
    # (twins by rank): the rows that only moved.
    con.execute(f"""
        CREATE TEMP TABLE pairs AS
        WITH a AS (SELECT source_row, row_hash, raw_hash,
                          row_number() OVER (PARTITION BY row_hash, raw_hash ORDER BY source_row) AS k
                   FROM wh.ds_{code} WHERE snapshot_date = {b} AND last_date = {b}),
             c AS (SELECT source_row, row_hash, raw_hash,
                          row_number() OVER (PARTITION BY row_hash, raw_hash ORDER BY source_row) AS k
                   FROM wh.ds_{code} WHERE snapshot_date = {n})
        SELECT a.source_row AS old, c.source_row AS new FROM a JOIN c USING (row_hash, raw_hash, k)""")
    con.execute("""
        CREATE TABLE places AS
        SELECT min(old) AS lo, max(old) AS hi, new - old AS shift
        FROM (SELECT *, old - row_number() OVER (PARTITION BY new - old ORDER BY old) AS g FROM pairs)
        GROUP BY new - old, g""")
    con.execute(f"""
        CREATE TABLE ds_{code} AS
        SELECT * REPLACE (CASE WHEN source_row IN (SELECT old FROM pairs) AND last_date = {b}
                               THEN DATE '9999-12-31' ELSE last_date END AS last_date)
        FROM wh.ds_{code} WHERE snapshot_date <= {b}
        UNION ALL
        SELECT * FROM wh.ds_{code} WHERE snapshot_date = {n} AND source_row NOT IN (SELECT new FROM pairs)
        ORDER BY snapshot_date, source_row""")
    moved, = con.execute("SELECT count(*) FROM pairs").fetchone()
    runs, = con.execute("SELECT count(*) FROM places").fetchone()
    return int(moved), int(runs)


def macros(con: duckdb.DuckDBPyConnection, code: str) -> None:
    """`now_at`: the warehouse's macro (bidui.connectors.snapshot_rows) over its table; `map_at`: the
    same over the rows kept where they were stored, tonight's row from the runs (an ASOF join: the
    last run starting at or before the row, if the row is in it)."""
    con.execute(f"CREATE TEMP MACRO now_at(night) AS TABLE {snapshot_rows.macro_sql(code, f'wh.ds_{code}', 'wh.snapshots')}")
    snaps = f"(SELECT load_id, file FROM wh.snapshots WHERE dataset = '{code}' AND snapshot_date = night)"
    con.execute(f"""
        CREATE TEMP MACRO map_at(night) AS TABLE
        SELECT * EXCLUDE (last_date) FROM alt.ds_{code} WHERE snapshot_date = night
        UNION ALL BY NAME
        SELECT night::DATE AS snapshot_date, s.load_id, s.file AS source_file,
               d.* EXCLUDE (snapshot_date, load_id, source_file, last_date, source_row),
               d.source_row + CASE WHEN d.source_row <= p.hi THEN p.shift ELSE 0 END AS source_row
        FROM alt.ds_{code} d CROSS JOIN {snaps} s
        ASOF LEFT JOIN alt.places p ON d.source_row >= p.lo
        WHERE d.snapshot_date < night AND night <= d.last_date""")


def reads(code: str, night: date) -> dict[str, str]:
    """Reads of the kinds a night makes of a snapshot (`{m}`: the macro)."""
    n = f"DATE '{night}'"
    ref = BY_CODE[code].persons[0]
    on = f"{n} BETWEEN l.night AND coalesce(l.last_night, l.night)"
    return {
        "a scan with counts (the bulletin, the profile)":
            f"SELECT count(*), count(DISTINCT {ref.id_column}), sum(source_row) FROM {{m}}({n})",
        "rows of 2,000 persons (the rules' scope)":
            f"SELECT count(*), sum(source_row) FROM {{m}}({n}) d SEMI JOIN ids ON ids.id = d.{ref.id_column}",
        "joined to the night's links (the linked view)":
            f"SELECT count(*), sum(hash(l.person_key)) FROM {{m}}({n}) d JOIN wh.links l "
            f"ON l.dataset = '{code}' AND l.role = '{ref.role}' AND {on} AND l.row_id = d.row_id",
        "copied whole (staging the records to link)": f"CREATE OR REPLACE TEMP TABLE t AS SELECT * FROM {{m}}({n})",
        "fingerprints and rows (tomorrow's known rows)":
            f"CREATE OR REPLACE TEMP TABLE t AS SELECT source_row, raw_hash, line_hash FROM {{m}}({n})",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--dataset", default="vehicles")
    ap.add_argument("--night", type=date.fromisoformat, default=None, help="default: the dataset's last snapshot")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bidui-place-map-") as tmp:
        con = duckdb.connect(str(Path(tmp) / "alt.duckdb"))
        con.execute("SET enable_progress_bar = false")
        con.execute(f"ATTACH '{args.home / 'warehouse.duckdb'}' AS wh (READ_ONLY)")
        code = args.dataset
        night = args.night or con.execute(f"SELECT max(snapshot_date) FROM wh.snapshots WHERE dataset = '{code}'").fetchone()[0]
        before = con.execute(f"SELECT max(snapshot_date) FROM wh.snapshots WHERE dataset = '{code}' AND snapshot_date < ?",
                             [night]).fetchone()[0]
        if before is None:
            sys.exit(f"{code} has no snapshot before {night}")
        moved, runs = build(con, code, night, before)
        con.execute("USE alt")
        macros(con, code)
        ref = BY_CODE[code].persons[0]
        con.execute(f"CREATE TEMP TABLE ids AS SELECT DISTINCT {ref.id_column} AS id FROM now_at(DATE '{night}') "
                    f"WHERE {ref.id_column} IS NOT NULL USING SAMPLE 2000 ROWS (reservoir, 1)")
        (total,), = con.execute(f"SELECT count(*) FROM now_at(DATE '{night}')").fetchall()
        (differ,), = con.execute(f"SELECT count(*) FROM ((SELECT * FROM now_at(DATE '{night}')) EXCEPT ALL "
                                 f"(SELECT * FROM map_at(DATE '{night}')))").fetchall()
        print(f"{code}, snapshot of {night} ({total:,} rows): {moved:,} rows only moved since {before}, "
              f"{runs:,} runs; rows that differ between the two macros: {differ}\n")
        print("| read | stored again (s) | place map (s) | ratio |\n|---|---|---|---|")
        for label, sql in reads(code, night).items():
            medians = []
            for macro in ("now_at", "map_at"):
                times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    con.execute(sql.format(m=macro)).fetchall()
                    times.append(time.perf_counter() - start)
                medians.append(statistics.median(times))
            print(f"| {label} | {medians[0]:.3f} | {medians[1]:.3f} | {medians[1] / medians[0]:.1f}× |")
        con.close()


if __name__ == "__main__":
    main()
