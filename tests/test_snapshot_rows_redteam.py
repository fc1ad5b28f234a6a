"""Red team of snapshot rows kept in place (bidui.connectors.snapshot_rows, commit 40cf911): a home
that keeps rows delivered again in place (their `last_date` moved on) must show, through
`ds_<code>_at(night)`, night by night and dataset by dataset, exactly what a home that stores every
row shows — through held files, nights run again (same file, another file, --force), folders that
come late, missing nights, files delivered again in another form (encoding, column order, XLSX,
quoted CSV, no final line break), a first night run again after later ones, snapshots withdrawn,
many nights, the whole nightly flow and a what-if replay. And the stored shape holds: no night
shows a row twice for one source_row, every row's range starts and ends on a snapshot of its
dataset, every row of a night's snapshot carries that snapshot's load."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import xlsxwriter

from bidui.connectors import plausibility, snapshot_rows
from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
from bidui.connectors.plausibility import Limits
from bidui.datasets import DATASETS
from tests.test_ingest_carry import HEADER, pid

LOOSE = Limits(max_reject_share=0.5, max_duplicate_share=0.5)  # a few odd rows in forty would hold the file

NIGHTS = [date(2026, 11, 20) + timedelta(days=i) for i in range(10)]
N1, N2, N3, N4, N5, N6, N7, N8 = NIGHTS[:8]

ROWS = [[pid(f"52900119600101{i:03d}"), "张王李赵"[i // 10] + "明华强勇军芳丽娜静敏"[i % 10], "2026年3月3日"]
        for i in range(40)]
ADDED = [pid("52900119700202123"), "钱多多", "2026年4月4日"]


def renamed(rows: list[list[str]], *places: int) -> list[list[str]]:
    return [[r[0], r[1] + "某", r[2]] if i in places else list(r) for i, r in enumerate(rows)]


# ---------------------------------------------------------------- deliveries


def deliver(root: Path, night: date, rows: list[list[str]], *, header: list[str] = HEADER, encoding: str = "utf-8-sig",
            final_break: bool = True, order: list[int] | None = None, fmt: str = "csv", quoted: bool = False,
            name: str | None = None, tag: bool = True) -> Path:
    """The night's folder under `root` with one deaths file: CSV (any encoding, columns in `order`,
    every value quoted, with or without a final line break) or XLSX; `tag`: with one row of the
    night's own at the end (so that no two nights' files have the same bytes: a file with the
    bytes of the snapshot in force is a duplicate, nothing stored)."""
    if tag:
        rows = [*rows, [pid(f"5290011990{night:%m%d}{night.day:03d}"), "夜" + "明华强勇军芳丽娜静敏"[night.day % 10], "2026年6月6日"]]
    folder = root / night.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    order = order or list(range(len(header)))
    table = [[row[j] for j in order] for row in [header, *rows]]
    stem = name or f"死亡医学证明_{night:%m%d}"
    if fmt == "xlsx":
        wb = xlsxwriter.Workbook(str(folder / f"{stem}.xlsx"))
        wb.set_properties({"created": datetime(2026, 11, 1)})
        ws = wb.add_worksheet("Sheet1")
        for i, row in enumerate(table):
            for j, v in enumerate(row):
                ws.write_string(i, j, v)
        wb.close()
    else:
        cell = (lambda v: f'"{v}"') if quoted else (lambda v: v)
        text = "\n".join(",".join(cell(v) for v in r) for r in table) + ("\n" if final_break else "")
        (folder / f"{stem}.csv").write_bytes(text.encode(encoding))
    (folder / "_SUCCESS").touch()
    return folder


def empty(root: Path, night: date) -> Path:
    folder = root / night.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------- the two homes



def both(homes, folder: Path, night: date, *, force: bool = False, want: str | None = "accepted") -> str | None:
    """Ingest the folder in both homes (one keeping rows, one storing every row); the deaths
    outcome, the same in both."""
    got = []
    for con, carry in zip(homes, (True, False), strict=True):
        outcomes = ingest_night(con, folder, night, workers=1, carry=carry, limits=LOOSE, force=force)
        got.append(next((o.status for o in outcomes if o.dataset == "deaths"), None))
    assert got[0] == got[1], got
    if want is not None:
        assert got[0] == want, (night, got)
    return got[0]


def seen(con, code: str, night: date) -> list[tuple]:
    return con.execute(f"SELECT * EXCLUDE (load_id, row_id) FROM ds_{code}_at(?) ORDER BY source_row", [night]).fetchall()


def check(homes, nights=NIGHTS, codes=("deaths",)) -> None:
    """The invariant: every night the same rows in both homes; no row twice on a night; every range
    starts and ends on a snapshot of its dataset; each snapshot's rows carry its load and its count."""
    kept, whole = homes
    assert kept.execute("SELECT dataset, snapshot_date, file, sha256, rows FROM snapshots ORDER BY ALL").fetchall() \
        == whole.execute("SELECT dataset, snapshot_date, file, sha256, rows FROM snapshots ORDER BY ALL").fetchall()
    for code in codes:
        for night in nights:
            a, b = seen(kept, code, night), seen(whole, code, night)
            assert a == b, (code, night, sorted(set(a) ^ set(b), key=str)[:6], len(a), len(b))
            ra, rb = (con.execute("SELECT r.source_row, r.column_name, r.value, r.reason FROM rejects r JOIN snapshots s "
                                  "ON s.load_id = r.load_id AND s.dataset = ? AND s.snapshot_date = ? ORDER BY ALL",
                                  [code, night]).fetchall() for con in homes)
            assert ra == rb, (code, night, ra, rb)
            for con in homes:
                twice = con.execute(f"SELECT source_row, count(*) FROM ds_{code}_at(?) GROUP BY 1 HAVING count(*) > 1",
                                    [night]).fetchall()
                assert twice == [], (code, night, twice)
                snap = con.execute("SELECT load_id, rows FROM snapshots WHERE dataset = ? AND snapshot_date = ?",
                                   [code, night]).fetchone()
                loads = con.execute(f"SELECT DISTINCT load_id FROM ds_{code}_at(?)", [night]).fetchall()
                if snap is None:
                    assert loads == [], (code, night, loads)
                else:
                    assert loads in ([(snap[0],)], []), (code, night, loads, snap)
                    assert len(a) == snap[1], (code, night, len(a), snap)
        for con in homes:
            bad = con.execute(f"""
                SELECT snapshot_date, last_date, source_row FROM ds_{code} d
                WHERE d.snapshot_date NOT IN (SELECT snapshot_date FROM snapshots WHERE dataset = '{code}')
                   OR (coalesce(d.last_date, d.snapshot_date) <> DATE '9999-12-31'
                       AND coalesce(d.last_date, d.snapshot_date) NOT IN (SELECT snapshot_date FROM snapshots WHERE dataset = '{code}'))
                   OR d.last_date < d.snapshot_date
                ORDER BY ALL LIMIT 10""").fetchall()
            assert bad == [], (code, bad)
    for con in homes:
        profiles_as_counted(con)


def profiles_as_counted(con) -> None:
    """The profile kept with each snapshot's load (the next night's checks compare with it; a night
    that keeps most rows in place works it out from the snapshot before's) is the snapshot's,
    counted whole."""
    for ds in DATASETS:
        for (snap,) in con.execute("SELECT snapshot_date FROM snapshots WHERE dataset = ?", [ds.code]).fetchall():
            whole = plausibility.profile_query(con, ds, plausibility.SNAPSHOT_ROWS.format(code=ds.code), [snap])
            assert plausibility.profile_snapshot(con, ds, snap) == whole, (ds.code, snap)


def stored(con, code: str = "deaths") -> dict[date, int]:
    return dict(con.execute(f"SELECT snapshot_date, count(*) FROM ds_{code} GROUP BY 1").fetchall())


def kept_any(con, code: str = "deaths") -> int:
    return con.execute(f"SELECT count(*) FROM ds_{code} WHERE last_date > snapshot_date").fetchone()[0]


# ---------------------------------------------------------------- scenarios


def test_a_held_file_between_two_accepted_nights_then_forced(homes, tmp_path: Path) -> None:
    """Night 2's file is cut (no final line break): held, night 1 stays in force; night 3 keeps rows
    from night 1 across night 2; night 2 forced afterwards cuts those rows around it."""
    inbox = tmp_path / "in"
    both(homes, deliver(inbox, N1, ROWS), N1)
    cut = deliver(inbox / "cut", N2, renamed(ROWS, 3), final_break=False)
    both(homes, cut, N2, want="held")
    check(homes)
    both(homes, deliver(inbox, N3, renamed(ROWS, 5)), N3)
    both(homes, deliver(inbox, N4, [*renamed(ROWS, 5), ADDED]), N4)
    check(homes)
    assert kept_any(homes[0]) > 0
    # The held night applied anyway (--force): stored whole, with no line fingerprints (no final break).
    both(homes, cut, N2, force=True, want="forced")
    check(homes)
    both(homes, deliver(inbox, N5, [*renamed(ROWS, 5, 6), ADDED]), N5)
    check(homes)


def test_the_same_night_run_twice_with_the_same_and_another_file(homes, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    both(homes, deliver(inbox, N1, ROWS), N1)
    second = deliver(inbox / "a", N2, renamed(ROWS, 1))
    both(homes, second, N2)
    both(homes, second, N2)  # the same file again: stored by the earlier run
    check(homes)
    both(homes, deliver(inbox / "b", N2, renamed(ROWS, 2)), N2)  # the last night again, another file
    check(homes)
    both(homes, deliver(inbox / "a", N3, renamed(ROWS, 2)), N3)
    both(homes, deliver(inbox / "a", N4, [*renamed(ROWS, 2), ADDED]), N4)
    assert kept_any(homes[0]) > 0
    # A middle night again with another file, then again with the first night's rows.
    both(homes, deliver(inbox / "c", N3, renamed(ROWS, 9)), N3)
    check(homes)
    both(homes, deliver(inbox / "d", N3, ROWS), N3)
    check(homes)
    both(homes, deliver(inbox / "a", N5, [*renamed(ROWS, 2), ADDED]), N5)
    check(homes)


def test_force_reruns_of_accepted_nights(homes, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    for night, rows in ((N1, ROWS), (N2, renamed(ROWS, 4)), (N3, renamed(ROWS, 4, 8))):
        both(homes, deliver(inbox, night, rows), night)
    # --force with the same files: nothing changes.
    for night in (N2, N3, N1):
        both(homes, inbox / night.isoformat(), night, force=True, want=None)
        check(homes)
    # --force with another file on the middle night and on the last one.
    both(homes, deliver(inbox / "x", N2, renamed(ROWS, 4, 8)), N2, force=True, want=None)
    check(homes)
    both(homes, deliver(inbox / "x", N3, renamed(ROWS, 4)), N3, force=True, want=None)
    check(homes)
    both(homes, deliver(inbox, N4, renamed(ROWS, 4)), N4)
    check(homes)


def test_folders_that_come_late(homes, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    both(homes, deliver(inbox, N1, ROWS), N1)
    both(homes, deliver(inbox, N2, renamed(ROWS, 1)), N2)
    both(homes, deliver(inbox, N4, renamed(ROWS, 1, 2)), N4)
    both(homes, deliver(inbox, N5, [*renamed(ROWS, 1, 2)[:39], ADDED]), N5)
    assert kept_any(homes[0]) > 0
    # Night 3 comes late, saying what night 2 said (rows that could have been kept), then night 6.
    both(homes, deliver(inbox, N3, [*renamed(ROWS, 1), ["" if j else pid("52900119700202001") for j in range(3)]]),
         N3, want=None)
    check(homes)
    both(homes, deliver(inbox / "b", N3, renamed(ROWS, 1)), N3)
    check(homes)
    both(homes, deliver(inbox, N6, [*renamed(ROWS, 1, 2)[:39], ADDED]), N6)
    check(homes)
    # A folder before every night so far.
    first = date(2026, 11, 19)
    both(homes, deliver(inbox, first, ROWS), first)
    check(homes, [first, *NIGHTS])


def test_a_missing_night_then_a_change_then_the_missing_night_comes(homes, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    both(homes, deliver(inbox, N1, ROWS), N1)
    both(homes, empty(inbox, N2), N2, want="missing")
    both(homes, deliver(inbox, N3, renamed(ROWS, 6)), N3)
    both(homes, empty(inbox, N4), N4, want="missing")
    both(homes, deliver(inbox, N5, [*renamed(ROWS, 6), ADDED]), N5)
    check(homes)
    assert kept_any(homes[0]) > 0
    both(homes, deliver(inbox / "late", N4, renamed(ROWS, 7)), N4)
    check(homes)
    both(homes, deliver(inbox / "late", N2, renamed(ROWS, 6)), N2)
    check(homes)
    both(homes, deliver(inbox, N6, [*renamed(ROWS, 6), ADDED]), N6)
    check(homes)


@pytest.mark.parametrize("form", ["gb18030", "reordered", "xlsx", "quoted", "no_final_break", "utf-8"])
def test_a_file_delivered_again_in_another_form(homes, tmp_path: Path, form: str) -> None:
    """The same rows in another form: the line fingerprints differ (or there are none), so a row is
    kept only where what a whole home stores is the same; then back in the first form."""
    inbox = tmp_path / "in"
    kw = {"gb18030": {"encoding": "gb18030"}, "reordered": {"order": [2, 0, 1]}, "xlsx": {"fmt": "xlsx"},
          "quoted": {"quoted": True}, "no_final_break": {"final_break": False}, "utf-8": {"encoding": "utf-8"}}[form]
    both(homes, deliver(inbox, N1, ROWS), N1)
    both(homes, deliver(inbox, N2, renamed(ROWS, 1)), N2)
    want = "held" if form == "no_final_break" else "accepted"
    both(homes, deliver(inbox, N3, renamed(ROWS, 1, 2), **kw), N3, want=want)
    both(homes, deliver(inbox, N4, renamed(ROWS, 1, 2, 3), **kw), N4, want=want)
    both(homes, deliver(inbox, N5, renamed(ROWS, 1, 2, 3)), N5)
    both(homes, deliver(inbox, N6, [*renamed(ROWS, 1, 2, 3), ADDED]), N6)
    check(homes)
    if form == "no_final_break":
        for night in (N3, N4):
            both(homes, inbox / night.isoformat(), night, force=True, want="forced")
            check(homes)
    # The form's night run again in the first form.
    both(homes, deliver(inbox / "again", N4, renamed(ROWS, 1, 2, 3)), N4)
    check(homes)


def test_the_first_night_run_again_after_later_ones(homes, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    for night, rows in ((N1, ROWS), (N2, renamed(ROWS, 1)), (N3, [*renamed(ROWS, 1), ADDED])):
        both(homes, deliver(inbox, night, rows), night)
    assert kept_any(homes[0]) > 0
    both(homes, deliver(inbox / "a", N1, renamed(ROWS, 20)), N1)
    check(homes)
    both(homes, deliver(inbox / "b", N1, ROWS), N1)  # and back to what it was
    check(homes)
    both(homes, deliver(inbox, N4, [*renamed(ROWS, 1), ADDED]), N4)
    check(homes)
    # The first night withdrawn (as in tests/test_snapshot_rows.py): the others as they were.
    before = {n: seen(homes[1], "deaths", n) for n in (N2, N3, N4)}
    for con in homes:
        snapshot_rows.forget(con, "deaths", N1)
        con.execute("DELETE FROM snapshots WHERE dataset = 'deaths' AND snapshot_date = ?", [N1])
    check(homes)
    assert {n: seen(homes[0], "deaths", n) for n in (N2, N3, N4)} == before
    both(homes, deliver(inbox, N5, [*renamed(ROWS, 1), ADDED]), N5)
    check(homes)


def test_the_last_snapshot_withdrawn_then_the_next_night(homes, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    for night, rows in ((N1, ROWS), (N2, renamed(ROWS, 1)), (N3, renamed(ROWS, 1, 2))):
        both(homes, deliver(inbox, night, rows), night)
    for con in homes:
        snapshot_rows.forget(con, "deaths", N3)
        con.execute("DELETE FROM snapshots WHERE dataset = 'deaths' AND snapshot_date = ?", [N3])
    check(homes)
    both(homes, deliver(inbox, N4, renamed(ROWS, 1, 2)), N4)
    both(homes, deliver(inbox, N5, renamed(ROWS, 1, 2)[::-1]), N5)
    check(homes)
    both(homes, deliver(inbox / "late", N3, renamed(ROWS, 1, 2)), N3)
    check(homes)


def test_many_nights_alternating_kept_and_reordered(homes, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    rows = ROWS
    for i, night in enumerate(NIGHTS):
        if i % 3 == 1:
            rows = rows[::-1]  # every row at another place
        elif i % 3 == 2:
            rows = renamed(rows, i)  # one changed: the rest in place
        else:
            rows = [*rows, [pid(f"529001198001010{i:02d}"), "新" + "明华强勇军芳丽娜静敏"[i], "2026年5月5日"]]
        both(homes, deliver(inbox, night, rows), night)
    check(homes)
    assert kept_any(homes[0]) > 0
    assert sum(stored(homes[0]).values()) < sum(stored(homes[1]).values())
    # Three middle nights run again out of order, then a new night.
    for night, again in ((N5, ROWS), (N3, renamed(ROWS, 30)), (N7, rows)):
        both(homes, deliver(inbox / "again", night, again), night)
        check(homes)
    both(homes, deliver(inbox, date(2026, 11, 30), rows), date(2026, 11, 30))
    check(homes, [*NIGHTS, date(2026, 11, 30)])


def test_duplicate_rejected_and_dropped_rows(homes, tmp_path: Path) -> None:
    """Exact duplicate rows (collapsed), a row with a rejected date (no fingerprint), a row without
    an ID or name (dropped), and blank lines between nights."""
    inbox = tmp_path / "in"
    odd = [*ROWS[:10], ROWS[3], [pid("52900119520304771"), "王五", "2026年13月28日"], ["", "", "2026年1月1日"],
           *ROWS[10:20], ROWS[10]]
    both(homes, deliver(inbox, N1, odd), N1)
    both(homes, deliver(inbox, N2, renamed(odd, 15)), N2)
    both(homes, deliver(inbox, N3, renamed(odd, 15)[:-1]), N3)
    both(homes, deliver(inbox, N4, [*renamed(odd, 15)[:-1], ADDED]), N4)
    check(homes)
    assert kept_any(homes[0]) > 0
    both(homes, deliver(inbox / "again", N2, odd), N2)
    check(homes)


def test_two_datasets_keep_their_own_ranges(homes, tmp_path: Path) -> None:
    """Deaths and divisions in one folder: one dataset's missing night or re-run leaves the other's
    ranges as they were."""
    div_header = ["区划代码", "区划名称", "级别", "上级代码", "城乡分类"]
    divisions = [[f"5290011{i:02d}000", f"乡镇{i}", "乡", "529001000000", ""] for i in range(12)]

    def with_divisions(folder: Path, rows) -> Path:
        (folder / "行政区划代码.csv").write_text("\n".join(",".join(r) for r in [div_header, *rows]) + "\n",
                                              encoding="utf-8")
        return folder

    inbox = tmp_path / "in"
    with_divisions(deliver(inbox, N1, ROWS), divisions)
    both(homes, inbox / N1.isoformat(), N1)
    with_divisions(deliver(inbox, N2, renamed(ROWS, 1)), [*divisions, ["529001999000", "新镇", "镇", "529001000000", ""]])
    both(homes, inbox / N2.isoformat(), N2)
    deliver(inbox, N3, renamed(ROWS, 1, 2))  # no divisions file: missing
    both(homes, inbox / N3.isoformat(), N3)
    with_divisions(deliver(inbox, N4, renamed(ROWS, 1, 2)), divisions)
    both(homes, inbox / N4.isoformat(), N4)
    check(homes, codes=("deaths", "divisions"))
    both(homes, with_divisions(deliver(inbox / "late", N3, renamed(ROWS, 1, 2)), divisions), N3, want=None)
    check(homes, codes=("deaths", "divisions"))
    both(homes, with_divisions(deliver(inbox / "again", N2, renamed(ROWS, 1)), divisions[::-1]), N2, want=None)
    check(homes, codes=("deaths", "divisions"))


# ---------------------------------------------------------------- an older warehouse


def test_an_old_warehouse_gets_last_date_and_the_macros(tmp_path: Path) -> None:
    """A warehouse made before rows were kept (no `last_date`, no macros): opening it adds both; its
    rows read as before, and the next night keeps rows."""
    inbox = tmp_path / "in"
    path = tmp_path / "old.duckdb"
    con = wh.connect(path)
    ingest_night(con, deliver(inbox, N1, ROWS), N1, workers=1, limits=LOOSE, carry=False)
    for ds in DATASETS:
        con.execute(f"DROP MACRO TABLE IF EXISTS ds_{ds.code}_at")
        con.execute(f"ALTER TABLE ds_{ds.code} DROP COLUMN last_date")
    con.execute("DROP TABLE warehouse_setup")  # (an earlier version did not record its set-up)
    con.close()
    raw = duckdb.connect(str(path))
    assert raw.execute("SELECT count(*) FROM information_schema.columns WHERE column_name = 'last_date'").fetchone() == (0,)
    assert raw.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'ds_%_at'").fetchone() == (0,)
    raw.close()
    con = wh.connect(path)
    try:
        assert {t for t, in con.execute("SELECT table_name FROM information_schema.columns "
                                        "WHERE column_name = 'last_date'").fetchall()} == {f"ds_{d.code}" for d in DATASETS}
        assert len(seen(con, "deaths", N1)) == 41
        ingest_night(con, deliver(inbox, N2, renamed(ROWS, 1)), N2, workers=1, limits=LOOSE)
        assert stored(con) == {N1: 41, N2: 2}
        assert [n for n, in con.execute("SELECT name FROM ds_deaths_at(?) ORDER BY source_row", [N2]).fetchall()] \
            == [r[1] for r in renamed(ROWS, 1)] + ["夜华"]
    finally:
        con.close()
    # A read-only connection (as what-if opens it) reads through its own temporary macros.
    ro = duckdb.connect(str(path), read_only=True)
    try:
        snapshot_rows.create_macros(ro, temporary=True)
        assert ro.execute("SELECT count(*) FROM ds_deaths_at(?)", [N2]).fetchone() == (41,)
    finally:
        ro.close()


# ---------------------------------------------------------------- the whole nightly flow


@pytest.fixture(scope="module")
def flow_homes(tmp_path_factory: pytest.TempPathFactory):
    """The tiny prefecture's three nights run through `run_night` in two homes: incrementally and
    from scratch."""
    from bidui.flows import nightly
    from bidui.home import Home
    from bidui.synth.config import SynthConfig
    from bidui.synth.generate import generate

    root = tmp_path_factory.mktemp("flow")
    pref = root / "prefecture"
    generate(pref, SynthConfig(size="tiny", seed=11, nights=3))
    homes = (Home(root / "incremental"), Home(root / "scratch"))
    for folder in sorted((pref / "inbox").iterdir()):
        for home, scratch in zip(homes, (False, True), strict=True):
            nightly.run_night(home, folder, from_scratch=scratch)
    return pref, homes


def _flow_copy(flow_homes, tmp_path: Path):
    from bidui.home import Home

    pref, homes = flow_homes
    out = []
    for home, name in zip(homes, ("incremental", "scratch"), strict=True):
        shutil.copytree(home.root, tmp_path / name)
        out.append(Home(tmp_path / name))
    return pref, out


def _flow_state(home, night: date, only_rows: bool = False) -> dict[str, list[tuple]]:
    from bidui.flows import same_results

    con = wh.connect(home.warehouse)
    try:
        state = same_results.warehouse_rows(con, night)
    finally:
        con.close()
    return {k: v for k, v in state.items() if k.startswith("ds_")} if only_rows else state


def _flow_same(homes, nights, only_rows_for=(), ledger: bool = True) -> None:
    from bidui.flows import same_results

    for night in nights:
        a, b = (_flow_state(h, night, night in only_rows_for) for h in homes)
        for what in a:
            assert a[what] == b[what], (night, what, sorted(set(a[what]) ^ set(b[what]), key=str)[:6])
    if ledger:
        a, b = (same_results.ledger_rows(h.ledger) for h in homes)
        for what in a:
            assert a[what] == b[what], ("ledger", what, sorted(set(a[what]) ^ set(b[what]), key=str)[:6])


def _own_rows(home, code: str) -> dict[date, int]:
    con = wh.connect(home.warehouse)
    try:
        return dict(con.execute(f"SELECT snapshot_date, count(*) FROM ds_{code} GROUP BY 1").fetchall())
    finally:
        con.close()


def _flow_shape(home) -> None:
    con = wh.connect(home.warehouse)
    try:
        for ds in DATASETS:
            bad = con.execute(f"""
                SELECT snapshot_date, last_date, count(*) FROM ds_{ds.code} d
                WHERE d.snapshot_date NOT IN (SELECT snapshot_date FROM snapshots WHERE dataset = '{ds.code}')
                   OR (coalesce(d.last_date, d.snapshot_date) <> DATE '9999-12-31'
                       AND coalesce(d.last_date, d.snapshot_date) NOT IN (SELECT snapshot_date FROM snapshots WHERE dataset = '{ds.code}'))
                GROUP BY ALL""").fetchall()
            assert bad == [], (ds.code, bad)
            for (night,) in con.execute("SELECT snapshot_date FROM snapshots WHERE dataset = ?", [ds.code]).fetchall():
                twice = con.execute(f"SELECT count(*) FROM (SELECT source_row FROM ds_{ds.code}_at(?) GROUP BY 1 "
                                    "HAVING count(*) > 1)", [night]).fetchone()[0]
                assert twice == 0, (ds.code, night)
        profiles_as_counted(con)
    finally:
        con.close()


def test_the_nightly_flow_incrementally_and_from_scratch(flow_homes) -> None:
    _, homes = flow_homes
    _flow_same(homes, NIGHTS[:3])
    con = wh.connect(homes[0].warehouse)
    try:
        assert con.execute("SELECT count(*) FROM ds_hukou WHERE last_date > snapshot_date").fetchone()[0] > 1000
    finally:
        con.close()
    for home in homes:
        _flow_shape(home)


def test_the_nightly_flow_with_a_middle_night_run_again_and_forced(flow_homes, tmp_path: Path) -> None:
    """Night 2 run again (--force) with its hukou and deaths files edited, and night 3 forced (its
    cut property file applied): every night's rows, and the rerun nights' links, hits and results,
    as from scratch."""
    from bidui.flows import nightly

    pref, homes = _flow_copy(flow_homes, tmp_path)
    before = _own_rows(homes[0], "hukou")
    assert before[N1] > 1000 and before.get(N3, 0) < 100, before  # night 3's hukou mostly kept from night 1
    night2 = tmp_path / "n2" / N2.isoformat()
    shutil.copytree(pref / "inbox" / N2.isoformat(), night2)
    for edited in (next(night2.glob("hukou_2026*.csv")), next(night2.glob("死亡医学证明_*.csv"))):
        lines = edited.read_bytes().split(b"\n")
        edited.write_bytes(b"\n".join([lines[0], *lines[1:-1][::-1], lines[-1]]))  # rows reversed
    for home, scratch in zip(homes, (False, True), strict=True):
        nightly.run_night(home, night2, force=True, from_scratch=scratch)
    _flow_same(homes, [N2])
    _flow_same(homes, [N1, N3], only_rows_for=(N1, N3), ledger=False)
    after = _own_rows(homes[0], "hukou")
    assert after[N2] > 1000 and after[N3] > 1000, after  # night 2 stored whole; night 3's rows cut around it
    for home, scratch in zip(homes, (False, True), strict=True):
        nightly.run_night(home, pref / "inbox" / N3.isoformat(), force=True, from_scratch=scratch)
    _flow_same(homes, [N3])
    _flow_same(homes, [N1, N2], only_rows_for=(N1, N2), ledger=False)
    for home in homes:
        _flow_shape(home)


def test_what_if_on_a_night_whose_rows_were_kept(flow_homes, tmp_path: Path) -> None:
    """A what-if replay with no change, on night 3 (most of its rows kept from night 1): it adds and
    removes nothing, and the two homes replay alike."""
    from bidui.rules.whatif import replay

    _, homes = _flow_copy(flow_homes, tmp_path)
    results = [replay(h, N3, {}) for h in homes]
    assert [(r.added, r.removed) for r in results] == [(0, 0), (0, 0)]
    assert results[0].by_rule == results[1].by_rule
    assert sum(r["published"] for r in results[0].by_rule.values()) > 0
    changed = [replay(h, N3, {"medical_household_threshold": 5000.0}) for h in homes]
    assert (changed[0].added, changed[0].removed) == (changed[1].added, changed[1].removed)


def test_what_if_on_a_warehouse_from_before_kept_rows(flow_homes, tmp_path: Path) -> None:
    """A what-if replay reads the warehouse read-only and takes a warehouse of before as it is (as
    bidui.matching.records does for hukou_identity_runs): one made before rows were kept (no
    `last_date`, no macros: bidui upgraded, the next nightly run not yet come) must replay as it did."""
    from bidui.rules.whatif import replay

    _, (_, scratch) = _flow_copy(flow_homes, tmp_path)
    want = replay(scratch, N3, {})
    con = duckdb.connect(str(scratch.warehouse))
    for ds in DATASETS:
        con.execute(f"DROP MACRO TABLE IF EXISTS ds_{ds.code}_at")
        con.execute(f"ALTER TABLE ds_{ds.code} DROP COLUMN last_date")
    con.execute("DROP TABLE warehouse_setup")  # (an earlier version did not record its set-up)
    con.close()
    got = replay(scratch, N3, {})
    assert (got.added, got.removed, got.by_rule) == (want.added, want.removed, want.by_rule)


# ---------------------------------------------------------------- random nights


FUZZ_LIMITS = Limits(max_reject_share=0.5, max_duplicate_share=0.5, min_row_ratio=0.3, max_row_ratio=3.0,
                     max_value_shift=1.0, max_valid_id_drop=1.0, max_distinct_id_drop=1.0)


@pytest.mark.parametrize("seed", [3, 5, 7])
def test_random_nights_in_random_order(homes, tmp_path: Path, seed: int) -> None:
    """A random run of nights: each file the one before it (of the snapshot in force) edited — rows
    renamed, moved, dropped, added, in another form — nights delivered, run again, forced, coming
    late or missing, snapshots withdrawn; after each step both homes agree on every night."""
    import random

    rnd = random.Random(seed)
    nights = NIGHTS[:7]
    pool = [[pid(f"52900119610101{i:03d}"), "甲乙丙丁"[i % 4] + "明华强勇军芳丽娜静敏"[i % 10], "2026年3月3日"]
            for i in range(14)]
    current: dict[date, list[list[str]]] = {}
    extra = iter(range(100, 999))
    ever_kept, nxt = 0, 0
    for step in range(24):
        # Mostly the next night (rows can be kept only on a night after the last snapshot), else any.
        if rnd.random() < 0.6 and nxt < len(nights):
            night, nxt = nights[nxt], nxt + 1
        else:
            night = rnd.choice(nights)
        # Tonight's file: what the snapshot in force said (or the pool), edited.
        basis = next((current[n] for n in sorted(current, reverse=True) if n <= night), pool[:12])
        rows = [list(r) for r in basis]
        for _ in range(rnd.randint(0, 2)):
            edit = rnd.choice(["rename", "swap", "drop", "add", "reverse", "none", "none"])
            if edit == "rename" and rows:
                rows[rnd.randrange(len(rows))][1] += "某"
            elif edit == "swap" and len(rows) > 1:
                i, j = rnd.sample(range(len(rows)), 2)
                rows[i], rows[j] = rows[j], rows[i]
            elif edit == "drop" and len(rows) > 8:
                del rows[rnd.randrange(len(rows))]
            elif edit == "add":
                rows.insert(rnd.randrange(len(rows) + 1), [pid(f"52900119620101{next(extra)}"), "新人", "2026年4月4日"])
            elif edit == "reverse":
                rows = rows[::-1]
        form = {} if rnd.random() < 0.6 else rnd.choice([{"encoding": "gb18030"}, {"order": [1, 2, 0]}, {"fmt": "xlsx"},
                                                          {"quoted": True}, {"final_break": False}])
        action = rnd.choice(["deliver"] * 6 + ["missing", "withdraw", "force_same"])
        folder = tmp_path / "in" / str(step)
        if action == "missing":
            statuses = [next((o.status for o in ingest_night(con, empty(folder, night), night, workers=1, carry=carry,
                                                             limits=FUZZ_LIMITS) if o.dataset == "deaths"), "none")
                        for con, carry in zip(homes, (True, False), strict=True)]
        elif action == "withdraw":
            if night not in current:
                continue
            for con in homes:
                con.execute("BEGIN")
                snapshot_rows.forget(con, "deaths", night)
                con.execute("DELETE FROM snapshots WHERE dataset = 'deaths' AND snapshot_date = ?", [night])
                con.execute("COMMIT")
            del current[night]
            statuses = ["withdrawn"] * 2
        else:
            deliver(folder, night, rows, tag=rnd.random() < 0.7, **form)
            force = action == "force_same" or rnd.random() < 0.3
            statuses = [next((o.status for o in ingest_night(con, folder / night.isoformat(), night, workers=1,
                                                            carry=carry, limits=FUZZ_LIMITS, force=force)
                             if o.dataset == "deaths"), "none") for con, carry in zip(homes, (True, False), strict=True)]
            if statuses[0] in ("accepted", "forced"):
                current[night] = rows
        assert statuses[0] == statuses[1], (step, night, action, statuses)
        try:
            check(homes, nights)
        except AssertionError as e:
            raise AssertionError(f"step {step}: {action} {night} {form} -> {statuses[0]}: {e}") from e
        ever_kept = max(ever_kept, kept_any(homes[0]))
    assert ever_kept > 0
