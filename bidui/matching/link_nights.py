"""The nights a stored link holds for (issue 18, part 2).

A link row is made on one night (`night`) and holds through `last_night` (NULL: that night only;
OPEN: every later night, until a night does not keep it). A link a later night keeps, of a dataset
whose snapshot did not change, is not copied (`bidui.matching.carry.keep_whole`): made on the last
night linked, it is open, and the next night writes only the links it does not keep (`close`) —
not a date on each of the ten million it keeps (0.3 s and most of a second's commit at the large
size), nor the rows again (2.5–4.5 s). Every reader asks for the links of a night with `on_night`;
nothing reads `links.night` alone. Links are read on the nights that were linked: an open link
shows on a night not linked yet too.

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


OPEN = date(9999, 12, 31)  # the `last_night` of a link that holds until a night does not keep it


def made_until(con: duckdb.DuckDBPyConnection, night: date) -> date | None:
    """The `last_night` of a link made on `night`: open when it is the last night linked (none
    after it in `link_runs`), else that night only."""
    (later,), = con.execute("SELECT count(*) FROM link_runs WHERE night > ?", [night]).fetchall()
    return None if later else OPEN


def close(con: duckdb.DuckDBPyConnection, night: date, but: str | None = None) -> None:
    """The links open before `night` end on the night linked before it, but those the SQL
    condition `but` keeps (inside the caller's transaction, after `forget`)."""
    (before,), = con.execute("SELECT max(night) FROM link_runs WHERE night < ?", [night]).fetchall()
    if before is None:
        return
    con.execute(f"UPDATE links SET last_night = ? WHERE last_night = {literal(OPEN)} AND night < {literal(night)}"
                + (f" AND NOT ({but})" if but else ""), [before])


# A link as stored, but its nights and whether it was carried.
LINK_COLUMNS = "dataset, source_file, source_row, role, person_key, method, score, id_name_conflict, explanation"


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
    # Carried into it: until the night linked before it (none: only rows a test stored by hand) —
    # open again when that one is the last now.
    con.execute(f"UPDATE links SET last_night = ? WHERE night < {n} AND last_night >= {n}",
                [before if after is not None or before is None else OPEN])
    con.execute(f"DELETE FROM links WHERE night = {n}")
