"""Links carried from the night before (issue 18, part 2) against linking everything, on the nights
a bench home has run (`bench/endtoend.py` leaves one in bench/out/<size>/e2e-home).

For each night after the first: the warehouse is copied, the night is linked again both ways —
carrying (as the nightly run does) and linking every record — and the two sets of links are
compared row by row. Prints a table: sure links carried, seconds either way, and whether the links
are equal.

    python bench/carry.py --size medium [--anew]

`--anew`: before linking, every department's dataset is delivered anew on each night (its rows
of the snapshot in force, in reverse order, as another file), as when departments send their whole
extract every night: its sure links are carried by what each row says, not by its row.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bidui.connectors import snapshot_rows
from bidui.connectors import warehouse as wh
from bidui.matching.link import link_night
from bidui.matching.link_nights import literal, placed_sql


def deliver_anew(con, night) -> None:
    """Every linked dataset whose snapshot in force is an earlier night's, stored again as the
    night's: the same rows in reverse order, in a file of another name, by a load of its own."""
    from bidui.matching.records import linked_datasets

    loads = wh.in_force_loads(con, night)
    for code in linked_datasets():
        if code not in loads or loads[code][0] == night:
            continue
        snap = loads[code][0]
        (load,), = con.execute("SELECT max(load_id) + 1 FROM snapshots").fetchall()
        (top, rows), = con.execute(f"SELECT max(source_row), count(*) FROM ds_{code}_at(?)", [snap]).fetchall()
        file = f"again_{code}_{night.isoformat()}.csv"
        # (the rows open before end where this snapshot begins, as ingest closes them)
        snapshot_rows.close(con, code, night)
        con.execute(f"""INSERT INTO ds_{code} BY NAME SELECT * REPLACE (DATE '{night.isoformat()}' AS snapshot_date,
                            {load} AS load_id, '{file}' AS source_file, {top} + 1 - source_row AS source_row)
                        FROM ds_{code}_at(?) ORDER BY source_row DESC""", [snap])
        con.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, 'again', ?)", [code, night, load, file, rows])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="medium")
    ap.add_argument("--anew", action="store_true", help="every dataset delivered anew each night, rows reversed")
    args = ap.parse_args()
    home = Path("bench/out") / args.size / "e2e-home"
    source = wh.connect(home / "warehouse.duckdb")
    nights = [n for n, in source.execute("SELECT night FROM link_runs ORDER BY night").fetchall()]
    source.close()
    print(f"links carried against linking everything, {args.size} prefecture ({home})"
          + (", every dataset delivered anew each night (rows reversed)" if args.anew else "") + "\n")
    print("| night | records | sure links carried | link s, carrying | link s, everything | links equal |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for night in nights[1:]:
            results = {}
            for carry in (True, False):
                copy = Path(tmp) / f"w-{carry}.duckdb"
                shutil.copy(home / "warehouse.duckdb", copy)
                con = wh.connect(copy)
                try:
                    if args.anew:
                        deliver_anew(con, night)
                    start = time.perf_counter()
                    result = link_night(con, night, carry=carry)
                    seconds = time.perf_counter() - start
                    # (at their records' rows: the two copies' identities may differ)
                    links = con.execute(f"SELECT * FROM ({placed_sql(literal(night))}) ORDER BY ALL").fetchall()
                finally:
                    con.close()
                    copy.unlink()
                results[carry] = (result, seconds, links)
            (carried, s1, a), (_, s2, b) = results[True], results[False]
            print(f"| {night} | {len(a):,} | {carried.carried:,} | {s1:.1f} | {s2:.1f} | {'yes' if a == b else 'NO'} |")


if __name__ == "__main__":
    main()
