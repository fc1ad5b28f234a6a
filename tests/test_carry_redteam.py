"""Review of issue 18, part 1 (rows delivered as before are copied inside DuckDB, `_carried_rows`)
and of the spine numbered by its hukou rows: a night whose rows are carried stores exactly what
ingesting it from scratch stores — when the night is run again with another file (the rows come
from the snapshot about to be replaced), after a held file is forced, when nothing is new or every
new row lacks its dates, on every dataset — and a file that fails after its rows were staged keeps
nothing and leaves no staging table behind."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest

from bidui.connectors import csv_lines
from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
from bidui.connectors.mapping import map_headers
from bidui.connectors.readers import read_table
from bidui.connectors.stored import run_rows
from bidui.datasets import DATASETS, dataset_for_filename
from tests.test_ingest_carry import HEADER, LOOSE, NIGHTS, SAME, deliver, pid
from tests.test_ingest_carry import snapshot as _deaths

N1, N2 = NIGHTS
ROWS = [*SAME, *([pid(f"52900119600101{i:03d}"), "张王李赵"[i // 10] + "明华强勇军芳丽娜静敏"[i % 10], "2026年3月3日"]
                 for i in range(36))]


def _staging_left(con) -> list:
    return con.execute("SELECT table_name FROM information_schema.tables WHERE table_name = ?",
                       [wh.CARRIED_ROWS]).fetchall()


def _status(outcomes) -> tuple[str, int, str]:
    o = next(o for o in outcomes if o.dataset == "deaths")
    return o.status, o.rows_loaded, o.message


def _spy(monkeypatch) -> list[tuple[date, int]]:
    staged: list[tuple[date, int]] = []
    real = wh.stage_carried_rows

    def spy(con, ds, snap, rows, *rest):
        # (rows listed, and rows in place, handed over as runs of rows)
        staged.append((snap, rows.height + run_rows(rest[1] if len(rest) > 1 else None)))
        return real(con, ds, snap, rows, *rest)

    monkeypatch.setattr(wh, "stage_carried_rows", spy)
    return staged



def test_a_night_run_again_with_another_file_keeps_every_row(tmp_path: Path, homes, monkeypatch) -> None:
    """The rows carried come from tonight's own snapshot, which the new file replaces: every row
    is kept, as from scratch (values, fingerprints, row hashes, rejects), and nothing is staged
    after."""
    inbox = tmp_path / "inbox"
    first = deliver(inbox, N1, HEADER, ROWS)
    second = deliver(inbox / "a", N2, HEADER, ROWS[:38])
    # The night again: another file (rows moved, one gone, one corrected, one new, one rejected).
    again = deliver(inbox / "b", N2, HEADER, [ROWS[39], [ROWS[0][0], "刘苓", ROWS[0][2]], *ROWS[2:38][::-1],
                                              [pid("52900119700101666"), "钱七", "2026年13月1日"]])
    staged = _spy(monkeypatch)
    for folder, night in ((first, N1), (second, N2), (again, N2)):
        for con, carry in zip(homes, (True, False), strict=True):
            assert _status(ingest_night(con, folder, night, workers=1, carry=carry, limits=LOOSE))[0] == "accepted"
        assert _deaths(homes[0], night) == _deaths(homes[1], night)
    assert staged == [(N1, 38), (N2, 36)]  # the rerun's rows came from the snapshot it replaced
    rows, rejects = _deaths(homes[0], N2)
    assert len(rows) == 39 and len(rejects) == 1
    assert homes[0].execute("SELECT rows FROM snapshots WHERE dataset = 'deaths' AND snapshot_date = ?",
                            [N2]).fetchone() == (39,)
    assert _staging_left(homes[0]) == []


def test_a_held_file_then_forced_stores_what_scratch_stores(tmp_path: Path, homes) -> None:
    """A cut re-delivery (every row carried) is held, and staged nothing that stays; run with
    force it is stored as from scratch, and the night before stays as it was."""
    inbox = tmp_path / "inbox"
    first, cut = deliver(inbox, N1, HEADER, ROWS), deliver(inbox, N2, HEADER, ROWS[:10])
    for con, carry in zip(homes, (True, False), strict=True):
        assert _status(ingest_night(con, first, N1, workers=1, carry=carry))[0] == "accepted"
        status, loaded, message = _status(ingest_night(con, cut, N2, workers=1, carry=carry))
        assert (status, loaded) == ("held", 0) and "10 rows" in message
        assert _staging_left(con) == []
        status, loaded, _ = _status(ingest_night(con, cut, N2, workers=1, carry=carry, force=True))
        assert (status, loaded) == ("forced", 10)
    for night in NIGHTS:
        assert _deaths(homes[0], night) == _deaths(homes[1], night)
    assert len(_deaths(homes[0], N2)[0]) == 10 and len(_deaths(homes[0], N1)[0]) == 40
    assert _staging_left(homes[0]) == []


@pytest.mark.parametrize("how", ["a row in place went", "the last row went", "another load"])
def test_a_snapshot_moved_under_rows_in_place_keeps_nothing(tmp_path: Path, homes, how: str) -> None:
    """Rows delivered again in place are handed over as runs of rows (`Normalised.in_place`), not
    looked up one by one: a snapshot that lost one of them, or was stored again, between reading
    and storing is seen all the same — the file is refused and nothing of it stored."""
    inbox = tmp_path / "inbox"
    first = deliver(inbox, N1, HEADER, ROWS)
    second = deliver(inbox, N2, HEADER, [*ROWS[:20], [ROWS[20][0], "刘苓", ROWS[20][2]], *ROWS[21:]])
    con = homes[0]
    ingest_night(con, first, N1, workers=1)
    read: list = []
    real = csv_lines.read_changed

    def spy(*args, **kwargs):
        found = real(*args, **kwargs)
        read.append(found)
        return found

    def move(_name: str) -> None:  # after the file was read, before it is stored
        if how == "another load":
            con.execute("UPDATE snapshots SET load_id = load_id + 100 WHERE dataset = 'deaths' AND snapshot_date = ?", [N1])
        else:
            con.execute("DELETE FROM ds_deaths WHERE snapshot_date = ? AND source_row = ?", [N1, 30 if how == "a row in place went" else 40])

    with pytest.MonkeyPatch.context() as m:
        m.setattr(csv_lines, "read_changed", spy)
        status, loaded, message = _status(ingest_night(con, second, N2, workers=1, progress=move))
    assert run_rows(read[0][1].in_place) >= 30  # read by its lines, most of them in place
    assert (status, loaded) == ("refused", 0) and "changed while it was read" in message
    assert con.execute("SELECT count(*) FROM ds_deaths WHERE snapshot_date = ?", [N2]).fetchone() == (0,)
    assert wh.in_force(con, N2)["deaths"] == N1
    assert _staging_left(con) == []


def test_a_snapshot_moved_under_the_run_keeps_nothing(tmp_path: Path, homes) -> None:
    """The snapshot the rows were read for loses a row between reading and storing: the file is
    refused, nothing of it is stored, the staging table is gone, and the night is then stored as
    from scratch."""
    inbox = tmp_path / "inbox"
    first, second = deliver(inbox, N1, HEADER, ROWS), deliver(inbox, N2, HEADER, [*ROWS[::-1]])
    con = homes[0]
    ingest_night(con, first, N1, workers=1)

    def move(_name: str) -> None:  # after the night's fingerprints were read, before the file is stored
        con.execute("DELETE FROM ds_deaths WHERE snapshot_date = ? AND source_row = 3", [N1])

    status, loaded, message = _status(ingest_night(con, second, N2, workers=1, progress=move))
    assert (status, loaded) == ("refused", 0) and "changed while it was read" in message
    assert con.execute("SELECT count(*) FROM ds_deaths_at(?)", [N2]).fetchone() == (0,)
    assert wh.in_force(con, N2)["deaths"] == N1
    assert _staging_left(con) == []
    assert _status(ingest_night(con, second, N2, workers=1))[:2] == ("accepted", 40)
    ingest_night(homes[1], second, N2, workers=1, carry=False)
    assert _deaths(con, N2) == _deaths(homes[1], N2)


def test_a_failure_inside_the_transaction_keeps_the_snapshot_it_would_replace(tmp_path: Path, homes,
                                                                              monkeypatch) -> None:
    """A night run again fails after its carried rows were inserted (and tonight's earlier snapshot
    deleted): all of it is rolled back — tonight's earlier snapshot is whole — and nothing is left
    staged; once the failure is gone the night is stored as from scratch."""
    inbox = tmp_path / "inbox"
    first, second = deliver(inbox, N1, HEADER, ROWS), deliver(inbox / "a", N2, HEADER, ROWS[::-1])
    again = deliver(inbox / "b", N2, HEADER, [*ROWS, [pid("52900119700101666"), "钱七", "2026年6月1日"]])
    con = homes[0]
    ingest_night(con, first, N1, workers=1)
    ingest_night(con, second, N2, workers=1)
    before = _deaths(con, N2)

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(wh, "add_name_keys", broken)
    status, loaded, message = _status(ingest_night(con, again, N2, workers=1))
    assert (status, loaded) == ("refused", 0) and "could not be stored (RuntimeError: boom)" in message
    assert _deaths(con, N2) == before and len(before[0]) == 40
    assert _staging_left(con) == []
    monkeypatch.undo()
    assert _status(ingest_night(con, again, N2, workers=1))[:2] == ("accepted", 41)
    for folder, night in ((first, N1), (again, N2)):
        ingest_night(homes[1], folder, night, workers=1, carry=False)
    assert _deaths(con, N2) == _deaths(homes[1], N2)


# --------------------------------------------------------------- every dataset of a real night


def _write(folder: Path, name: str, header: list[str], rows: list[list]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([["" if v is None else v for v in r] for r in rows])
    (folder / "_SUCCESS").touch()


def _variant(kind: str, ds, header: list[str], rows: list[list]) -> list[list]:
    if kind == "nothing_new":  # every row carried: no new row at all
        return rows[::-1]
    # A few new rows, each with every date column empty (so the new rows' dates are all null).
    mapping = map_headers(ds, header, "x", 1)
    dates = [mapping.positions[c.name] for c in ds.columns if c.kind == "date" and c.name in mapping.positions]
    last = len(header) - 1
    touched = set(dates) | {mapping.positions.get(k) for k in ds.keys}
    new = []
    for r in rows[:3]:
        r = list(r)
        for i in dates:
            r[i] = None
        if not dates and last not in touched:  # no date column: made new another way
            r[last] = (r[last] or "") + "x"
        new.append(r)
    return rows[3:] + new


@pytest.mark.parametrize("kind", ["nothing_new", "new_rows_without_dates"])
def test_every_dataset_carried_is_stored_and_judged_as_from_scratch(tiny: Path, tmp_path: Path, homes, kind,
                                                                    monkeypatch) -> None:
    """Every dataset of a night, delivered again with nothing new (the new rows' frame is empty
    beside the staged ones) or with new rows whose dates are all empty: the same outcome (status,
    rows, held reasons) and the same snapshot as from scratch; linking numbers the spine by its
    hukou rows, one number per spine row, the same in both homes."""
    from bidui.matching.link import stage_night

    src = tiny / "inbox" / N1.isoformat()
    first, second = tmp_path / "in" / N1.isoformat(), tmp_path / "in" / N2.isoformat()
    for path in sorted(p for p in src.iterdir() if not p.name.startswith("_")):
        ds = dataset_for_filename(path.name)
        raw = read_table(path, ds)
        rows = [list(r) for r in raw.data.iter_rows()]
        _write(first, path.stem + ".csv", raw.header, rows)
        _write(second, path.stem + ".csv", raw.header, _variant(kind, ds, raw.header, rows))
    staged = _spy(monkeypatch)
    for folder, night in ((first, N1), (second, N2)):
        got = [sorted((o.file, o.status, o.rows_read, o.rows_loaded, o.rows_rejected, o.message)
                      for o in ingest_night(con, folder, night, workers=1, carry=carry))
               for con, carry in zip(homes, (True, False), strict=True)]
        assert got[0] == got[1], night
    assert len(staged) == len(DATASETS)  # every dataset carried rows
    for ds in DATASETS:
        sql = f"SELECT * EXCLUDE (load_id, row_id) FROM ds_{ds.code}_at(?) ORDER BY source_row"
        assert homes[0].execute(sql, [N2]).fetchall() == homes[1].execute(sql, [N2]).fetchall(), ds.code
        # (A row delivered at the same place as the night before is kept, not stored again, so no
        # reader may rely on the order rows are stored in: tests/test_snapshot_rows.py.)
    spines = []
    for con in homes:
        stage_night(con, N2)
        (n, distinct), = con.execute("SELECT count(*), count(DISTINCT pi) FROM link_spine").fetchall()
        assert n == distinct > 1000
        assert con.execute("SELECT count(*) FROM link_spine s ANTI JOIN ds_hukou_at(?) h "
                           "ON h.source_row = s.pi", [N2]).fetchone() == (0,)
        spines.append(con.execute("SELECT * FROM link_spine ORDER BY pi").fetchall())
    assert spines[0] == spines[1]


def test_a_division_code_delivered_twice_gets_the_same_name_in_the_ledger(tiny: Path, tmp_path: Path, homes) -> None:
    """A divisions file sends a village's code twice (its old row, carried, and a row with its new
    name after it): the ledger's division takes the same name whether the rows were carried or not."""
    from sqlalchemy import select

    from bidui.clues.db import ledger_url, open_ledger
    from bidui.clues.models import Division
    from bidui.clues.publish import _sync_divisions, divisions

    text = (tiny / "inbox" / N1.isoformat() / "行政区划代码.csv").read_text(encoding="utf-8-sig")
    village = next(line for line in text.splitlines() if line.endswith(",乡村")).split(",")
    renamed = ",".join([village[0], village[1] + "新", *village[2:]])
    folders = []
    for night, body in ((N1, text), (N2, text.rstrip("\n") + "\n" + renamed + "\n")):
        folder = tmp_path / "in" / night.isoformat()
        folder.mkdir(parents=True)
        (folder / "行政区划代码.csv").write_text(body, encoding="utf-8")
        (folder / "_SUCCESS").touch()
        folders.append((folder, night))
    names = []
    for i, (con, carry) in enumerate(zip(homes, (True, False), strict=True)):
        ledger = open_ledger(ledger_url(tmp_path / f"ledger{i}.sqlite"))
        try:
            for folder, night in folders:
                assert [o.status for o in ingest_night(con, folder, night, workers=1, carry=carry)
                        if o.dataset == "divisions"] == ["accepted"]
                with ledger.write() as s:
                    _sync_divisions(s, divisions(con, night))
            with ledger.read() as s:
                names.append(s.scalar(select(Division.name).where(Division.code == village[0])))
        finally:
            ledger.close()
    assert names[1] == village[1] + "新"  # from scratch: the row delivered last
    assert names[0] == names[1]


def test_identities_follow_a_hukou_file_that_replaces_the_nights_own(tiny: Path, tmp_path: Path) -> None:
    """A night run again with another hukou file (its rows in another order): the identity
    exceptions (shared numbers, second numbers) kept for the night's snapshot are computed again
    for the new rows, not kept from the file it replaced (they are keyed by row)."""
    from bidui.matching.records import IDENTITY_SQL, ensure_identity

    src = next((tiny / "inbox" / N1.isoformat()).glob("hukou_*"))
    raw = read_table(src, dataset_for_filename(src.name))
    rows = [list(r) for r in raw.data.iter_rows()]
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        for i, body in enumerate((rows, rows[::-1])):
            folder = tmp_path / "in" / str(i) / N1.isoformat()
            _write(folder, src.stem + ".csv", raw.header, body)
            assert [o.status for o in ingest_night(con, folder, N1, workers=1) if o.dataset == "hukou"] == ["accepted"]
            ensure_identity(con, N1)
            kept = con.execute("SELECT source_row, person_key, is_primary FROM hukou_identity WHERE snapshot_date = ? "
                               "ORDER BY ALL", [N1]).fetchall()
            fresh = con.execute(f"SELECT * FROM ({IDENTITY_SQL}) ORDER BY ALL", [N1]).fetchall()
            assert kept == fresh and len(fresh) > 5, i
    finally:
        con.close()


def test_fingerprints_cannot_be_forged_by_separators_in_unmapped_columns(tmp_path: Path, homes, monkeypatch) -> None:
    """Two rows alike but for unmapped cells that hide the fingerprint's separators (x␟H2␞y | z and
    x | y␟H2␞z) are two texts: delivered again, each is carried once and the file is stored, as from
    scratch (a collision made the staging find two rows for one and refused the file every night)."""
    header = [*HEADER, "H1", "H2"]
    rows = [[*ROWS[0], "x\x1fH2\x1ey", "z"], [*ROWS[0], "x", "y\x1fH2\x1ez"], *([*r, "", ""] for r in ROWS[1:])]
    folders = [deliver(tmp_path / "in" / str(i), night, header, body)
               for i, (night, body) in enumerate(((N1, rows), (N2, rows[::-1])))]
    staged = _spy(monkeypatch)
    for folder, night in zip(folders, NIGHTS, strict=True):
        for con, carry in zip(homes, (True, False), strict=True):
            assert _status(ingest_night(con, folder, night, workers=1, carry=carry))[0] == "accepted", night
    assert staged == [(N1, len(rows))]
    assert _deaths(homes[0], N2) == _deaths(homes[1], N2)


def test_an_unmapped_column_without_a_header_that_moves_is_read_again(tmp_path: Path, homes) -> None:
    """An unmapped column without a header is kept under its place (`column4`); moved to the front
    the next night, its rows are not those of the night before (`column1`), as from scratch."""
    rows = [[*r, "备注甲"] for r in ROWS]
    moved = [[r[-1], *r[:-1]] for r in rows]
    folders = [deliver(tmp_path / "in" / "1", N1, [*HEADER, ""], rows),
               deliver(tmp_path / "in" / "2", N2, ["", *HEADER], moved)]
    for folder, night in zip(folders, NIGHTS, strict=True):
        for con, carry in zip(homes, (True, False), strict=True):
            assert _status(ingest_night(con, folder, night, workers=1, carry=carry))[0] == "accepted", night
    assert _deaths(homes[0], N2) == _deaths(homes[1], N2)
    assert homes[0].execute("SELECT DISTINCT extra_json FROM ds_deaths_at(?)",
                            [N2]).fetchall() == [('{"column1":"备注甲"}',)]
