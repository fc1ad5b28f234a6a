"""Issue 18, part 1: a row delivered exactly as in the snapshot in force is not normalised again,
and the night's snapshot and rejects are exactly those of normalising every row — whatever the
delivery's form (columns reordered), and for a row whose rejected value tonight's date makes
readable (it has no fingerprint, so it is always normalised again)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
from bidui.connectors.normalise import ValueLimits
from bidui.connectors.plausibility import Limits

NIGHTS = (date(2026, 11, 20), date(2026, 11, 21))


def pid(first17: str) -> str:
    """A valid 18-character ID number (GB 11643 check character)."""
    total = sum(int(d) * w for d, w in zip(first17, (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    return first17 + "10X98765432"[total % 11]


LOOSE = Limits(max_reject_share=0.5)  # one rejected value in six rows would hold the file
HEADER = ["证件号码", "死者姓名", "死亡日期"]
SAME = [[pid("52900119780725240"), "刘玲", "2026年1月25日"], [pid("52900120100812202"), "陈欣怡", "2026年3月21日"],
        [pid("52900119550101001"), "张三", "2026年2月2日"], [pid("52900119480303661"), "李四", "2026年5月6日"]]
# Dated eight days after night 1: past the seven days' margin that night (rejected, kept empty),
# within it on night 2.
AHEAD = [pid("52900119520304771"), "王五", "2026年11月28日"]


def deliver(root: Path, night: date, header: list[str], rows: list[list[str]]) -> Path:
    folder = root / night.isoformat()
    folder.mkdir(parents=True)
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    (folder / f"死亡医学证明_{night:%m%d}.csv").write_text(text, encoding="utf-8-sig")
    (folder / "_SUCCESS").touch()
    return folder


def snapshot(con, night: date) -> tuple[list[tuple], list[tuple]]:
    rows = con.execute("SELECT * EXCLUDE (load_id, row_id) FROM ds_deaths_at(?) ORDER BY source_row",
                       [night]).fetchall()
    rejects = con.execute("SELECT r.source_row, column_name, value, reason FROM rejects r JOIN snapshots s "
                          "ON s.load_id = r.load_id AND s.dataset = 'deaths' AND s.snapshot_date = ? ORDER BY ALL",
                          [night]).fetchall()
    return rows, rejects


def test_rows_delivered_again_are_carried_and_the_snapshot_is_the_same(tmp_path: Path, monkeypatch) -> None:
    inbox = tmp_path / "inbox"
    first = deliver(inbox, NIGHTS[0], HEADER, [*SAME, AHEAD, [pid("52900119661010888"), "赵六", "2026年4月4日"]])
    # Night 2: columns in another order, the same four rows (in another place), the early one
    # again, one name corrected and one new row.
    order = [2, 0, 1]
    second = deliver(inbox, NIGHTS[1], [HEADER[i] for i in order],
                     [[r[i] for i in order] for r in [[pid("52900119661010888"), "赵陆", "2026年4月4日"], *SAME[::-1], AHEAD,
                                                      [pid("52900119700101666"), "钱七", "2026年6月1日"]]])
    carried: list[int] = []
    real = wh.stage_carried_rows

    def spy(con, ds, snap, rows, *rest):
        carried.append(rows.height)
        return real(con, ds, snap, rows, *rest)

    monkeypatch.setattr(wh, "stage_carried_rows", spy)
    cons = [wh.connect(tmp_path / "carry.duckdb"), wh.connect(tmp_path / "all.duckdb")]
    try:
        for folder, night in ((first, NIGHTS[0]), (second, NIGHTS[1])):
            for con, carry in zip(cons, (True, False), strict=True):
                outcomes = ingest_night(con, folder, night, workers=1, carry=carry, limits=LOOSE)
                assert [o.status for o in outcomes if o.dataset == "deaths"] == ["accepted"], outcomes
        # Only the four rows delivered again unchanged were carried (not the one with a rejected
        # value, which night 2 reads), and only by the home that carries.
        assert carried == [4]
        for night in NIGHTS:
            assert snapshot(cons[0], night) == snapshot(cons[1], night), night
        _, rejects = snapshot(cons[0], NIGHTS[0])
        assert [r[-1] for r in rejects] and all("死亡日期" not in r[-1] for r in rejects)  # reasons are the engine's
        assert len(rejects) == 1 and rejects[0][1] == "death_date"
        row = cons[0].execute("SELECT death_date, raw_hash IS NULL FROM ds_deaths_at(?) WHERE "
                              "id_number = ?", [NIGHTS[1], AHEAD[0]]).fetchone()
        assert row == (date(2026, 11, 28), False)  # readable on night 2, and carried from now on
        assert cons[0].execute("SELECT count(*) FROM ds_deaths_at(?) WHERE raw_hash IS NULL",
                               [NIGHTS[0]]).fetchone()[0] == 1  # night 1: the rejected row has none
    finally:
        for con in cons:
            con.close()


@pytest.mark.parametrize("edit", ["limits", "night_before"])
def test_nothing_is_carried_under_other_limits_or_from_a_later_snapshot(tmp_path: Path, monkeypatch, edit) -> None:
    """A fingerprint covers the value limits (a changed limit normalises every row again), and a
    snapshot of a later night is never the source (its latest readable date is later)."""
    inbox = tmp_path / "inbox"
    later = deliver(inbox, NIGHTS[1], HEADER, SAME)
    earlier = deliver(inbox, NIGHTS[0], HEADER, [*SAME, AHEAD])
    carried: list[int] = []
    real = wh.stage_carried_rows
    monkeypatch.setattr(wh, "stage_carried_rows", lambda con, ds, snap, rows, *rest: carried.append(rows.height) or real(con, ds, snap, rows, *rest))
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        if edit == "limits":
            ingest_night(con, earlier, NIGHTS[0], workers=1, limits=LOOSE)
            limits = Limits(max_reject_share=0.5, values=ValueLimits(max_name_chars=40))
            ingest_night(con, later, NIGHTS[1], workers=1, limits=limits)
        else:
            ingest_night(con, later, NIGHTS[1], workers=1, limits=LOOSE)
            ingest_night(con, earlier, NIGHTS[0], workers=1, limits=LOOSE)
            rows, _ = snapshot(con, NIGHTS[0])
            assert len(rows) == 5
        assert carried == []
    finally:
        con.close()


def test_tonights_profile_counted_in_duckdb_is_the_one_counted_in_polars(published_home) -> None:
    """The plausibility checks count carried rows in DuckDB (`profile_query`) and new ones in
    polars (`profile_rows`): on every dataset of a real night, the two agree exactly (rows, usable
    and distinct IDs, each enumeration's values, filled ID and name columns)."""
    from bidui.connectors.plausibility import profile_query, profile_rows
    from bidui.datasets import DATASETS
    from bidui.home import Home

    con = wh.connect(Home(published_home[0]).warehouse)
    try:
        checked = 0
        for ds in DATASETS:
            snap = wh.in_force(con, NIGHTS[0]).get(ds.code)
            if snap is None:
                continue
            sql = f"SELECT * FROM ds_{ds.code}_at(?)"
            assert profile_query(con, ds, sql, [snap]) == profile_rows(ds, wh.query(con, sql, [snap])), ds.code
            checked += 1
        assert checked >= 10
    finally:
        con.close()


def _kept_profile_is_the_count(con, ds, snap: date) -> None:
    """The snapshot's profile was kept when it was stored, and it is what counting its rows gives."""
    import hashlib

    from bidui.connectors.plausibility import SNAPSHOT_ROWS, _profile_how, profile_query, profile_snapshot

    (load,), = con.execute("SELECT load_id FROM snapshots WHERE dataset = ? AND snapshot_date = ?",
                           [ds.code, snap]).fetchall()
    digest = hashlib.sha256(_profile_how(ds).encode()).hexdigest()[:16]
    assert con.execute("SELECT count(*) FROM quality_counts WHERE load_id = ? AND digest = ?",
                       [load, digest]).fetchone()[0] == 1, ds.code
    assert profile_snapshot(con, ds, snap) == profile_query(con, ds, SNAPSHOT_ROWS.format(code=ds.code), [snap]), ds.code


def test_a_snapshot_keeps_the_profile_it_was_checked_with(published_home, tmp_path: Path) -> None:
    """Tomorrow's checks compare with the snapshot in force: its profile is kept when it is stored
    (not counted again from four million rows each night), and is exactly the count of the stored
    rows — for rows normalised (every dataset of a real night) and for rows carried."""
    from bidui.datasets import BY_CODE, DATASETS
    from bidui.home import Home

    con = wh.connect(Home(published_home[0]).warehouse)
    try:
        snaps = {ds.code: snap for ds in DATASETS if (snap := wh.in_force(con, NIGHTS[0]).get(ds.code))}
        assert len(snaps) >= 10
        for code, snap in snaps.items():
            _kept_profile_is_the_count(con, BY_CODE[code], snap)
    finally:
        con.close()
    inbox = tmp_path / "inbox"
    first = deliver(inbox, NIGHTS[0], HEADER, SAME)
    second = deliver(inbox, NIGHTS[1], HEADER, [*SAME, [pid("52900119700101666"), "钱七", "2026年6月1日"]])
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        for folder, night in ((first, NIGHTS[0]), (second, NIGHTS[1])):
            ingest_night(con, folder, night, workers=1, limits=LOOSE)
            _kept_profile_is_the_count(con, BY_CODE["deaths"], night)
    finally:
        con.close()


def test_a_cut_file_whose_rows_are_all_carried_is_still_held(tmp_path: Path) -> None:
    """Carried rows are counted by the checks: a re-delivery holding only the first rows of the
    last one (every row as before, so every row carried) is held as truncated, and the snapshot
    before it stays in force."""
    rows = [[pid(f"52900119600101{i:03d}"), "张王李赵"[i // 10] + "明华强勇军芳丽娜静敏"[i % 10], "2026年3月3日"]
            for i in range(40)]
    inbox = tmp_path / "inbox"
    first, second = deliver(inbox, NIGHTS[0], HEADER, rows), deliver(inbox, NIGHTS[1], HEADER, rows[:10])
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        assert next(o.status for o in ingest_night(con, first, NIGHTS[0], workers=1) if o.dataset == "deaths") == "accepted"
        outcome = next(o for o in ingest_night(con, second, NIGHTS[1], workers=1) if o.dataset == "deaths")
        assert outcome.status == "held" and "10 rows" in outcome.message and "40 rows" in outcome.message
        assert wh.in_force(con, NIGHTS[1])["deaths"] == NIGHTS[0]
        assert con.execute("SELECT count(*) FROM ds_deaths_at(?)", [NIGHTS[1]]).fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM ds_deaths_at(?)", [NIGHTS[0]]).fetchone()[0] == 40
    finally:
        con.close()


def test_known_mask_marks_exactly_the_rows_whose_fingerprint_is_known() -> None:
    """The halves must both agree; a fingerprint known twice marks its rows once; rows without a
    fingerprint are never known; nothing known, nothing marked."""
    import polars as pl

    from bidui.connectors.normalise import known_mask

    u64 = pl.UInt64
    hashes = pl.DataFrame({"raw_hi": [1, 1, 2, 3, None, 1], "raw_lo": [10, 11, 10, 30, 10, 10]},
                          schema={"raw_hi": u64, "raw_lo": u64})
    known = pl.DataFrame({"raw_hi": [1, 1, 3, 9], "raw_lo": [10, 10, 30, 10]}, schema={"raw_hi": u64, "raw_lo": u64})
    assert known_mask(hashes, known).to_list() == [True, False, False, True, False, True]
    assert known_mask(hashes, known.clear()).to_list() == [False] * 6
    assert known_mask(hashes.clear(), known).to_list() == []
