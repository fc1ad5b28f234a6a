"""The nights a stored link holds for (issue 18, part 2).

A link row is made on one night (`night`) and holds through `last_night` (NULL: that night only).
It names its record by dataset, row and role: the row of the dataset's snapshot each night it holds
for was linked with, as the snapshot macro gives it (the file is that snapshot's; a link does not
name it, as a kept snapshot row does not: delivered files carry the date in their name). A sure
link a later night keeps is not copied: its `last_night` is moved on
(`bidui.matching.carry.keep_in_place`) — in a dataset whose snapshot did not change, and at the rows a
dataset delivered anew has in place (the same row saying the same) — so a night that keeps ten
million links writes one date on each instead of the rows again (2.5–4.5 s a night at the large size). Every reader asks for the
links of a night with `on_night`; nothing reads `links.night` alone.

Nights are linked in order, but one may be linked again, or a night folder that came late may be
linked after later ones: `forget` first takes the night out of every range that spans it (the
links of the nights around it stay as they were)."""

from __future__ import annotations

from datetime import date

import duckdb


def on_night(night: str, alias: str = "") -> str:
    """SQL: the link row (`alias`: its table's alias with its dot, or "") holds on `night` (an SQL
    date expression: a literal, a parameter, a column)."""
    return f"({night} BETWEEN {alias}night AND coalesce({alias}last_night, {alias}night))"


def literal(night: date) -> str:
    return f"DATE '{night.isoformat()}'"


# A link as stored, but its nights and whether it was carried.
LINK_COLUMNS = "dataset, source_row, role, person_key, method, score, id_name_conflict, explanation"


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
