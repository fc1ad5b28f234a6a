"""Issue 18: a CSV file delivered again in the same form is read by its lines — only the lines not
in the snapshot in force are parsed — and the night's snapshot, rejects and load log are exactly
those of reading every row, whatever the file does: lines changed, moved, removed, repeated; a
quote, a blank last row, another encoding, a bad byte, binary bytes; and the night after."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from bidui.connectors import csv_lines
from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
from bidui.connectors.plausibility import Limits

NIGHTS = (date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22))
LOOSE = Limits(max_reject_share=0.5, max_duplicate_share=0.5)
HEADER = ["证件号码", "死者姓名", "死亡日期"]


def pid(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    return first17 + "10X98765432"[total % 11]


NAMES = ["刘玲", "陈欣怡", "张三", "李四", "王五", "赵六", "钱七", "孙八", "周九", "吴十"]
ROWS = [[pid(f"5290011950{1 + i % 9:02d}{1 + i % 28:02d}{i:03d}"), NAMES[i % 10] + NAMES[(i * 3) % 10][0], f"2026年{1 + i % 9}月{1 + i % 27}日"]
        for i in range(40)]


def text(rows: list[list[str]], header: list[str] = HEADER, end: str = "\n") -> str:
    return end.join(",".join(r) for r in [header, *rows]) + end


def deliver(root: Path, night: date, body: bytes) -> Path:
    folder = root / night.isoformat()
    folder.mkdir(parents=True)
    (folder / f"死亡医学证明_{night:%m%d}.csv").write_bytes(body)
    (folder / "_SUCCESS").touch()
    return folder


def state(con, night: date) -> tuple:
    rows = con.execute("SELECT * EXCLUDE (load_id, row_id) FROM ds_deaths_at(?) ORDER BY source_row",
                       [night]).fetchall()
    rejects = con.execute("SELECT r.source_row, column_name, value, reason FROM rejects r JOIN load_log l "
                          "ON l.load_id = r.load_id AND l.night = ? ORDER BY ALL", [night]).fetchall()
    log = con.execute("SELECT status, rows_read, rows_loaded, rows_rejected, message, encoding FROM load_log "
                      "WHERE night = ? AND dataset = 'deaths'", [night]).fetchall()
    return rows, rejects, log


def moved(rows: list[list[str]]) -> list[list[str]]:
    """Night 2 as most nights are: one row changed, one gone, one moved up, two new at the end."""
    out = [list(r) for r in rows]
    out[20][1] = "刘铃"
    del out[5]
    out.insert(14, out.pop(30))
    return [*out, [pid("52900119700101666"), "钱七七", "2026年6月1日"], [pid("52900119700101777"), "郑一", "2026年13月1日"]]


U8 = "utf-8-sig"
# name → (night 1 bytes, night 2 bytes, whether night 2 is read by its lines)
CASES = {
    "few lines changed": (text(ROWS).encode(U8), text(moved(ROWS)).encode(U8), True),
    "GB18030 both nights": (text(ROWS).encode("gb18030"), text(moved(ROWS)).encode("gb18030"), True),
    "CRLF both nights": (text(ROWS, end="\r\n").encode(U8), text(moved(ROWS), end="\r\n").encode(U8), True),
    "a line repeated, unread": (text(ROWS).encode(U8), text([*ROWS[:30], ROWS[25], ROWS[26], *ROWS[30:]]).encode(U8), True),
    # The same row twice, as two lines that differ only in their line break: the one read tonight
    # comes after the one carried unread (a duplicate), so the file is read whole.
    "a row repeated as another line": (text(ROWS).encode(U8),
                                       text(ROWS).encode(U8) + (",".join(ROWS[25]) + "\r\n").encode(), False),
    "a quote tonight": (text(ROWS).encode(U8), text([*ROWS[:-1], [ROWS[-1][0], '"王 五"', ROWS[-1][2]]]).encode(U8), False),
    "a blank last row": (text(ROWS).encode(U8), (text(ROWS) + ",,\n").encode(U8), False),
    "another encoding": (text(ROWS).encode(U8), text(moved(ROWS)).encode("gb18030"), False),
    "columns reordered": (text(ROWS).encode(U8), text([[r[1], r[0], r[2]] for r in ROWS],
                                                      [HEADER[1], HEADER[0], HEADER[2]]).encode(U8), False),
    "most lines new": (text(ROWS).encode(U8), text([[r[0], r[1] + "之", r[2]] for r in ROWS]).encode(U8), False),
    "a bad byte in a new line": (text(ROWS).encode("gb18030"),
                                 text(ROWS[:30]).encode("gb18030") + ROWS[30][0].encode() + b",\xff\xfe,2026-01-01\n"
                                 + text(ROWS[31:], header=[]).lstrip("\n").encode("gb18030"), False),
    "binary bytes near the top": (text(ROWS).encode(U8),
                                  text(ROWS[:14]).encode(U8) + b"\x01\x02\x03\x04,\x05\x06,\x07\x08\n" * 3
                                  + text(ROWS[14:], header=[]).lstrip("\n").encode(U8), False),
    "a line longer than the header": (text(ROWS).encode(U8), text([*ROWS[:30], [*ROWS[30], "x"], *ROWS[31:]]).encode(U8),
                                      False),
}


@pytest.mark.parametrize("by_place", [False, True], ids=["joined", "by place"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_file_read_by_its_lines_is_stored_as_if_read_whole(tmp_path: Path, monkeypatch, case: str,
                                                             by_place: bool) -> None:
    # (by place: the lines in place told by their place, as for a large snapshot)
    monkeypatch.setattr(csv_lines, "IN_PLACE_FROM", 0 if by_place else 10**9)
    first, second, by_lines = CASES[case]
    inbox = tmp_path / "inbox"
    folders = [deliver(inbox, NIGHTS[0], first), deliver(inbox, NIGHTS[1], second),
               deliver(inbox, NIGHTS[2], text(moved(moved(ROWS))).encode(U8))]
    read: list[int | None] = []
    real = csv_lines.read_changed

    def spy(*args, **kwargs):
        found = real(*args, **kwargs)
        read.append(None if found is None else found[0].data.height)  # lines parsed
        return found

    monkeypatch.setattr(csv_lines, "read_changed", spy)
    cons = [wh.connect(tmp_path / "lines.duckdb"), wh.connect(tmp_path / "whole.duckdb")]
    try:
        for folder, night in zip(folders, NIGHTS, strict=True):
            for con, carry in zip(cons, (True, False), strict=True):
                ingest_night(con, folder, night, workers=1, carry=carry, limits=LOOSE)
            assert state(cons[0], night) == state(cons[1], night), (case, night)
        # Night 2 was read by its lines (only the lines not seen before were parsed), or whole.
        assert (read[0] is not None) == by_lines, read
        if by_lines:
            assert 0 < read[0] <= 16, read  # the head's lines and the new ones, not 40
        if by_lines:  # every row keeps its line's fingerprint for the next night
            assert cons[0].execute("SELECT count(*) FROM ds_deaths_at(?) WHERE line_hash IS NULL",
                                   [NIGHTS[1]]).fetchone()[0] == 0
    finally:
        for con in cons:
            con.close()


def test_a_file_whose_lines_are_not_rows_keeps_no_line_fingerprints(tmp_path: Path) -> None:
    """A file with a quote anywhere: a line is not surely a row, so none is fingerprinted and the
    next night reads the file whole."""
    body = text([*ROWS[:-1], [ROWS[-1][0], '"王五"', ROWS[-1][2]]]).encode(U8)
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        ingest_night(con, deliver(tmp_path / "inbox", NIGHTS[0], body), NIGHTS[0], workers=1, limits=LOOSE)
        assert con.execute("SELECT count(*), count(line_hash) FROM ds_deaths").fetchone() == (40, 0)
        assert con.execute("SELECT count(*) FROM line_forms").fetchone()[0] == 0
    finally:
        con.close()


def test_split_takes_only_files_whose_every_line_is_a_row() -> None:
    assert len(csv_lines.split(b"a,b\n1,2\n")) == 2
    assert len(csv_lines.split(b"a,b\r\n1,2\r\n")) == 2
    for bad in (b"a,b\n1,2", b'a,b\n"1",2\n', b"a,b\n\n1,2\n", b"a,b\r1,2\r\n", b"a,b\n\r\n1,2\n"):
        assert csv_lines.split(bad) is None, bad


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 7, 1 << 24])
def test_split_searched_by_pieces_finds_every_line_where_it_starts(monkeypatch, piece: int) -> None:
    body = text(ROWS, end="\r\n").encode("gb18030")
    monkeypatch.setattr(csv_lines, "SPLIT_PIECE", piece)
    lines = csv_lines.split(body)
    expected = [0]
    for part in body.split(b"\n")[:-1]:
        expected.append(expected[-1] + len(part) + 1)
    assert lines is not None and lines.starts.tolist() == expected


def _joined(body: pl.DataFrame, known: pl.DataFrame) -> pl.DataFrame | None:
    """What `_seen` gives, as every line joined with the snapshot's (how it was found before lines
    in place were told by their place)."""
    matched = duckdb.sql("SELECT b.i, k.raw_hi, k.raw_lo, b.line_hi, b.line_lo, k.source_row AS known_row "
                         "FROM body b JOIN known k USING (line_hi, line_lo) ORDER BY b.i").pl()
    i = matched["i"]
    return matched if i.len() < 2 or bool((i.diff().drop_nulls() > 0).all()) else None


SEEN_CASES = ["in place", "rows moved", "header lower", "rows with gaps", "a line twice tonight",
              "first halves repeated", "a line held twice", "nothing held", "a second half changed"]


@pytest.mark.parametrize("case", SEEN_CASES)
def test_lines_told_by_their_place_are_those_the_join_finds(monkeypatch, case: str) -> None:
    """`_seen` (the lines in place told by their place, the rest joined) gives what joining every
    line with the snapshot's gives, in every shape a night's file and its snapshot can take."""
    monkeypatch.setattr(csv_lines, "IN_PLACE_FROM", 0)
    rng = np.random.default_rng(SEEN_CASES.index(case))
    n = 3_000
    rows = np.arange(1, n + 1)
    if case == "rows with gaps":  # (rows a snapshot left out: duplicates, rows without a fingerprint)
        rows = np.sort(rng.choice(np.arange(1, 2 * n), n, replace=False))
    hi, lo = rng.integers(0, 2**63, n, dtype=np.uint64), rng.integers(0, 2**63, n, dtype=np.uint64)
    if case == "first halves repeated":
        hi[1_500] = hi[2_000]
    if case == "a line held twice":
        hi[1_500], lo[1_500] = hi[2_000], lo[2_000]  # (both lines stand in place tonight)
    known = pl.DataFrame({"line_hi": hi, "line_lo": lo, "raw_hi": rng.integers(0, 2**63, n, dtype=np.uint64),
                          "raw_lo": rng.integers(0, 2**63, n, dtype=np.uint64), "source_row": rows.astype(np.int64)})
    lines = list(zip(hi.tolist(), lo.tolist(), strict=True))
    if case == "rows with gaps":
        stored = set(rows.tolist())
        lines = [lines[int(np.searchsorted(rows, r))] if r in stored else (1, 1) for r in range(1, rows[-1] + 1)]
    lines[40] = (123, 456)  # a line changed
    if case == "a second half changed":  # at its place: its first half is the snapshot's there
        lines[60] = (lines[60][0], lines[60][1] + 1)
    del lines[90]  # one gone
    if case == "rows moved":
        lines[500:500] = [(7, 8), (9, 10)]  # two new lines: every line after them moved
        lines.insert(2_500, lines.pop(1_000))
    if case == "a line twice tonight":
        lines.insert(1_500, lines[1_200])
    if case == "nothing held":
        lines = [(k, k) for k in range(1, 2_000)]
    start = 9 if case == "header lower" else 4  # (the body's first line: after the head's)
    offset = start - 1 if case == "header lower" else 0
    body = pl.DataFrame({"line_hi": [a for a, _ in lines], "line_lo": [b for _, b in lines]},
                        schema={"line_hi": pl.UInt64, "line_lo": pl.UInt64}).with_row_index("i", offset=start + offset)
    expected = _joined(body, known)
    found = csv_lines._seen(body, known)
    if expected is None:
        assert found is None
        return
    assert found is not None and found.schema == expected.schema and found.equals(expected), case
    if case in ("in place", "rows moved", "header lower", "rows with gaps"):  # not a test that cannot fail
        assert csv_lines._in_place(body, known) is not None
    if case == "first halves repeated":
        assert csv_lines._in_place(body, known) is None
