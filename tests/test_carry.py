"""Issue 18, part 2: sure links carried from the night before give exactly the links of linking
everything — night after night on the tiny prefecture, and on a night whose hukou changed under
linked records (a person gone, a number two persons now share, a birth into a household, a name
corrected) and whose verdicts changed."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from bidui.connectors import snapshot_rows
from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
from bidui.datasets import BY_CODE
from bidui.home import Home
from bidui.matching import decisions, link_nights
from bidui.matching.link import SPINE_KEYS_SELECT, link_night


def placed(night: date) -> str:
    """The links holding on `night`, each at its record's row (a table expression)."""
    return f"({link_nights.placed_sql(link_nights.literal(night))})"


def links_of(con, night: date) -> list[tuple]:
    return con.execute(f"SELECT * FROM {placed(night)} ORDER BY ALL").fetchall()


def fresh_ids(night: date, row: str = '"source_row"') -> str:
    """SQL: a row edited or added by hand is a new record (warehouse.new_row_id), as ingest makes it."""
    return wh.new_row_id(str(night.toordinal()), row)


@pytest.fixture
def twins(published_home, tmp_path: Path):
    """Two copies of the published home's warehouse (night 1 linked): one carries, one links all."""
    root, _, _ = published_home
    paths = [tmp_path / "carry.duckdb", tmp_path / "all.duckdb"]
    for p in paths:
        shutil.copy(Home(root).warehouse, p)
    cons = [wh.connect(p) for p in paths]
    yield cons
    for con in cons:
        con.close()


@pytest.fixture(autouse=True)
def watched_third(monkeypatch) -> None:
    """Drift watched on a third of the residue, whatever its size: the other records may keep
    their scored outcome (`link.hold_scored`; at the tiny size the whole residue is watched). A
    third of the tiny residue's hundred candidate pairs is too few to measure drift by (0.14 on
    the number's levels): it is measured, against a limit these nights stay under."""
    from bidui.matching import link

    monkeypatch.setattr(link, "DRIFT_SAMPLE_FROM", 0)
    monkeypatch.setattr(link, "DRIFT_SAMPLE", 3)
    monkeypatch.setattr(link, "DRIFT", 0.5)


HELD: list[int] = []  # scored outcomes kept by the carrying twin, night by night


def both(twins, night: date) -> tuple[int, list[tuple]]:
    """Link the night both ways; (links carried, the links) after checking they are the same."""
    carry, everything = twins
    result = link_night(carry, night)
    carried = result.carried
    HELD.append(result.held)
    assert link_night(everything, night, carry=False).carried == 0
    assert links_of(carry, night) == links_of(everything, night)
    # The spine kept across nights (bidui.matching.spine_store) is the spine built whole.
    assert carry.execute("SELECT * FROM spine_rows ORDER BY ALL").fetchall() == \
        everything.execute("SELECT * FROM spine_rows ORDER BY ALL").fetchall(), night
    # …its keys, brought up with it, are the keys made from it (link.SPINE_KEYS_SQL)…
    made = carry.execute(f"SELECT * FROM ({SPINE_KEYS_SELECT.replace('{spine}', 'spine_rows')}) ORDER BY ALL").fetchall()
    assert carry.execute("SELECT * FROM spine_keys ORDER BY ALL").fetchall() == made, night
    assert everything.execute("SELECT * FROM spine_keys ORDER BY ALL").fetchall() == made, night
    # …and so are the hukou identity exceptions, brought from the snapshot before's (records.ensure_identity).
    identities = "SELECT * FROM hukou_identity WHERE snapshot_date = (SELECT snapshot_date FROM spine_state) ORDER BY ALL"
    assert carry.execute(identities).fetchall() == everything.execute(identities).fetchall(), night
    assert everything.execute("SELECT how FROM spine_state").fetchall() == [("built",)]
    return carried, links_of(carry, night)


def spine_staged(twins) -> str:
    """How the carrying twin's spine was last staged: kept, updated (by the numbers that changed) or built."""
    return twins[0].execute("SELECT how FROM spine_state").fetchone()[0]


def test_carried_links_equal_linking_everything_night_after_night(twins, tiny: Path) -> None:
    carried, staged = [], []
    for night in (date(2026, 11, 21), date(2026, 11, 22)):
        for con in twins:
            ingest_night(con, tiny / "inbox" / night.isoformat(), night, workers=1)
        n, links = both(twins, night)
        assert links, night
        carried.append(n)
        staged.append(spine_staged(twins))
    # Not a test that cannot fail: most sure links were carried, not linked again, and scored
    # outcomes kept; the spine was brought from one night to the next by the numbers that changed.
    assert all(n > 0 for n in carried), carried
    assert all(n > 0 for n in HELD[-2:]), HELD
    assert staged == ["updated", "updated"], staged


def edit_hukou(con, night: date, before: date, *edits: str) -> None:
    """Tonight's hukou: the snapshot of `before`, edited (SQL on `_h`), stored as tonight's."""
    con.execute("CREATE OR REPLACE TEMP TABLE _h AS SELECT * FROM ds_hukou_at(?)", [before])
    for edit in edits:
        con.execute(edit)
    # An edited row no longer says what was delivered: no fingerprint (a later delivery of the
    # original row must not take the edited values).
    con.execute(f"UPDATE _h SET snapshot_date = ?, load_id = 999, row_hash = {wh.row_hash_sql(BY_CODE['hukou'])}, "
                "raw_hash = NULL", [night])
    # The rows that say what they said at the same place are kept there, as ingest keeps a file's
    # rows delivered again (bidui.connectors.snapshot_rows); the others are stored.
    con.execute("""CREATE OR REPLACE TEMP TABLE _same AS SELECT h.source_row FROM _h h
                   JOIN ds_hukou_at(?) d ON d.source_row = h.source_row AND d.row_hash = h.row_hash""", [before])
    (rows,), = con.execute("SELECT count(*) FROM _h").fetchall()
    snapshot_rows.forget(con, "hukou", night)  # a night between two stored ones: their kept rows are cut around it
    if snapshot_rows.keep(con, "hukou", night, before, "_same"):
        con.execute("DELETE FROM _h WHERE source_row IN (SELECT source_row FROM _same)")
    else:
        snapshot_rows.close(con, "hukou", night)
    con.execute(f"UPDATE _h SET row_id = {fresh_ids(night)}")  # stored anew: new records
    con.execute("INSERT INTO ds_hukou BY NAME SELECT * FROM _h")
    con.execute("INSERT INTO snapshots VALUES ('hukou', ?, 999, 'hukou_edit.csv', 'edit', ?)", [night, rows])
    wh.add_name_keys(con, wh.query(con, "SELECT name FROM _h")["name"])


def redeliver(con, night: date, before: date) -> None:
    """Every dataset linked to hukou delivered anew tonight: the rows of its snapshot in force the
    night before, in reverse order, in a file of another name (its links are followed by what each
    record says, not by its row)."""
    from bidui.matching.records import linked_datasets

    for code, snap in wh.in_force(con, before).items():
        if code not in linked_datasets():
            continue
        con.execute(f"CREATE OR REPLACE TEMP TABLE _d AS SELECT * FROM ds_{code}_at(?)", [snap])
        (top, rows), = con.execute("SELECT max(source_row), count(*) FROM _d").fetchall()
        file = f"again_{code}_{night.isoformat()}.csv"
        con.execute("UPDATE _d SET snapshot_date = ?, load_id = 998, source_file = ?, source_row = ? + 1 - source_row",
                    [night, file, top])
        snapshot_rows.close(con, code, night)  # stored whole: the rows open before end
        con.execute(f"INSERT INTO ds_{code} BY NAME SELECT * FROM _d")
        con.execute("INSERT INTO snapshots VALUES (?, ?, 998, ?, 'again', ?)", [code, night, file, rows])


@pytest.mark.parametrize("moved", [False, True], ids=["snapshots kept", "delivered anew"])
def test_carried_links_equal_linking_everything_when_hukou_and_verdicts_change(twins, moved: bool) -> None:
    """…whether the departments' snapshots stay as they were or come anew with their rows moved
    (then their links are carried by what each row says, none by a row that now holds another
    record)."""
    night1, night2 = date(2026, 11, 20), date(2026, 11, 21)
    carry, _ = twins
    # Persons whose numbers records are linked to by their number: one leaves hukou, one's number is
    # given to a second person (一号多人), one's name is corrected, one's household gets a child
    # named as a record under a parent's number would be, and one is refuted by a township.
    linked = [r[0] for r in carry.execute("""
        SELECT person_key FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) AND method = 'exact' AND NOT contains(person_key, '~')
        GROUP BY ALL ORDER BY count(*) DESC, 1 LIMIT 5""", [night1]).fetchall()]
    gone, shared, renamed, parent = (wh.sql_text(k) for k in linked[:4])
    record = carry.execute("""
        SELECT l.dataset, l.role FROM links l WHERE ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.person_key = ? LIMIT 1""",
                           [night1, linked[4]]).fetchone()
    # …and a child's record under a parent's number, linked to the child through the household
    # (the child leaves: only the household tells that the parent's number was touched),
    # and a cancelled second number linked to its living person (who leaves: the number is its own
    # person again, though its row did not change).
    child, = carry.execute("SELECT person_key FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) AND method = 'household' ORDER BY 1 LIMIT 1",
                           [night1]).fetchone()
    living, = carry.execute("""
        SELECT i.person_key FROM hukou_identity i WHERE i.snapshot_date = ? AND NOT i.is_primary
        AND i.person_key IN (SELECT person_key FROM links WHERE ? BETWEEN night AND coalesce(last_night, night)) ORDER BY 1 LIMIT 1""", [night1, night1]).fetchone()
    # And a person a record whose number Excel cut was linked to by its 15 digits leaves.
    cut, = carry.execute("SELECT person_key FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) AND method = 'excel_cut' ORDER BY 1 LIMIT 1",
                         [night1]).fetchone()
    edits = (f"DELETE FROM _h WHERE id_number = {wh.sql_text(cut)}",
             f"DELETE FROM _h WHERE id_number = {wh.sql_text(child)}",
             f"DELETE FROM _h WHERE id_number = {wh.sql_text(living)} AND status = '正常'",
             f"DELETE FROM _h WHERE id_number = {gone}",
             f"""INSERT INTO _h SELECT * REPLACE (name || '甲' AS name, name_raw || '甲' AS name_raw,
                     birth_date - 400 AS birth_date, source_row + 100000 AS source_row) FROM _h WHERE id_number = {shared}""",
             f"UPDATE _h SET name = name || '乙', name_raw = name_raw || '乙' WHERE id_number = {renamed}",
             f"""INSERT INTO _h SELECT * REPLACE ('张小宝' AS name, '张小宝' AS name_raw, source_row + 200000 AS source_row,
                     '子' AS relation) FROM _h WHERE id_number = {parent}""")
    for con in twins:
        edit_hukou(con, night2, night1, *edits)
        if moved:
            redeliver(con, night2, night1)
        decisions.store(con, [{"kind": "cannot", "dataset": record[0], "role": record[1], "id_number": linked[4],
                               "name": con.execute("SELECT name FROM ds_hukou_at(?) WHERE id_number = ?",
                                                   [night1, linked[4]]).fetchone()[0],
                               "person_key": linked[4], "clue_id": 1, "verifier_name": "孙丽", "decided_on": night2}])
    carried, _ = both(twins, night2)
    # A dataset delivered anew, its rows in another order in another file, keeps the sure links of
    # the rows that say what they said (equal to linking everything: `both`).
    assert carried > 0
    def links_to(person: str, night: date, dataset_role: tuple | None = None) -> int:
        extra = " AND dataset = ? AND role = ?" if dataset_role else ""
        return carry.execute(f"SELECT count(*) FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) AND person_key = ?{extra}",
                             [night, person, *(dataset_role or ())]).fetchone()[0]

    # Not carried: the links to the person who left hukou, and the refuted one.
    assert links_to(linked[0], night1) > 0 and links_to(linked[0], night2) == 0
    assert links_to(linked[4], night1, record) > 0 and links_to(linked[4], night2, record) == 0
    # The night after, the verdict is revoked: the record is linked again, both ways alike.
    for con in twins:
        decisions.store(con, [])
    night3 = date(2026, 11, 22)
    for con in twins:
        edit_hukou(con, night3, night2)
        if moved:
            redeliver(con, night3, night2)
    carried, _ = both(twins, night3)
    assert carried > 0


def late_folder_inbox(tiny: Path, tmp_path: Path) -> Path:
    """Nights 2–4 of the tiny prefecture with no vehicles file on night 3 and an empty night 4 (to be
    run 3, 2, 4: night 2's folder late)."""
    n2, n3, n4 = date(2026, 11, 21), date(2026, 11, 22), date(2026, 11, 23)
    inbox = tmp_path / "inbox"
    for night in (n2, n3):
        shutil.copytree(tiny / "inbox" / night.isoformat(), inbox / night.isoformat())
    for p in (inbox / n3.isoformat()).glob("机动车登记信息*"):
        p.unlink()
    (inbox / n4.isoformat()).mkdir()
    return inbox


def test_links_made_on_another_snapshot_are_not_carried_when_a_night_folder_comes_late(twins, tiny: Path,
                                                                                      tmp_path: Path) -> None:
    """Night 3 has no vehicles file and runs before night 2's folder arrives: it is linked with night
    1's vehicles. Night 2 then stores its own vehicles (dated before night 3, under the same file
    name). Night 4, with no new files, has night 2's vehicles in force — which night 3, worked out
    again now, seems to have had too — but night 3's vehicle links were made on night 1's rows, by
    row number: they must not be carried onto night 2's (a car would go to another owner)."""
    n2, n3, n4 = date(2026, 11, 21), date(2026, 11, 22), date(2026, 11, 23)
    inbox = late_folder_inbox(tiny, tmp_path)
    for night in (n3, n2, n4):  # night 2's folder late
        for con in twins:
            ingest_night(con, inbox / night.isoformat(), night, workers=1)
        both(twins, night)
    carry, _ = twins
    assert wh.in_force(carry, n4)["vehicles"] == n2
    # The vehicles of night 2 differ from night 1's (cars bought, scrapped): rows moved.
    assert carry.execute("SELECT count(*) FROM snapshots WHERE dataset = 'vehicles' AND snapshot_date IN (?, ?)",
                         [date(2026, 11, 20), n2]).fetchone()[0] == 2


def test_a_nights_links_are_not_paired_with_rows_a_late_folder_put_in_force_under_it(tiny: Path, tmp_path: Path,
                                                                                       published_home) -> None:
    """Night 3 is linked with night 1's vehicles; night 2's folder then comes late and puts its own
    vehicles in force on night 3 (the same file name). Night 3's links name rows of night 1's
    snapshot: what reads night 3 again (the rules' views, the links export, the register's copy,
    the bulletin) must not pair them with night 2's rows — a car would go to another owner — but
    read those records unlinked until night 3 is linked again."""
    from bidui.matching import carry
    from bidui.matching.link import export
    from bidui.rules import views

    root, _, _ = published_home
    shutil.copy(Home(root).warehouse, tmp_path / "w.duckdb")
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        n2, n3 = date(2026, 11, 21), date(2026, 11, 22)
        inbox = late_folder_inbox(tiny, tmp_path)
        ingest_night(con, inbox / n3.isoformat(), n3, workers=1)
        link_night(con, n3)
        assert carry.unpaired(con, n3) == set()
        linked = export(con, n3).filter(pl.col("dataset") == "vehicles")
        assert linked.filter(pl.col("method") != "none").height > 0
        ingest_night(con, inbox / n2.isoformat(), n2, workers=1)  # late: not linked, night 3 not run again
        assert wh.in_force(con, n3)["vehicles"] == n2
        assert carry.unpaired(con, n3) == {"vehicles"}
        again = export(con, n3).filter(pl.col("dataset") == "vehicles")
        assert again.height > 0 and again.filter(pl.col("method") != "none").height == 0
        views.create(con, n3)
        (paired,), = con.execute("SELECT count(*) FROM vehicles_linked WHERE link_method IS NOT NULL").fetchall()
        assert paired == 0
        assert con.execute("SELECT count(*) FROM students_linked WHERE link_method IS NOT NULL").fetchone()[0] > 0
        link_night(con, n3)  # linked again: paired again, with night 2's rows
        assert carry.unpaired(con, n3) == set()
        assert export(con, n3).filter((pl.col("dataset") == "vehicles") & (pl.col("method") != "none")).height > 0
    finally:
        con.close()


def test_a_dataset_delivered_anew_keeps_the_links_of_the_rows_that_say_the_same(twins) -> None:
    """Vehicles delivered anew (rows in reverse order, another file): a row now under another
    person's number, a row whose owner's name changed, a row sent twice and a row gone. The rows that
    say what they said keep their links at their new places; the changed ones are linked again (a
    carried link would still name the old owner: `both` would see it)."""
    night1, night2 = date(2026, 11, 20), date(2026, 11, 21)
    carry, _ = twins
    (a_row, _), (b_row, b_person), (c_row, _), (d_row, _) = carry.execute(f"""
        SELECT source_row, person_key FROM {placed(night1)}
        WHERE dataset = 'vehicles' AND method = 'exact' AND NOT contains(person_key, '~')
        ORDER BY source_row LIMIT 4""").fetchall()
    hashed = wh.row_hash_sql(BY_CODE["vehicles"])
    for con in twins:
        redeliver(con, night2, night1)
        (top,), = con.execute("SELECT max(source_row) FROM ds_vehicles_at(?)", [night2]).fetchall()
        where = "snapshot_date = DATE '2026-11-21' AND source_row = {}"
        row = {r: top + 1 - r for r in (a_row, b_row, c_row, d_row)}  # their places tonight (reversed)
        b_name, = con.execute(f"SELECT owner_name FROM ds_vehicles WHERE {where.format(row[b_row])}").fetchone()
        con.execute(f"""UPDATE ds_vehicles SET owner_id_number = {wh.sql_text(b_person)},
                        owner_id_number_raw = {wh.sql_text(b_person)}, owner_name = {wh.sql_text(b_name)},
                        owner_name_raw = {wh.sql_text(b_name)} WHERE {where.format(row[a_row])}""")
        con.execute(f"UPDATE ds_vehicles SET owner_name = '欧阳某某', owner_name_raw = '欧阳某某' "
                    f"WHERE {where.format(row[c_row])}")
        con.execute(f"DELETE FROM ds_vehicles WHERE {where.format(row[d_row])}")
        con.execute(f"""INSERT INTO ds_vehicles SELECT * REPLACE ({top + 1} AS source_row) FROM ds_vehicles
                        WHERE {where.format(row[b_row])}""")
        con.execute(f"UPDATE ds_vehicles SET row_hash = {hashed}, raw_hash = NULL, row_id = {fresh_ids(night2)} "
                    f"WHERE snapshot_date = ? AND source_row IN ({row[a_row]}, {row[c_row]}, {top + 1})", [night2])
        wh.add_name_keys(con, wh.query(con, "SELECT '欧阳某某' AS name")["name"])
    carried, _ = both(twins, night2)
    assert carried > 0

    def tonight(r: int) -> tuple[str | None, str | None]:
        found = carry.execute(f"SELECT person_key, method FROM {placed(night2)} WHERE dataset = 'vehicles' "
                              "AND source_row = ?", [r]).fetchone()
        return found or (None, None)

    assert tonight(row[a_row]) == (b_person, "exact")  # linked again, to the number's holder
    assert tonight(row[c_row])[0] is None or tonight(row[c_row])[1] != "exact"
    assert tonight(row[b_row]) == tonight(top + 1) == (b_person, "exact")  # sent twice: both carried
    assert tonight(row[d_row]) == (None, None)  # gone
    (kept,), = carry.execute("SELECT count(*) FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) AND dataset = 'vehicles' "
                             "AND night < ?", [night2, night2]).fetchall()  # held on from night 1, their rows moved
    assert kept > 0


def test_a_file_sent_under_a_new_name_keeps_the_links_of_its_rows_in_place(twins) -> None:
    """Vehicles delivered anew under tonight's file name, its rows where they were but one whose
    owner's name changed, and a row sent again at the end: the links of the rows in place are not
    written again (they hold on from night 1, as those of a snapshot kept whole do; a link names
    its row, not its file), the changed row is linked again, the new row takes the link of the row
    that says the same — and the links are those of linking everything."""
    night1, night2 = date(2026, 11, 20), date(2026, 11, 21)
    carry, _ = twins
    (c_row,), (b_row,) = carry.execute(f"""
        SELECT source_row FROM {placed(night1)} WHERE dataset = 'vehicles' AND method = 'exact'
        ORDER BY source_row LIMIT 2""").fetchall()
    hashed = wh.row_hash_sql(BY_CODE["vehicles"])
    for con in twins:
        con.execute("CREATE OR REPLACE TEMP TABLE _d AS SELECT * FROM ds_vehicles_at(?)", [night1])
        (top, rows), = con.execute("SELECT max(source_row), count(*) FROM _d").fetchall()
        con.execute("UPDATE _d SET snapshot_date = ?, load_id = 998, source_file = 'vehicles_20261121.csv'", [night2])
        con.execute(f"UPDATE _d SET owner_name = '欧阳某某', owner_name_raw = '欧阳某某' WHERE source_row = {c_row}")
        con.execute(f"UPDATE _d SET row_hash = {hashed}, raw_hash = NULL, row_id = {fresh_ids(night2)} WHERE source_row = {c_row}")
        con.execute(f"INSERT INTO _d SELECT * REPLACE ({top + 1} AS source_row, {fresh_ids(night2, str(top + 1))} "
                    f"AS row_id) FROM _d WHERE source_row = {b_row}")
        snapshot_rows.close(con, "vehicles", night2)  # stored whole: the rows open before end
        con.execute("INSERT INTO ds_vehicles BY NAME SELECT * FROM _d")
        con.execute("INSERT INTO snapshots VALUES ('vehicles', ?, 998, 'vehicles_20261121.csv', 'again', ?)",
                    [night2, rows + 1])
        wh.add_name_keys(con, wh.query(con, "SELECT '欧阳某某' AS name")["name"])
    (before,), = carry.execute("SELECT count(*) FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) "
                               "AND dataset = 'vehicles' AND method = 'exact'", [night1]).fetchall()
    carried, _ = both(twins, night2)
    assert carried >= before - 1
    written = carry.execute("SELECT d.source_row FROM links l JOIN ds_vehicles_at(?) d ON d.row_id = l.row_id "
                            "WHERE l.night = ? AND l.dataset = 'vehicles' AND l.method = 'exact' ORDER BY 1",
                            [night2, night2]).fetchall()
    assert written == [(top + 1,)]  # only the new row's: every other sure link holds on where it lies
    (held,), = carry.execute("SELECT count(*) FROM links WHERE night = ? AND last_night = ? AND dataset = 'vehicles' "
                             "AND method = 'exact'", [night1, night2]).fetchall()
    assert held == before - 1  # all but the changed row's
    def tonight(night: date, r: int) -> list[tuple]:
        return carry.execute(f"SELECT person_key, method FROM {placed(night)} WHERE dataset = 'vehicles' AND source_row = ?",
                             [r]).fetchall()

    assert tonight(night2, top + 1) == tonight(night2, b_row)
    assert tonight(night2, c_row) != tonight(night1, c_row)


def test_hukou_sent_again_in_another_order_keeps_the_household_a_link_read(twins) -> None:
    """A person listed twice under one number, in two households: the spine takes one of the rows
    by what they say, not by their place, so hukou sent again in reverse order changes no household
    link (the plan sees no hukou row change and carries the link)."""
    night1, night2, night3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
    carry, _ = twins
    code, row = carry.execute(f"SELECT dataset, source_row FROM {placed(night1)} WHERE method = 'household' "
                              "ORDER BY 1, 2 LIMIT 1").fetchone()
    ref = BY_CODE[code].persons[0]
    snap = wh.in_force(carry, night1)[code]
    number, = carry.execute(f"SELECT {ref.id_column} FROM ds_{code}_at(?) WHERE source_row = ?",
                            [snap, row]).fetchone()
    other, = carry.execute("""SELECT min(hukou_number) FROM ds_hukou_at(?) WHERE hukou_number <>
                              (SELECT min(hukou_number) FROM ds_hukou_at(?) WHERE id_number = ?)""",
                           [night1, night1, number]).fetchone()
    for con in twins:  # listed a second time, in another household, after every other row
        edit_hukou(con, night2, night1, f"""INSERT INTO _h SELECT * REPLACE ({wh.sql_text(other)} AS hukou_number,
                   source_row + 500000 AS source_row) FROM _h WHERE id_number = {wh.sql_text(number)}""")
    both(twins, night2)
    for con in twins:  # the same rows, in reverse order: the second listing now comes first
        (top,), = con.execute("SELECT max(source_row) FROM ds_hukou_at(?)", [night2]).fetchall()
        edit_hukou(con, night3, night2, f"UPDATE _h SET source_row = {top} + 1 - source_row")
    carried, _ = both(twins, night3)
    assert carried > 0


def test_a_verdict_naming_a_record_by_its_number_as_typed_is_not_carried_past(twins) -> None:
    """A 不是本人 verdict whose number is the record's ID as typed (15 digits, cleaned to 18 on
    ingest), as linking reads it: the plan links that record again instead of carrying its link."""
    night1, night2 = date(2026, 11, 20), date(2026, 11, 21)
    carry, _ = twins
    row, person = carry.execute(f"""
        SELECT source_row, person_key FROM {placed(night1)} WHERE dataset = 'payroll' AND method = 'exact'
        AND NOT contains(person_key, '~') AND substr(person_key, 7, 2) = '19' ORDER BY 1 LIMIT 1""").fetchone()
    snap = wh.in_force(carry, night1)["payroll"]
    number, name = carry.execute("SELECT id_number, name FROM ds_payroll_at(?) WHERE source_row = ?",
                                 [snap, row]).fetchone()
    typed = number[:6] + number[8:17]
    for con in twins:
        con.execute("UPDATE ds_payroll SET id_number_raw = ? WHERE snapshot_date = ? AND source_row = ?",
                    [f" {typed} ", snap, row])
        link_night(con, night1, carry=False)  # night 1 linked on the rows as typed
        decisions.store(con, [{"kind": "cannot", "dataset": "payroll", "role": "staff", "id_number": typed,
                               "name": name, "person_key": person, "clue_id": 1, "verifier_name": "孙丽",
                               "decided_on": night2}])
    carried, _ = both(twins, night2)
    assert carried > 0
    assert carry.execute(f"SELECT person_key FROM {placed(night2)} WHERE dataset = 'payroll' AND source_row = ?",
                         [row]).fetchone()[0] is None


def test_a_late_hukou_folder_that_rewrites_a_former_name_is_not_carried_past(twins) -> None:
    """Night 3 is linked first, with a person renamed (a record saying the old name links as
    former_name); night 2's hukou comes late with a third name, and reading the name history again
    from the first gives the person another former name. Night 4 has no new hukou: no hukou row
    changed since night 3, but its former-name and household links are made again."""
    n1, n2, n3, n4 = (date(2026, 11, d) for d in (20, 21, 22, 23))
    carry, _ = twins
    person, = carry.execute("""SELECT person_key FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) AND dataset = 'students'
                               AND method = 'exact' AND NOT contains(person_key, '~') ORDER BY 1 LIMIT 1""",
                            [n1]).fetchone()
    x = wh.sql_text(person)
    for con in twins:
        edit_hukou(con, n3, n1, f"UPDATE _h SET name = name || '乙', name_raw = name_raw || '乙' WHERE id_number = {x}")
    both(twins, n3)
    assert carry.execute("SELECT count(*) FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) AND person_key = ? AND method = 'former_name'",
                         [n3, person]).fetchone()[0] > 0
    for con in twins:
        edit_hukou(con, n2, n1, f"UPDATE _h SET name = name || '丙', name_raw = name_raw || '丙' WHERE id_number = {x}")
    both(twins, n2)
    carried, _ = both(twins, n4)
    assert carried > 0


def test_the_spine_keeps_one_row_per_person_the_one_what_its_rows_say_chooses(twins) -> None:
    """A person listed three times under one number (living and cancelled, in other households) is
    one spine row: the least by PERSON_ROW_KEY, as the rules' `hukou_person` chooses. Checked
    against a choice made here in Python over every row of the snapshot."""
    from bidui.matching.records import PERSON_ROW_KEY, SPINE_SQL, prepare_spine

    night1, night2 = date(2026, 11, 20), date(2026, 11, 21)
    con, _ = twins
    number, = con.execute("SELECT min(id_number) FROM ds_hukou_at(?) WHERE status = '正常' "
                          "AND id_number_status = 'valid'", [night1]).fetchone()
    n = wh.sql_text(number)
    edit_hukou(con, night2, night1,
               f"INSERT INTO _h SELECT * REPLACE ('注销' AS status, 'H9' AS hukou_number, source_row + 500000 AS "
               f"source_row) FROM _h WHERE id_number = {n}",
               f"INSERT INTO _h SELECT * REPLACE ('00' AS hukou_number, source_row + 600000 AS source_row) "
               f"FROM _h WHERE id_number = {n} AND status = '正常'")
    prepare_spine(con, night2)
    spine = {row for row, in con.execute(f"SELECT source_row FROM ({SPINE_SQL})", [night2, night2]).fetchall()}
    key = PERSON_ROW_KEY.format(village="address_code")
    rows = con.execute(f"""SELECT person, id_number, {key}, source_row FROM (
                               SELECT h.*, coalesce(i.person_key, h.id_number) AS person FROM ds_hukou_at(?) h
                               LEFT JOIN hukou_identity i ON i.snapshot_date = h.snapshot_date AND i.source_row = h.source_row
                               WHERE h.id_number_status = 'valid')""", [night2]).fetchall()
    best: dict[tuple, tuple] = {}
    for person, id_number, struct, row in rows:
        order = tuple(struct)  # the key's fields in order (none is NULL: each is coalesced)
        if (person, id_number) not in best or order < best[(person, id_number)][0]:
            best[(person, id_number)] = (order, row)
    assert spine == {row for _, row in best.values()}
    listed = {row for p, i, _, row in rows if i == number}
    assert len(listed) >= 3 and len(listed & spine) == 1  # the person's living row in household 00, listed last
    chosen, = listed & spine
    assert con.execute("SELECT status, hukou_number FROM ds_hukou_at(?) WHERE source_row = ?",
                       [night2, chosen]).fetchone() == ("正常", "00")


def test_a_number_shared_tonight_moves_the_cancelled_number_that_was_its_second(twins) -> None:
    """一人多号 meets 一号多人: a cancelled number is the second number of a living person; tonight a
    second person is registered under the living person's number, whose key becomes number~hukou
    number. The cancelled number's exception follows, though neither its row nor any row of its
    name, birth date and county changed: the identities brought from the night before's equal those
    computed whole (`both`), and name the new key."""
    night1, night2 = date(2026, 11, 20), date(2026, 11, 21)
    carry, _ = twins
    living, = carry.execute("""SELECT person_key FROM hukou_identity WHERE snapshot_date = ? AND NOT is_primary
                               AND NOT contains(person_key, '~') ORDER BY 1 LIMIT 1""", [night1]).fetchone()
    for con in twins:
        edit_hukou(con, night2, night1, f"""
            INSERT INTO _h SELECT * REPLACE (name || '甲' AS name, name_raw || '甲' AS name_raw,
                                            birth_date - 400 AS birth_date, source_row + 100000 AS source_row)
            FROM _h WHERE id_number = {wh.sql_text(living)} AND status = '正常'""")
    both(twins, night2)
    assert spine_staged(twins) == "updated"
    seconds = [k for k, in carry.execute("SELECT person_key FROM hukou_identity WHERE snapshot_date = ? AND NOT is_primary "
                                         "AND split_part(person_key, '~', 1) = ?", [night2, living]).fetchall()]
    assert seconds and all(k.startswith(f"{living}~") for k in seconds), seconds


@pytest.mark.parametrize("moved", [False, True], ids=["snapshots kept", "delivered anew"])
def test_scored_outcomes_are_kept_only_where_nothing_they_depend_on_changed(twins, moved: bool) -> None:
    """A scored (or unlinked) record keeps last night's outcome unless something it depends on
    changed (`link.hold_scored`): here the person of one fuzzy link leaves hukou, the person of
    another is renamed, and a township refutes a third (不是本人) — each record scored again, as
    linking everything scores it; the other scored records keep theirs."""
    night1, night2 = date(2026, 11, 20), date(2026, 11, 21)
    carry, _ = twins
    links = carry.execute(f"""
        SELECT dataset, role, source_row, person_key FROM {placed(night1)}
        WHERE method IN ('fuzzy', 'review') AND NOT contains(person_key, '~') AND dataset <> 'register_members'
        QUALIFY row_number() OVER (PARTITION BY person_key ORDER BY dataset, source_row) = 1
        ORDER BY person_key""").fetchall()

    def said(dataset: str, role: str, row: int) -> tuple[str, str]:
        ref = next(p for p in BY_CODE[dataset].persons if p.role == role)
        return carry.execute(f"SELECT coalesce({ref.id_column}, trim({ref.id_column}_raw)), {ref.name_column} "
                             f"FROM ds_{dataset}_at(?) WHERE source_row = ?", [night1, row]).fetchone()

    # The persons changed are not the records' numbers (a typo, a number missing): only their
    # candidates changed — what hukou changed under a record's own number is restaged anyway.
    others = [(d, r, row, p) for d, r, row, p in links if said(d, r, row)[0] != p]
    assert len(others) >= 3, links
    (d1, r1, row1, p1), (_, _, _, p2), (_, _, _, p3) = others[:3]
    number, name = said(d1, r1, row1)
    edits = (f"DELETE FROM _h WHERE id_number = {wh.sql_text(p2)}",
             f"UPDATE _h SET name = '欧阳某某', name_raw = '欧阳某某' WHERE id_number = {wh.sql_text(p3)}")
    for con in twins:
        edit_hukou(con, night2, night1, *edits)
        if moved:
            redeliver(con, night2, night1)
        decisions.store(con, [{"kind": "cannot", "dataset": d1, "role": r1, "id_number": number, "name": name,
                               "person_key": p1, "clue_id": 1, "verifier_name": "孙丽", "decided_on": night2}])
    before = len(HELD)
    both(twins, night2)  # the same links as linking everything
    assert HELD[before] > 0, HELD  # and scored outcomes were kept

    def scored(person: str, night: date) -> list[tuple]:
        return carry.execute("SELECT dataset, role, method, score FROM links WHERE ? BETWEEN night AND "
                             "coalesce(last_night, night) AND person_key = ? ORDER BY ALL", [night, person]).fetchall()

    # Not a test that cannot fail: each change moved what it reached.
    assert scored(p2, night2) == [] and scored(p3, night2) != scored(p3, night1)
    assert (d1, r1) not in {(d, r) for d, r, *_ in scored(p1, night2)}


def test_a_member_whose_household_moved_village_is_scored_again(twins) -> None:
    """A register member reads its village from its household (`records.reads_households`): when
    the households' snapshot changes, no member keeps a scored outcome (`carry.may_hold`). Here a
    household with a scored member moves to a village of another township: the member's village no
    longer agrees with its person's, its score moves, and it is scored again as linking everything
    scores it."""
    night1, night2 = date(2026, 11, 20), date(2026, 11, 21)
    carry, _ = twins
    found = carry.execute("""
        SELECT m.household_code, l.person_key, h.village_code FROM links l
        JOIN ds_register_members_at(?) m ON m.row_id = l.row_id
        JOIN ds_register_households_at(?) h ON h.household_code = m.household_code
        WHERE ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.dataset = 'register_members'
              AND l.method IN ('fuzzy', 'review') AND NOT contains(l.person_key, '~')
        ORDER BY l.score, m.household_code LIMIT 1""", [night1, night1, night1]).fetchall()
    assert found, "the tiny prefecture has a member linked by score"
    (household, person, village), = found
    (elsewhere,), = carry.execute("SELECT min(code) FROM ds_divisions_at(?) WHERE level = 'village' AND "
                                  "substr(code, 1, 9) <> substr(?, 1, 9)", [night1, village]).fetchall()
    for con in twins:
        edit_hukou(con, night2, night1)  # hukou as it was: only the household moved
        con.execute("CREATE OR REPLACE TEMP TABLE _rh AS SELECT * FROM ds_register_households_at(?)", [night1])
        con.execute(f"UPDATE _rh SET snapshot_date = ?, load_id = 997, village_code = ?, raw_hash = NULL, "
                    f"row_id = {fresh_ids(night2)} WHERE household_code = ?", [night2, elsewhere, household])
        con.execute(f"UPDATE _rh SET snapshot_date = ?, load_id = 997, row_hash = {wh.row_hash_sql(BY_CODE['register_households'])}",
                    [night2])
        (rows,), = con.execute("SELECT count(*) FROM _rh").fetchall()
        snapshot_rows.close(con, "register_households", night2)
        con.execute("INSERT INTO ds_register_households BY NAME SELECT * FROM _rh")
        con.execute("INSERT INTO snapshots VALUES ('register_households', ?, 997, 'households_moved.csv', 'moved', ?)",
                    [night2, rows])
    before = len(HELD)
    both(twins, night2)  # the same links as linking everything
    assert HELD[before] > 0, HELD  # other datasets' scored outcomes were kept

    def scored(night: date) -> list[tuple]:
        return carry.execute("SELECT method, score FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) "
                             "AND dataset = 'register_members' AND person_key = ? ORDER BY ALL", [night, person]).fetchall()

    # Not a test that cannot fail: the move changed the member's outcome, which a kept one would not show.
    assert scored(night2) != scored(night1)
