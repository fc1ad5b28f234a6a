"""Links kept in place across nights (bidui.matching.link_nights): a sure link a later night keeps
is not copied, it holds on that night too; linking a night again, in the middle of others, leaves
every other night's links as they were."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from bidui.connectors.ingest import ingest_night
from bidui.matching import link_nights
from bidui.matching.link import LINKS_SCHEMA, link_night
from bidui.matching.link_nights import LINK_COLUMNS
from tests.test_carry import twins  # noqa: F401  (the fixture)

N1, N2, N3, N4 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22), date(2026, 11, 23)


def on(con, night: date) -> list[tuple]:
    return con.execute(f"SELECT {LINK_COLUMNS} FROM links WHERE {link_nights.on_night('?::DATE')} ORDER BY ALL",
                       [night]).fetchall()


def _table() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(LINKS_SCHEMA)
    for n in (N1, N2, N3, N4):
        con.execute("INSERT INTO link_runs (night) VALUES (?)", [n])

    def link(row: int, person: str, first: date, last: date | None) -> None:
        con.execute("INSERT INTO links (night, dataset, row_id, role, person_key, method, last_night) "
                    "VALUES (?, 'vehicles', ?, 'owner', ?, 'exact', ?)", [first, row, person, last])

    link(1, "a", N1, N4)  # kept from the first night through the last
    link(2, "b", N1, N2)  # kept into the night forgotten, linked otherwise after it
    link(2, "c", N3, None)
    link(3, "d", N2, N3)  # made on the night forgotten, kept into the next
    link(4, "e", N2, None)  # made on the night forgotten only
    link(5, "f", N3, N4)  # after it
    return con


def test_forgetting_a_night_leaves_every_other_night_as_it_was() -> None:
    con = _table()
    before = {n: on(con, n) for n in (N1, N3, N4)}
    assert [r[3] for r in on(con, N2)] == ["a", "b", "d", "e"]
    link_nights.forget(con, N2)
    assert on(con, N2) == []
    assert {n: on(con, n) for n in (N1, N3, N4)} == before
    # Nothing holds on a night it was not linked on: the ranges no longer span the night forgotten.
    spans = con.execute("SELECT count(*) FROM links WHERE night < ? AND coalesce(last_night, night) >= ?",
                        [N2, N2]).fetchone()[0]
    assert spans == 0


def test_forgetting_the_last_night_takes_back_what_was_carried_into_it() -> None:
    con = _table()
    before = {n: on(con, n) for n in (N1, N2, N3)}
    link_nights.forget(con, N4)
    assert on(con, N4) == []
    assert {n: on(con, n) for n in (N1, N2, N3)} == before


def test_kept_links_are_not_copied_and_a_night_linked_again_changes_no_other(twins, tiny: Path) -> None:  # noqa: F811
    carry, everything = twins
    for night in (N2, N3):
        for con in twins:
            ingest_night(con, tiny / "inbox" / night.isoformat(), night, workers=1)
        assert link_night(carry, night).carried > 0
        link_night(everything, night, carry=False)
    nights = {n: on(carry, n) for n in (N1, N2, N3)}
    assert nights == {n: on(everything, n) for n in (N1, N2, N3)}
    # Each night's links are all there, but those kept were not written again.
    stored, = carry.execute("SELECT count(*) FROM links").fetchone()
    assert stored < sum(len(v) for v in nights.values())
    assert stored == carry.execute("SELECT count(*) FROM links WHERE last_night IS NULL OR last_night >= night"
                                   ).fetchone()[0]
    link_night(carry, N2)  # the middle night again, after the last
    assert {n: on(carry, n) for n in (N1, N2, N3)} == nights


def test_links_that_named_their_file_and_row_name_their_record_after_an_upgrade(tmp_path: Path) -> None:
    """A warehouse whose links named their record's file and row (earlier versions) names each
    record by its identity on opening: that of the row the link named in the snapshot the last night
    it holds for was linked with (here night 1's, in force on both nights the first link holds for;
    night 3's, another snapshot; and night 5's, for a link held from night 3 where row 5 was stored
    again on night 5: the night the next one carries from). `links_of` gives each link's file and
    row again. A link whose row is no longer stored names no record, and reads as unlinked, as it did."""
    from bidui.connectors import warehouse as wh
    from bidui.matching.link import links_of

    db = tmp_path / "w.duckdb"
    wh.connect(db).close()
    old = duckdb.connect(str(db))
    old.execute(LINKS_SCHEMA.replace("row_id BIGINT,", "source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL,"))
    n5 = date(2026, 11, 24)
    for night, last, row, person in ((N1, N2, 3, "P1"), (N3, None, 5, "P3"), (N3, None, 9, "P9"), (N3, n5, 6, "P6")):
        old.execute("INSERT INTO links (night, dataset, source_file, source_row, role, person_key, method, last_night) "
                    "VALUES (?, 'vehicles', 'v.csv', ?, 'owner', ?, 'exact', ?)", [night, row, person, last])
    for night, load, file in ((N1, 7, "vehicles_20261120.csv"), (N3, 8, "vehicles_20261122.csv"),
                              (n5, 9, "vehicles_20261124.csv")):
        old.execute("INSERT INTO snapshots VALUES ('vehicles', ?, ?, ?, 'x', 3)", [night, load, file])
    # Row 3 of night 1's snapshot, and at night 3 a record at row 5 (row 9 is not stored); row 6 of
    # night 3 stored again on night 5 (a new identity there).
    old.execute("INSERT INTO ds_vehicles (snapshot_date, load_id, source_file, source_row, row_id) VALUES "
                "(?, 7, 'vehicles_20261120.csv', 3, 1003), (?, 8, 'vehicles_20261122.csv', 5, 2005), "
                "(?, 8, 'vehicles_20261122.csv', 6, 2006), (?, 9, 'vehicles_20261124.csv', 6, 3006)", [N1, N3, N3, n5])
    old.execute("DROP TABLE warehouse_setup")  # (an earlier version did not record its set-up)
    old.close()
    con = wh.connect(db)
    try:
        columns = {r[0] for r in con.execute("DESCRIBE links").fetchall()}
        assert "source_file" not in columns and "source_row" not in columns
        assert on(con, N2) == [("vehicles", 1003, "owner", "P1", "exact", None, None, None)]
        assert on(con, N3) == [("vehicles", 2005, "owner", "P3", "exact", None, None, None),
                               ("vehicles", 3006, "owner", "P6", "exact", None, None, None),
                               ("vehicles", None, "owner", "P9", "exact", None, None, None)]
        got = links_of(con, n5).select("source_file", "source_row", "person_key").rows()
        assert got == [("vehicles_20261124.csv", 6, "P6")]  # the night the next one carries from
        got = links_of(con, N2).select("dataset", "source_file", "source_row", "person_key").rows()
        assert got == [("vehicles", "vehicles_20261120.csv", 3, "P1")]  # the snapshot in force on night 2
        got = links_of(con, N3).select("dataset", "source_file", "source_row", "person_key").rows()
        assert got == [("vehicles", "vehicles_20261122.csv", 5, "P3")]
    finally:
        con.close()


def test_the_what_if_refuses_links_that_name_rows_until_a_night_opens_the_warehouse(tmp_path: Path) -> None:
    """The what-if reads the warehouse read-only, so it cannot name an earlier version's links by
    their records: it says so in Chinese (every record would read unlinked otherwise), and reads
    the warehouse once a night's run has opened it."""
    import pytest

    from bidui.connectors import warehouse as wh
    from bidui.home import Home
    from bidui.rules.whatif import WhatIfError, _open

    home = Home(tmp_path / "home")
    wh.connect(home.warehouse).close()
    old = duckdb.connect(str(home.warehouse))
    old.execute(LINKS_SCHEMA.replace("row_id BIGINT,", "source_row BIGINT NOT NULL,"))
    old.execute("DROP TABLE warehouse_setup")  # (an earlier version)
    old.close()
    with pytest.raises(WhatIfError, match=r"旧版本.*请先运行一次夜间比对"):
        _open(home, str(tmp_path))
    wh.connect(home.warehouse).close()  # what a night's run does first
    _open(home, str(tmp_path)).close()
