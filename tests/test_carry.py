"""Only new or changed rows are normalised (issue 18, item 1): five nights of the tiny prefecture —
births, deaths, name and ID corrections, moves and household splits from the synth, a skipped
dataset, a truncated file held, then night 3's files delivered again in other forms (the register
re-encoded as GB18030 with its columns reversed, the payroll turned from CSV into XLSX) and a fifth night with rows changed,
removed and added — run incrementally (the memo of each dataset's last delivery) and from scratch
(BIDUI_CARRY=0), and every snapshot, reject, link, rule hit and clue is the same."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import duckdb
import polars as pl
from sqlalchemy import select

from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue
from bidui.connectors import warehouse as wh
from bidui.flows import nightly
from bidui.home import Home
from bidui.synth.xlsx import write_frame

NIGHTS = ["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24"]
REGISTER = "贫困人口明细"
PAYROLL = "财政供养人员"


def _rows(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("gb18030")  # the synth writes some departments' files in GBK
    return list(csv.reader(io.StringIO(text, newline="")))


def _write_csv(path: Path, rows: list[list[str]], encoding: str) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))


def _renamed(folder: Path, old: str, new: str) -> None:
    for f in folder.iterdir():
        if old in f.name:
            f.rename(f.with_name(f.name.replace(old, new)))


def _other_forms(tiny: Path, root: Path) -> Path:
    """Nights 4 and 5 beside copies of the synth's three."""
    inbox = root / "inbox"
    for night in NIGHTS[:3]:
        shutil.copytree(tiny / "inbox" / night, inbox / night)
    # Night 4: night 3 again, in other forms. (Night 3's truncated file is night 2's then.)
    four = inbox / NIGHTS[3]
    shutil.copytree(inbox / NIGHTS[2], four)
    _renamed(four, "20261122", "20261123")
    _renamed(four, "_1122", "_1123")
    register = next(four.glob(f"{REGISTER}*.csv"))
    rows = _rows(register)
    _write_csv(register, [list(reversed(r)) for r in rows], "gb18030")
    payroll = next(four.glob(f"{PAYROLL}*.csv"))
    rows = _rows(payroll)
    moved = [[r[-1], *r[:-1]] for r in rows]  # the last column first; every cell text, as a careful clerk saves IDs
    write_frame(payroll.with_suffix(".xlsx"), moved[0],
                pl.DataFrame({f"c{i}": [r[i] for r in moved[1:]] for i in range(len(moved[0]))}))
    payroll.unlink()
    # Night 5: night 4 with one member's row gone, one name corrected and one row added.
    five = inbox / NIGHTS[4]
    shutil.copytree(four, five)
    _renamed(five, "20261123", "20261124")
    _renamed(five, "_1123", "_1124")
    register = next(five.glob(f"{REGISTER}*.csv"))
    rows = _rows(register)
    name_at = rows[0].index(next(h for h in rows[0] if "姓名" in h))
    rows[3][name_at] = rows[3][name_at] + "华"
    rows.append(list(rows[4]))
    rows[-1][name_at] = "新增成员"
    del rows[5]
    _write_csv(register, rows, "gb18030")
    return inbox


def _table(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def _everything(home: Home) -> dict[str, list]:
    con = wh.connect(home.warehouse)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'ds\\_%' "
                                            "ESCAPE '\\' ORDER BY 1").fetchall()]
        out = {t: _table(con, f"SELECT * EXCLUDE (load_id) FROM {t} ORDER BY ALL") for t in tables}
        out["rejects"] = _table(con, "SELECT * EXCLUDE (load_id) FROM rejects ORDER BY ALL")
        out["links"] = _table(con, "SELECT * FROM links ORDER BY ALL")
        out["rule_hits"] = _table(con, "SELECT * FROM rule_hits ORDER BY ALL")
    finally:
        con.close()
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.read() as s:
        out["clues"] = sorted(s.execute(select(
            Clue.rule_code, Clue.subject_key, Clue.evidence_key, Clue.status, Clue.evidence_hash, Clue.first_seen,
            Clue.last_seen, Clue.evidence_gone)).all())
    ledger.engine.dispose()
    return out


def test_five_nights_incrementally_and_from_scratch_give_the_same_warehouse_links_hits_and_ledger(
        tiny: Path, tmp_path: Path, monkeypatch) -> None:
    inbox = _other_forms(tiny, tmp_path)
    incremental, scratch = Home(tmp_path / "incremental"), Home(tmp_path / "scratch")
    carried: dict[str, dict[str, tuple]] = {}
    for night in NIGHTS:
        monkeypatch.delenv("BIDUI_CARRY", raising=False)
        report = nightly.run_night(incremental, inbox / night)
        carried[night] = {f["dataset"]: (f["rows_carried"], f["rows_changed"], f["rows_removed"])
                          for f in report.files if f.get("dataset") and f["status"] == "accepted"}
        monkeypatch.setenv("BIDUI_CARRY", "0")
        plain = nightly.run_night(scratch, inbox / night)
        assert all(f.get("rows_carried") is None for f in plain.files)
    assert not (scratch.root / "carry").exists()
    assert _everything(incremental) == _everything(scratch)
    # The memo did the work: on night 2 most hukou rows were carried; on night 4 the register
    # re-encoded with its columns reversed, and the payroll turned into XLSX, were carried
    # whole; night 5 normalised only the two changed or added members and saw one removed.
    hukou = carried[NIGHTS[1]]["hukou"]
    assert hukou[0] > 10 * hukou[1]
    assert carried[NIGHTS[3]]["register_members"][1:] == (0, 0) and carried[NIGHTS[3]]["register_members"][0] > 0
    assert carried[NIGHTS[3]]["payroll"][1:] == (0, 0) and carried[NIGHTS[3]]["payroll"][0] > 0
    assert carried[NIGHTS[4]]["register_members"][1:] == (2, 2)
