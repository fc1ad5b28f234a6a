"""The nights a stored link holds for (issue 18, part 2).

A link row is made on one night (`night`) and holds through `last_night` (NULL: that night only).
It names its record by dataset, identity and role: the record's `row_id` (`bidui.connectors.warehouse.ROW_ID`),
which a row delivered again saying the same keeps wherever it stands in the file, so a reader
joins a link with its row in the snapshot in force (`l.row_id = d.row_id`, the row through the
snapshot macro) and finds the record's file and row of that night there (`placed_sql`). A sure link a later
night keeps is not copied: its `last_night` is moved on (`bidui.matching.carry.keep_in_place`) — in
a dataset whose snapshot did not change, and at the records a dataset delivered anew says again,
in place or moved — so a night that keeps ten million links writes one date on each instead of
the rows again (2.5–4.5 s a night at the large size). Every reader asks for the links of a night
with `on_night`; nothing reads `links.night` alone.

Nights are linked in order, but one may be linked again, or a night folder that came late may be
linked after later ones: `forget` first takes the night out of every range that spans it (the
links of the nights around it stay as they were)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

import duckdb

from bidui.datasets import DATASETS


def on_night(night: str, alias: str = "") -> str:
    """SQL: the link row (`alias`: its table's alias with its dot, or "") holds on `night` (an SQL
    date expression: a literal, a parameter, a column)."""
    return f"({night} BETWEEN {alias}night AND coalesce({alias}last_night, {alias}night))"


def literal(night: date) -> str:
    return f"DATE '{night.isoformat()}'"


# A link as stored, but its nights and whether it was carried.
LINK_COLUMNS = "dataset, row_id, role, person_key, method, score, id_name_conflict, explanation"
# A link as a person or a comparison reads it: its record's row of the night instead of its identity
# (which differs between a home run incrementally and one run from scratch).
PLACED_COLUMNS = LINK_COLUMNS.replace("row_id", "source_row")


def placed_sql(night: str, apart: Collection[str] = ()) -> str:
    """SQL: the links holding on `night` (an SQL date expression) with PLACED_COLUMNS: each at its
    record's row in the snapshot of its dataset in force on the night; a link whose record is not in
    it is left out, and so are the links of the datasets `apart` (`carry.unpaired` of the night:
    made on another snapshot than the one in force now, they name no row every reader pairs them
    with. A record delivered again keeps its identity in a home run incrementally, so its link
    would find it there and not in a home run from scratch)."""
    from bidui.connectors.snapshot_rows import in_force_sql  # (it imports this module)

    def cols(row: str) -> str:
        return ", ".join(row if c == "source_row" else f"l.{c}" for c in PLACED_COLUMNS.split(", "))

    parts = []
    for ds in DATASETS:
        if not ds.persons or ds.code == "hukou" or ds.code in apart:
            continue
        snap = in_force_sql(ds.code, night)
        parts.append(f"""
            SELECT {cols('d.source_row')} FROM links l JOIN ds_{ds.code} d ON d.row_id = l.row_id
                AND d.snapshot_date <= {snap} AND coalesce(d.last_date, d.snapshot_date) >= {snap}
            WHERE {on_night(night, 'l.')} AND l.dataset = '{ds.code}'""")
    # (none: every dataset apart. Still of the night, which the callers pass as a parameter.)
    return " UNION ALL ".join(parts) or (f"SELECT {cols('NULL::BIGINT AS source_row')} FROM links l "
                                         f"WHERE FALSE AND {on_night(night, 'l.')}")


# The night's links per dataset and method, and a digest of them (each record and its person, as a
# multiset: hash(hash(row)) — a row's hash XORs its last column's in): one scan of the links, read
# by the link step for its counts and by the bulletin for its own (bidui.quality.bulletin).
TALLY_SQL = f"""
    SELECT dataset, method, count(*), coalesce(sum(hash(hash(row_id, person_key))::HUGEINT), 0)
    FROM links WHERE {on_night('?::DATE')} GROUP BY ALL ORDER BY ALL"""


def tallies(con: duckdb.DuckDBPyConnection, night: date) -> list[tuple[str, str, int, int]]:
    """(dataset, method, links, digest) of the links holding on `night` (TALLY_SQL)."""
    return [(d, m, int(n), int(total)) for d, m, n, total in con.execute(TALLY_SQL, [night]).fetchall()]


def forget(con: duckdb.DuckDBPyConnection, night: date) -> None:
    """No link holds on `night` any more; those of the other nights stay (inside the caller's
    transaction, before the night's links are stored again). A link carried through it into later
    nights holds again from the next night linked; one carried into it from before holds until the
    night linked before it."""
    n = literal(night)
    before, after = con.execute("SELECT max(night) FILTER (WHERE night < ?), min(night) FILTER (WHERE night > ?) "
                                "FROM link_runs", [night, night]).fetchone()
    if after is not None:
        a = literal(after)
        # Made before the night and carried past it: the part after it, from the next night linked.
        # (Carried, on that night: the night before it was linked with them.)
        con.execute(f"INSERT INTO links SELECT * REPLACE ({a} AS night, TRUE AS carried) FROM links "
                    f"WHERE night < {n} AND last_night > {n}")
        # Made on the night and carried past it: from the next night linked.
        con.execute(f"UPDATE links SET night = {a}, carried = TRUE WHERE night = {n} AND last_night > {n}")
    # Carried into it: until the night linked before it (none: only rows a test stored by hand).
    con.execute(f"UPDATE links SET last_night = ? WHERE night < {n} AND last_night >= {n}", [before])
    con.execute(f"DELETE FROM links WHERE night = {n}")
