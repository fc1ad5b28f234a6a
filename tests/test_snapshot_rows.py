"""Snapshot rows kept in place (issue 18; bidui.connectors.snapshot_rows): a row a department
delivers again at the same place in its file, saying the same, is not stored again — its
`last_date` moves on — and every reader, through `ds_<code>_at(night)`, sees each night's snapshot
exactly as storing every row would have stored it: when a middle night is run again with another
file, and when a snapshot is withdrawn."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

from bidui.connectors import snapshot_rows
from bidui.connectors.ingest import ingest_night
from tests.test_ingest_carry import HEADER, LOOSE, deliver, pid

N1 = date(2026, 11, 20)
N1, N2, N3, N4 = (N1 + timedelta(days=i) for i in range(4))
ROWS = [[pid(f"52900119600101{i:03d}"), "张王李赵"[i // 10] + "明华强勇军芳丽娜静敏"[i % 10], "2026年3月3日"]
        for i in range(40)]


def _renamed(rows: list[list[str]], *places: int) -> list[list[str]]:
    return [[r[0], r[1] + "某", r[2]] if i in places else r for i, r in enumerate(rows)]


ADDED = [pid("52900119700202123"), "钱多多", "2026年4月4日"]
NIGHT2 = [*_renamed(ROWS, 5), ADDED]  # one row changed, one added at the end
NIGHT3 = _renamed(NIGHT2, 10)  # one more changed: the rest as night 2
NIGHT4 = NIGHT3[::-1]  # every row at another place but the middle one
NIGHT2_AGAIN = _renamed(ROWS, 7)  # night 2 run again with another file


def _ingest(homes, folder: Path, night: date) -> None:
    for con, carry in zip(homes, (True, False), strict=True):
        outcomes = ingest_night(con, folder, night, workers=1, carry=carry, limits=LOOSE)
        assert [o.status for o in outcomes if o.dataset == "deaths"] == ["accepted"], outcomes


def _seen(con, night: date) -> list[tuple]:
    return con.execute("SELECT * EXCLUDE (load_id, row_id) FROM ds_deaths_at(?) ORDER BY source_row", [night]).fetchall()


def _stored(con) -> dict[date, int]:
    return dict(con.execute("SELECT snapshot_date, count(*) FROM ds_deaths GROUP BY 1").fetchall())


def _same(homes, nights=(N1, N2, N3, N4)) -> None:
    for night in nights:
        kept, whole = (_seen(con, night) for con in homes)
        assert kept == whole, night


def test_rows_delivered_again_in_place_are_kept_and_read_as_if_stored(homes, tmp_path: Path) -> None:
    for night, rows in ((N1, ROWS), (N2, NIGHT2), (N3, NIGHT3), (N4, NIGHT4)):
        _ingest(homes, deliver(tmp_path / "in", night, HEADER, rows), night)
    _same(homes)
    names = [n for n, in homes[0].execute("SELECT name FROM ds_deaths_at(?) ORDER BY source_row", [N3]).fetchall()]
    assert names == [r[1] for r in NIGHT3]
    # Stored: night 2 its changed and added rows; night 3 its one changed row; night 4 every row
    # but the middle one, which stayed in place.
    assert _stored(homes[0]) == {N1: 40, N2: 2, N3: 1, N4: 40}
    assert _stored(homes[1]) == {N1: 40, N2: 41, N3: 41, N4: 41}
    # A row kept shows the night's own file and night, as stored whole.
    (files,), = homes[0].execute("SELECT list(DISTINCT source_file) FROM ds_deaths_at(?)", [N3]).fetchall()
    assert files == [f"死亡医学证明_{N3:%m%d}.csv"]
    # The rows of the last snapshot are open (held on by the next night without being written);
    # those that went end on the night they were last delivered.
    for con in homes:
        ends = dict(con.execute("SELECT coalesce(last_date, snapshot_date), count(*) FROM ds_deaths GROUP BY 1").fetchall())
        assert ends[snapshot_rows.OPEN] == 41, ends
    ends = dict(homes[0].execute("SELECT coalesce(last_date, snapshot_date), count(*) FROM ds_deaths GROUP BY 1").fetchall())
    assert ends == {N1: 1, N2: 1, N3: 40, snapshot_rows.OPEN: 41}, ends


def test_a_middle_night_run_again_or_withdrawn_leaves_the_other_nights_as_they_were(homes, tmp_path: Path) -> None:
    for night, rows in ((N1, ROWS), (N2, NIGHT2), (N3, NIGHT3), (N4, NIGHT4)):
        _ingest(homes, deliver(tmp_path / "in", night, HEADER, rows), night)
    before = {night: _seen(homes[1], night) for night in (N1, N3, N4)}
    # Night 2 again with another file: the rows kept from night 1 through night 2 into night 3 are
    # cut around it; night 2 is stored whole (its rows come from its own earlier snapshot).
    _ingest(homes, deliver(tmp_path / "again", N2, HEADER, NIGHT2_AGAIN), N2)
    _same(homes)
    assert {n: _seen(homes[0], n) for n in (N1, N3, N4)} == before
    assert [n for n, in homes[0].execute("SELECT name FROM ds_deaths_at(?) ORDER BY source_row", [N2]).fetchall()] \
        == [r[1] for r in NIGHT2_AGAIN]
    # Night 3's snapshot withdrawn: nights 1, 2 and 4 as they were, none on night 3.
    for con in homes:
        snapshot_rows.forget(con, "deaths", N3)
        con.execute("DELETE FROM snapshots WHERE dataset = 'deaths' AND snapshot_date = ?", [N3])
    _same(homes)
    assert _seen(homes[0], N3) == [] and _seen(homes[0], N4) == before[N4]
    # No row is stored twice for a night, and every row's nights end on a snapshot of its dataset.
    assert homes[0].execute("""
        SELECT count(*) FROM ds_deaths d WHERE coalesce(d.last_date, d.snapshot_date) <> DATE '9999-12-31'
            AND coalesce(d.last_date, d.snapshot_date) NOT IN
            (SELECT snapshot_date FROM snapshots WHERE dataset = 'deaths')""").fetchone() == (0,)


def test_a_night_not_after_the_last_snapshot_stores_every_row(homes, tmp_path: Path) -> None:
    """A folder that came late (night 2 after night 3): its rows are stored whole, not kept (a
    range may only grow from the dataset's last snapshot)."""
    _ingest(homes, deliver(tmp_path / "in", N1, HEADER, ROWS), N1)
    _ingest(homes, deliver(tmp_path / "in", N3, HEADER, NIGHT3), N3)
    _ingest(homes, deliver(tmp_path / "in", N2, HEADER, NIGHT2), N2)
    _same(homes)
    assert _stored(homes[0])[N2] == 41


def test_rows_that_changed_are_found_among_the_rows_not_kept(homes, tmp_path: Path) -> None:
    """The run report's and the carry plan's comparison of two snapshots one after the other reads
    only the rows not kept (`compare_kept_sql`) and finds what comparing both whole finds — with a
    row that says what a kept row says (its date written another way) coming and going."""
    from bidui.connectors.changes import compare_kept_sql, compare_rows_sql
    from bidui.datasets import BY_CODE

    same_as_first = [ROWS[0][0], ROWS[0][1], "2026-03-03"]
    nights = ((N1, ROWS), (N2, NIGHT2), (N3, [*NIGHT3, same_as_first]), (N4, NIGHT4))
    for night, rows in nights:
        _ingest(homes, deliver(tmp_path / "in", night, HEADER, rows), night)
    (twice,), = homes[0].execute("SELECT count(*) - count(DISTINCT row_hash) FROM ds_deaths_at(?)", [N3]).fetchall()
    assert twice == 1
    ds, columns = BY_CODE["deaths"], ["id_number", "name"]
    # Rows stored before row hashes were kept have none: their hash is computed.
    homes[1].execute("UPDATE ds_deaths SET row_hash = NULL WHERE source_row % 3 = 0")
    found = []
    for before, after in ((N1, N2), (N2, N3), (N3, N4)):
        for con in homes:
            whole = sorted(con.execute(compare_rows_sql(ds, before, after, columns)).fetchall())
            assert sorted(con.execute(compare_kept_sql(ds, before, after, columns)).fetchall()) == whole, (before, con)
        found.append(whole)
    # Night 2: one row changed (went and came), one added; night 3: one changed (the row saying
    # what a kept row says came with nothing new); night 4: nothing, though every row moved.
    assert [len(f) for f in found] == [3, 2, 0], found


def test_a_snapshots_counts_are_its_predecessors_less_the_rows_gone_plus_the_rows_stored(
        homes, tmp_path: Path, monkeypatch) -> None:
    """The bulletin's and the name-defect counts of a snapshot that kept most rows in place are
    counted from the snapshot before's (`warehouse.counted_once` with `by_rows`): the same counts
    as counting every row of the home given every row, night after night — with defects coming and
    going, a middle night run again, a night withdrawn and a file sent in another order (counted
    whole)."""
    from bidui.connectors import warehouse as wh
    from bidui.datasets import BY_CODE
    from bidui.matching.quality import night_defects
    from bidui.quality.bulletin import snapshot_counts

    ds = BY_CODE["deaths"]
    bad = [r[:] for r in ROWS]
    bad[3][1], bad[4][0], bad[6][1], bad[8][2] = "张？", bad[4][0][:-1] + "0", "", "2026年13月1日"
    night2 = [*_renamed(bad, 5), [ADDED[0], "LI Ming", ADDED[2]]]
    night3 = [r if i != 3 else [r[0], "张明", r[2]] for i, r in enumerate(night2)]  # a defect mended
    night3[9] = [night3[9][0], "王（已故）", night3[9][2]]  # another comes
    delta: list[int] = []
    real = wh._counted_from_before

    def spied(*args):
        found = real(*args)
        delta.append(found is not None)
        return found

    monkeypatch.setattr(wh, "_counted_from_before", spied)

    def counts(night: date) -> list:
        return [[snapshot_counts(con, ds, night), night_defects(con, night).get("deaths")] for con in homes]

    seen = []
    for night, rows in ((N1, bad), (N2, night2), (N3, night3), (N4, night3[::-1])):
        _ingest(homes, deliver(tmp_path / "in", night, HEADER, rows), night)
        kept, whole = counts(night)
        assert kept == whole, night
        seen.append(kept)
    assert seen[0][1] and seen[0][1] != seen[2][1] and seen[0][0]["ids"] and seen[0][0]["rejected_rows"], seen
    # Nights 2 and 3 were counted from the night before in the home that keeps (both counts); night
    # 4 (every row moved) and every night of the other home, whole.
    assert delta == [False] * 4 + [True, True, False, False] * 2 + [False] * 4, delta
    # Night 2 run again with another file, then night 3 withdrawn: every night counts as the other home.
    _ingest(homes, deliver(tmp_path / "again", N2, HEADER, _renamed(night2, 12)), N2)
    for con in homes:
        snapshot_rows.forget(con, "deaths", N3)
        con.execute("DELETE FROM snapshots WHERE dataset = 'deaths' AND snapshot_date = ?", [N3])
    for night in (N1, N2, N4):
        kept, whole = counts(night)
        assert kept == whole, night


def test_a_kept_snapshots_profile_is_its_predecessors_less_the_rows_left_plus_the_rows_added(
        homes, tmp_path: Path, monkeypatch) -> None:
    """The plausibility profile of a night that keeps most rows in place is worked out from the
    snapshot before's (bidui.connectors.plausibility.profile_tonight) without reading the rows in
    place: it equals the snapshot counted whole — with IDs two rows share (one of them changed,
    both changed, one added under an ID a row in place bears) and an enumeration value the night
    no longer has."""
    from bidui.connectors import plausibility
    from bidui.datasets import BY_CODE
    from tests.test_snapshot_rows_redteam import profiles_as_counted

    header = ["证件号码", "姓名", "参保年度", "参保状态"]
    ids = [pid(f"52900119600101{i:03d}") for i in range(30)]
    # Rows 2k and 2k+1 share an ID; one row only is 中断.
    night1 = [[ids[i // 2], "张王李赵"[i % 4] + "明华强勇军"[i % 5], "2026", "中断" if i == 9 else "参保"]
              for i in range(40)]
    night2 = [list(r) for r in night1]
    night2[9][3] = "参保"  # the only 中断 row: the value is gone
    night2[10][0] = ids[25]  # one row of a shared ID changed to another one's (its ID stays: row 11)
    night2[12][0], night2[13][0] = ids[26], ids[27]  # both rows of a shared ID changed (gone)
    night2[14][0] = pid("52900119900101001")  # to a new ID
    night2.append([ids[3], "钱多多", "2026", "未参保"])  # added under an ID in place

    def deliver_insurance(night: date, rows: list[list[str]]) -> Path:
        folder = tmp_path / "in" / night.isoformat()
        folder.mkdir(parents=True)
        text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
        (folder / f"medical_insurance_{night:%m%d}.csv").write_text(text, encoding="utf-8-sig")
        (folder / "_SUCCESS").touch()
        return folder

    read: list[str] = []
    counted = plausibility.profile_query
    monkeypatch.setattr(plausibility, "profile_query", lambda con, ds, sql, *a: read.append(sql) or counted(con, ds, sql, *a))
    for night, rows in ((N1, night1), (N2, night2)):
        folder = deliver_insurance(night, rows)
        for con, carry in zip(homes, (True, False), strict=True):
            read.clear()
            outcomes = ingest_night(con, folder, night, workers=1, carry=carry, limits=LOOSE)
            assert [o.status for o in outcomes if o.dataset == "medical_insurance"] == ["accepted"], outcomes
            if night == N2 and carry:  # kept in place: the rows in place are not read to profile it
                assert read and not any("_carried_in_place_rows" in sql for sql in read), read
    ds = BY_CODE["medical_insurance"]
    kept, whole = (plausibility.profile_snapshot(con, ds, N2) for con in homes)
    assert kept == whole
    # 20 IDs on night 1: one gone (both its rows changed), three others and a new one came.
    assert kept.values["status"] == {"参保": 40, "未参保": 1} and kept.distinct_ids == 23, kept
    for con in homes:
        profiles_as_counted(con)


def _ids(con, night: date) -> dict[tuple, int]:
    """{what a row says: its record's identity} of the night's snapshot (each once: asserted)."""
    rows = con.execute("SELECT id_number, name, death_date, row_id FROM ds_deaths_at(?)", [night]).fetchall()
    ids = {tuple(r[:3]): r[3] for r in rows}
    assert len(ids) == len(rows) == len(set(ids.values())) and None not in ids.values(), night
    return ids


TOP = [pid("52900119800303456"), "孙小圣", "2026年5月5日"]
MOVED = [TOP, *_renamed(NIGHT2, 10)]  # night 3: a row at the top moves every other one down; one changed


def test_a_record_keeps_its_identity_while_it_says_the_same_wherever_it_stands(homes, tmp_path: Path) -> None:
    """A row delivered again saying the same is the record it was (`row_id`), whether it stayed in
    place (kept), moved down because a row came above it, or stood elsewhere in a file sent in
    reverse (stored again); a row that changed or came is a new record; a night run again from
    another file leaves the identities of the nights after it as they were. From scratch every
    row is a new record each night: identities are not compared between the two homes."""
    nights = ((N1, ROWS), (N2, NIGHT2), (N3, MOVED), (N4, MOVED[::-1]))
    for night, rows in nights:
        _ingest(homes, deliver(tmp_path / "in", night, HEADER, rows), night)
    kept, whole = homes
    for before, night in pairwise(n for n, _ in nights):
        was, now = _ids(kept, before), _ids(kept, night)
        same = was.keys() & now.keys()
        assert {k: now[k] for k in same} == {k: was[k] for k in same}, night
        assert not (set(now[k] for k in now.keys() - same) & set(was.values())), night
        # (night 2: one changed, one added; night 3: one came at the top, one changed;
        # night 4: every row at another place, none changed)
        assert len(now) - len(same) == {N2: 2, N3: 2, N4: 0}[night]
        assert not set(_ids(whole, night).values()) & set(_ids(whole, before).values()), night
    # The 40 rows of night 1 that said the same on every night kept one identity throughout.
    first = _ids(kept, N1)
    assert sum(_ids(kept, N4).get(k) == v for k, v in first.items()) == 38
    later = {n: _ids(kept, n) for n in (N3, N4)}
    _ingest(homes, deliver(tmp_path / "again", N2, HEADER, NIGHT2_AGAIN), N2)
    assert {n: _ids(kept, n) for n in (N3, N4)} == later


def test_a_warehouse_of_an_earlier_version_gives_each_stored_row_an_identity(tmp_path: Path) -> None:
    """Rows stored before records had identities get one each when the warehouse is opened by this
    version, and a row delivered again the next night keeps it."""
    from bidui.connectors import warehouse as wh

    path = tmp_path / "old.duckdb"
    con = wh.connect(path)
    ingest_night(con, deliver(tmp_path / "in", N1, HEADER, ROWS), N1, workers=1, limits=LOOSE)
    con.execute("ALTER TABLE ds_deaths DROP COLUMN row_id")
    con.execute("DELETE FROM warehouse_setup")  # set up by an earlier version
    con.close()
    con = wh.connect(path)
    try:
        first = _ids(con, N1)
        assert len(first) == 40
        ingest_night(con, deliver(tmp_path / "in", N2, HEADER, MOVED), N2, workers=1, limits=LOOSE)
        now = _ids(con, N2)
        assert sum(now.get(k) == v for k, v in first.items()) == 38
    finally:
        con.close()
