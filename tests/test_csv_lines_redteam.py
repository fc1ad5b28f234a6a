"""Red team of issue 18's line reading (`bidui.connectors.csv_lines`): adversarial deliveries on
night 2 (and later) against a night-1 file, each ingested by two warehouses — one reading by lines
(carry), one reading every file whole (`carry=False`) — whose stored snapshot, rejects and load log
must be identical every night. Each case also says whether the fast path must have been taken
(True: the attack really went through `read_changed`), must have read whole (False), or either
(None). Complements tests/test_csv_lines.py (which covers changed/moved/repeated lines, a quote, a
blank last row, another encoding, a bad byte, binary bytes near the top, a line longer than the
header, columns reordered, most lines new)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import pytest

from bidui.connectors import csv_lines
from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
from bidui.connectors.normalise import ValueLimits
from bidui.connectors.plausibility import Limits
from bidui.datasets import BY_CODE

NIGHT = [date(2026, 11, 20) + timedelta(days=i) for i in range(6)]
LOOSE = Limits(max_reject_share=0.5, max_duplicate_share=0.5)
FILE = {"deaths": "死亡医学证明_{:%m%d}.csv", "hukou": "户籍人口_{:%m%d}.csv"}


def pid(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    return first17 + "10X98765432"[total % 11]


NAMES = ["刘玲", "陈欣怡", "张三", "李四", "王五", "赵六", "钱七", "孙八", "周九", "吴十"]
H = "证件号码,死者姓名,死亡日期"
ROWS = [f"{pid(f'5290011950{1 + i % 9:02d}{1 + i % 28:02d}{i:03d}')},{NAMES[i % 10]}{NAMES[(i * 3) % 10][0]},"
        f"2026年{1 + i % 9}月{1 + i % 27}日" for i in range(40)]
NEW = [f"{pid('52900119700101666')},钱七七,2026年6月1日", f"{pid('52900119700101777')},郑一,2026年7月1日"]
# Dated eight days after night 1: rejected that night (past the seven days' margin), valid on night 2.
AHEAD = f"{pid('52900119520304771')},王五,2026年11月28日"
# hukou with an unmapped column (备注) and one with an empty header (column 11).
HH = "公民身份号码,姓名,性别,出生日期,户号,与户主关系,户籍地址代码,人员状态,状态日期,备注,"


def hrow(i: int, note: str = "") -> str:
    p = pid(f"5290011950{1 + i % 9:02d}{1 + i % 28:02d}{i:03d}")
    return (f"{p},{NAMES[i % 10]}{NAMES[(i * 3) % 10][0]},{'男' if i % 2 else '女'},{p[6:14]},H{i // 3:05d},"
            f"{'户主' if i % 3 == 0 else '子'},529001001001,正常,,{note},{'x' if i % 5 == 0 else ''}")


HR = [hrow(i) for i in range(40)]


def f(lines: list[str], header: str = H, enc: str = "utf-8-sig") -> bytes:
    """Lines joined by LF; a line ending in CR keeps it (CRLF)."""
    return ("\n".join([header, *lines]) + "\n").encode(enc)


def state(con, night: date, code: str) -> tuple:
    rows = con.execute(f"SELECT * EXCLUDE (load_id, row_id) FROM ds_{code}_at(?) ORDER BY source_row",
                       [night]).fetchall()
    rejects = con.execute("SELECT r.source_row, column_name, value, reason FROM rejects r JOIN load_log l "
                          "ON l.load_id = r.load_id AND l.night = ? ORDER BY ALL", [night]).fetchall()
    log = con.execute("SELECT status, rows_read, rows_loaded, rows_rejected, message, encoding FROM load_log "
                      "WHERE night = ? AND dataset = ? ORDER BY load_id", [night, code]).fetchall()
    return rows, rejects, log


def compare(tmp_path: Path, monkeypatch, nights: list[tuple], code: str = "deaths") -> list[bool | None]:
    """Ingest each (night, bytes or None, limits?, force?) in both homes; assert the states agree
    after every step; return, per step, whether the fast path read the file (None: not asked)."""
    used: list[bool] = []
    real = csv_lines.read_changed

    def spy(*args, **kwargs):
        found = real(*args, **kwargs)
        used.append(found is not None)
        return found

    monkeypatch.setattr(csv_lines, "read_changed", spy)
    cons = [wh.connect(tmp_path / "lines.duckdb"), wh.connect(tmp_path / "whole.duckdb")]
    taken: list[bool | None] = []
    try:
        for step, (night, body, *rest) in enumerate(nights):
            limits = rest[0] if rest and rest[0] is not None else LOOSE
            force = rest[1] if len(rest) > 1 else False
            folder = tmp_path / "inbox" / f"{step}" / night.isoformat()
            folder.mkdir(parents=True)
            if body is not None:
                (folder / FILE[code].format(night)).write_bytes(body)
            (folder / "_SUCCESS").touch()
            before = len(used)
            for con, carry in zip(cons, (True, False), strict=True):
                ingest_night(con, folder, night, workers=1, carry=carry, limits=limits, force=force)
            taken.append(used[before] if len(used) > before else None)
            assert state(cons[0], night, code) == state(cons[1], night, code), (step, night)
    finally:
        for con in cons:
            con.close()
    return taken


def two(first: bytes, second: bytes) -> list[tuple]:
    return [(NIGHT[0], first), (NIGHT[1], second)]


BASE = f(ROWS)
T3 = "XX县2026年死亡名单\n制表：卫健局\n,,\n" + H  # three title rows (each one filled cell or none)
T9 = "\n".join(["标题"] * 9) + "\n" + H  # the header on the last row searched
# name → (dataset, nights, whether night 2 must be read by its lines)
CASES: dict[str, tuple[str, list[tuple], bool | None]] = {
    "title rows above the header": ("deaths", two(f(ROWS, T3), f(ROWS[:20] + NEW + ROWS[21:], T3)), True),
    "nine title rows, header on line 10": ("deaths", two(f(ROWS, T9), f(ROWS[:20] + NEW + ROWS[21:] + [ROWS[0]], T9)),
                                           True),
    "tab separated": ("deaths", two(f([r.replace(",", "\t") for r in ROWS], H.replace(",", "\t")),
                                    f([r.replace(",", "\t") for r in ROWS[:20] + NEW + ROWS[21:]], H.replace(",", "\t"))),
                      True),
    "header cells padded with spaces (same form)": ("deaths", two(BASE, f(ROWS + NEW, " 证件号码 ,死者姓名 ,死亡日期")), True),
    "a header synonym": ("deaths", two(BASE, f(ROWS + NEW, "身份证号,死者姓名,死亡日期")), False),
    "the header's line in head, body and last": ("deaths", two(BASE, f([*ROWS[:3], H, *ROWS[3:20], H, *ROWS[20:], H])),
                                                 True),
    "blank rows (separators, spaces) mid-file": ("deaths", two(BASE, f([*ROWS[:20], ",,", "   ", " , ,\t", *ROWS[20:]])),
                                                 True),
    "a row of spaces last": ("deaths", two(BASE, f(ROWS + NEW + [" ,\u3000, "])), False),
    "ragged short lines mid and last": ("deaths", two(BASE, f([*ROWS[:20], ROWS[20].rsplit(",", 1)[0], NEW[0][:18],
                                                            *ROWS[21:-1], ROWS[-1].rsplit(",", 1)[0]])), True),
    "a short line, then the same row with a trailing comma": (
        "deaths", two(f([*ROWS[:30], ROWS[30].rsplit(",", 1)[0], *ROWS[31:]]),
                      f([*ROWS[:30], ROWS[30].rsplit(",", 1)[0] + ",", *ROWS[31:], ROWS[30].rsplit(",", 1)[0]])), True),
    "NUL and control bytes in read lines": ("deaths", two(BASE, f([*ROWS[:20], ROWS[20].replace("2026", "20\x0026"),
                                                                   ROWS[21].replace(",", ",\x01", 1), *ROWS[22:]])), True),
    "control bytes in many new lines (refused)": ("deaths", two(BASE, f(ROWS[:20] + ["\x01\x02,\x03\x04,\x05"] * 30 + ROWS[20:])),
                                                  False),
    "a very long line": ("deaths", two(BASE, f([*ROWS[:20], ROWS[20] + "长" * 100000, *ROWS[21:]])), True),
    "a head line copying a body line": ("deaths", two(BASE, f([*ROWS[:3], ROWS[25], *ROWS[3:]])), False),
    "the last line repeating a carried line": ("deaths", two(BASE, f([*ROWS, ROWS[25]])), False),
    "13 lines": ("deaths", two(f(ROWS[:12]), f(ROWS[:11] + NEW[:1])), False),
    "14 lines": ("deaths", two(f(ROWS[:13]), f(ROWS[:12] + NEW[:1])), True),
    "cut mid-line": ("deaths", two(BASE, f(ROWS + NEW)[:-15]), False),
    "a CR at the very end": ("deaths", two(BASE, f(ROWS + NEW)[:-1] + b"\r"), False),
    "mixed CRLF and LF": ("deaths", two(BASE, f([r + "\r" if 20 <= i < 30 else r for i, r in enumerate(ROWS)] + NEW)), True),
    "GB18030, the changed lines ASCII": ("deaths", two(f(ROWS, enc="gb18030"),
                                                       f([*ROWS[:20], f"{pid('52900119700101666')},abc,2026-06-01", *ROWS[20:]],
                                                         enc="gb18030")), True),
    "UTF-8 header, then GB18030 (body lines byte-identical ASCII)": (
        "deaths", two(f([r.split(",")[0] + ",abc,2026-01-01" for r in ROWS], enc="utf-8"),
                      f([r.split(",")[0] + ",abc,2026-01-01" for r in ROWS] + ["1,x,2026-01-02"], enc="gb18030")), False),
    "the BOM dropped": ("deaths", two(BASE, f(ROWS + NEW, enc="utf-8")), False),
    "hukou: extra columns, an extra value changed, a short line, NUL in an extra": (
        "hukou", two(f(HR, HH, "utf-8"), f([*HR[:20], hrow(20, "改"), HR[21].rsplit(",", 2)[0], hrow(22, "a\x00b"),
                                            *HR[23:], hrow(50)], HH, "utf-8")), True),
    "hukou: the same row as a short line and with empty extras": (
        "hukou", two(f([*HR[:20], HR[20].rsplit(",", 1)[0], *HR[21:]], HH, "utf-8"),
                     f([*HR[:20], HR[20].rsplit(",", 1)[0], *HR[21:], HR[20].rsplit(",", 1)[0] + ","], HH, "utf-8")), False),
    # Control bytes in an unmapped column are no reason to reject a row: such rows are carried. Moved
    # into the file's first 4 KB, where reading whole finds a binary file and refuses it.
    "hukou: carried lines with control bytes moved to the top": (
        "hukou", two(f([hrow(i, "\x01\x02\x03" if i >= 70 else "") for i in range(110)], HH, "utf-8"),
                     f([hrow(i, "\x01\x02\x03" if i >= 70 else "") for i in [*range(12), *range(70, 110), *range(12, 70)]],
                       HH, "utf-8")), False),
    "a row rejected on night 1 valid on night 2, twice": (
        "deaths", two(f([*ROWS[:20], AHEAD, *ROWS[20:]]), f([*ROWS[:20], AHEAD, *ROWS[20:30], AHEAD, *ROWS[30:]])), True),
    "value limits changed on night 2": (
        "deaths", [(NIGHT[0], BASE), (NIGHT[1], f(ROWS + NEW), dataclasses.replace(LOOSE, values=ValueLimits(max_name_chars=2)))],
        False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_night_two_is_stored_as_if_read_whole(tmp_path: Path, monkeypatch, case: str) -> None:
    code, nights, by_lines = CASES[case]
    taken = compare(tmp_path, monkeypatch, nights, code)
    if by_lines is not None:
        assert taken[1] is by_lines, taken


def test_night_three_against_night_one_when_night_two_is_held_or_refused(tmp_path: Path, monkeypatch) -> None:
    """Night 2 held (far fewer rows), night 3 refused (a line too long), night 4 missing: night 5 is
    read by its lines against night 1's snapshot."""
    taken = compare(tmp_path, monkeypatch, [(NIGHT[0], BASE), (NIGHT[1], f(ROWS[:15])),
                                            (NIGHT[2], f([*ROWS, "a,b,c,d"])), (NIGHT[3], None),
                                            (NIGHT[4], f(ROWS[:30] + NEW + ROWS[30:]))])
    assert taken == [None, True, False, None, True], taken


def test_a_late_folder_and_the_same_night_run_again(tmp_path: Path, monkeypatch) -> None:
    """Night 3 before night 2 (a late folder: its snapshot in force is night 1's), then night 2
    again with another file (carried from its own earlier snapshot), then that file again with
    --force (stored by the earlier run)."""
    taken = compare(tmp_path, monkeypatch, [(NIGHT[0], BASE), (NIGHT[2], f(ROWS[:10] + NEW + ROWS[10:])),
                                            (NIGHT[1], f(ROWS + NEW[:1])), (NIGHT[1], f(ROWS[:5] + NEW + ROWS[5:])),
                                            (NIGHT[1], f(ROWS[:5] + NEW + ROWS[5:]), None, True)])
    assert taken[1:4] == [True, True, True], taken


def test_line_endings_and_encodings_switching_night_after_night(tmp_path: Path, monkeypatch) -> None:
    """A third of the lines CRLF (read, their rows carried by fingerprint), then LF again, then
    GB18030: each snapshot's line fingerprints are tonight's lines'."""
    third = [r + "\r" if i % 3 == 0 else r for i, r in enumerate(ROWS)]
    taken = compare(tmp_path, monkeypatch, [(NIGHT[0], f(ROWS, enc="utf-8")), (NIGHT[1], f(third, enc="utf-8")),
                                            (NIGHT[2], f(ROWS + NEW[:1], enc="utf-8")),
                                            (NIGHT[3], f(third + NEW, enc="gb18030")),
                                            (NIGHT[4], f(ROWS + NEW, enc="gb18030"))])
    assert taken == [None, True, True, False, True], taken


def test_a_snapshot_of_a_later_night_is_never_read_against(tmp_path: Path) -> None:
    """`read_changed` given the snapshot of a later night than tonight (what a late folder would
    find, were it handed the newest snapshot): read whole — while the same snapshot dated tonight
    or before is read by its lines."""
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        folder = tmp_path / "inbox" / NIGHT[0].isoformat()
        folder.mkdir(parents=True)
        (folder / FILE["deaths"].format(NIGHT[0])).write_bytes(BASE)
        (folder / "_SUCCESS").touch()
        ingest_night(con, folder, NIGHT[0], workers=1, limits=LOOSE)
        known = wh.known_rows(con, BY_CODE["deaths"], NIGHT[1])
    finally:
        con.close()
    body = f(ROWS + NEW)
    args = (body, FILE["deaths"].format(NIGHT[1]), BY_CODE["deaths"])
    assert csv_lines.read_changed(*args, known, ValueLimits(), NIGHT[1]) is not None
    later = dataclasses.replace(known, snapshot=NIGHT[2])
    assert csv_lines.read_changed(*args, later, ValueLimits(), NIGHT[1]) is None
