"""Rules evaluated only where something changed (bidui.rules.changed) give the hits evaluating them
whole gives, in what the six nights of tests/test_incremental.py do not bring: register rows that
only moved in their file, and the reasons to evaluate whole."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from bidui import config
from bidui.connectors import warehouse as wh
from bidui.flows import nightly
from bidui.home import Home
from bidui.rules import changed, engine
from bidui.synth.config import SynthConfig
from bidui.synth.generate import generate
from tests.test_incremental import read, run, write_csv

NIGHTS = [date(2026, 11, 20), date(2026, 11, 21)]
RECORD = r'"load_id":\s*-?\d+'  # (load ids number a night's files as they finished reading)


@pytest.fixture(scope="module")
def prefecture(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("changed") / "prefecture"
    generate(root, SynthConfig(size="tiny", seed=11, nights=len(NIGHTS)))
    return root


def stored_and_whole(home: Path, night: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The night's stored hits, and the hits of the rules evaluated whole on the same warehouse."""
    con = wh.connect(Home(home).warehouse)
    try:
        columns = ["rule_code", "category", *engine.CLUE_COLUMNS, "before_registration"]
        stored = wh.query(con, f"SELECT {', '.join(columns)} FROM rule_hits WHERE night = ?", [night])
        whole = engine.run_rules(con, night, config.load(Home(home).config), Home(home).root / "rules").hits
    finally:
        con.close()
    frames = [f.select(columns).with_columns(pl.col("evidence_record").str.replace_all(RECORD, "_")) for f in (stored, whole)]
    return tuple(f.sort(columns, nulls_last=True) for f in frames)  # type: ignore[return-value]


def run_night(home: Path, folder: Path) -> None:
    """The night run; synth cuts night 2's property file (held: exit 2), every other file is taken."""
    assert run(home, folder) in (0, 2)
    report = nightly.stored_report(Home(home), date.fromisoformat(folder.name))
    assert {f["dataset"] for f in report.files if f["status"] in ("held", "refused")} <= {"property"}, report.files


def scope(home: Path, night: date) -> tuple:
    con = wh.connect(Home(home).warehouse)
    try:
        return con.execute("SELECT before, households, reason FROM rule_states WHERE night = ?", [night]).fetchone()
    finally:
        con.close()


def test_a_member_row_that_only_moved_is_looked_at_again(prefecture: Path, tmp_path: Path, monkeypatch) -> None:
    """A member without an ID is a clue subject named by the row (R:<household>:<row>): night 2's
    register lists the same members in reverse order, so every member row moved and said nothing
    new. The households are looked at again (the register's rows are read by their place) and the
    subject is named by its new row, as evaluating whole names it."""
    monkeypatch.setattr(changed, "MOST", 1.0)
    root = tmp_path / "prefecture"
    shutil.copytree(prefecture, root)
    for i, night in enumerate(NIGHTS):
        path = next((root / "inbox" / night.isoformat()).glob("贫困人口明细_*.csv"))
        t = read(path, "register_members")
        t.put(t.rows[3], "id_number", None)  # the fourth member's ID left out, both nights, and a name
        t.put(t.rows[3], "name", "查无此人")  # hukou does not know: the member links to no one
        if i:
            t.rows.reverse()
        write_csv(path, t, "utf-8", ",")
    home = tmp_path / "home"
    for night in NIGHTS:
        run_night(home, root / "inbox" / night.isoformat())
    before, households, reason = scope(home, NIGHTS[1])
    assert before == NIGHTS[0] and reason == "", (before, households, reason)
    stored, whole = stored_and_whole(home, NIGHTS[1])
    assert stored.equals(whole), (stored.join(whole, on=stored.columns, how="anti", nulls_equal=True),
                                  whole.join(stored, on=stored.columns, how="anti", nulls_equal=True))
    con = wh.connect(Home(home).warehouse)
    try:
        named = [con.execute("SELECT DISTINCT subject_key FROM rule_hits WHERE night = ? AND subject_key LIKE 'R:%'",
                             [n]).fetchall() for n in NIGHTS]
    finally:
        con.close()
    assert len(named[0]) == len(named[1]) == 1 and named[0] != named[1], named  # the row moved


def test_the_rules_are_evaluated_whole_after_a_parameter_changed(prefecture: Path, tmp_path: Path) -> None:
    """The night before's hits were computed with another threshold: none of them is carried."""
    home = tmp_path / "home"
    run_night(home, prefecture / "inbox" / NIGHTS[0].isoformat())
    Home(home).config.write_text("[rules.parameters]\nschool_fee_threshold = 1.0\n", encoding="utf-8")
    run_night(home, prefecture / "inbox" / NIGHTS[1].isoformat())
    assert scope(home, NIGHTS[1]) == (None, None, "the rules, their parameters or bidui changed")
    stored, whole = stored_and_whole(home, NIGHTS[1])
    assert stored.equals(whole)
