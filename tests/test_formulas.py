"""Formula injection (issue 17, finding 5): department data with "=1+2", "+1+1", "-2+3",
"@SUM(A1)", a tab or a CR before "=1" in names, units, schools and addresses goes through a whole
night, and every CSV and XLSX the project writes — `clues export` (people's and codes, CSV and
XLSX), `rules export`, `links export`, every township's workbook, both reports and every dashboard
download — is scanned: no text cell starts as a formula would. Numbers stay numbers."""

from __future__ import annotations

import csv
import io
import re
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from python_calamine import CalamineWorkbook
from sqlalchemy import select
from typer.testing import CliRunner

from bidui.clues import report
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue
from bidui.clues.users import add_user
from bidui.clues.workbook import write_workbook
from bidui.home import Home
from bidui.text import FORMULA_LEADS, neutralise_formula, neutralise_formulas

NIGHT = "2026-11-20"
PLANTED = ("=1+2", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1")
# Columns of department files that hold a name, a unit, a school or an address.
TEXT_COLUMN = re.compile(r"姓名|名称|单位|地址|住址|坐落|学校|name", re.I)
PASSWORD = "formula-pass-12345"


def test_the_helper() -> None:
    for text in PLANTED:
        assert neutralise_formula(text) == "'" + text
    assert neutralise_formula("王芳") == "王芳" and neutralise_formula("a=1") == "a=1"
    frame = pl.DataFrame({"name": [*PLANTED, "王芳", None], "amount": [-5, -2, 3, 4, 5, 6, -7, 8],
                          "score": [-1.5] * 8})
    out = neutralise_formulas(frame)
    assert out["name"].to_list() == [*("'" + t for t in PLANTED), "王芳", None]
    assert out["amount"].to_list() == frame["amount"].to_list() and out.schema == frame.schema  # numbers stay


def test_a_signed_number_written_as_text_keeps_no_apostrophe() -> None:
    """A change the program writes as text ("+6,133" in the data-quality workbook) is shown as it is:
    an apostrophe before it showed (a data engineer's walk, 2026-12-06). A sign before anything but
    digits is still neutralised."""
    for text in ("+6,133", "-2", "+0.5%", "-1,234.56"):
        assert neutralise_formula(text) == text
        assert neutralise_formulas(pl.DataFrame({"c": [text]}))["c"].to_list() == [text]
    for text in ("+1+1", "-2+3", "+6,133A", "-1e5", "+cmd|' /C calc'!A0", "-A1", "+", "-,1"):
        assert neutralise_formula(text) == "'" + text
        assert neutralise_formulas(pl.DataFrame({"c": [text]}))["c"].to_list() == ["'" + text]


def _plant(night: Path) -> int:
    """Rewrite the night's CSV files (each in its own encoding and separator) with the planted
    values in every third row's name, unit, school and address cells; the count planted."""
    planted = 0
    for f in sorted(night.glob("*.csv")):
        if f.name.startswith(("hukou", "行政区划")):  # the spine and the divisions: the night needs them whole
            continue
        raw = f.read_bytes()
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        bom = raw.startswith(b"\xef\xbb\xbf")
        sep = "\t" if text.split("\n", 1)[0].count("\t") > text.split("\n", 1)[0].count(",") else ","
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
        columns = [i for i, name in enumerate(rows[0]) if TEXT_COLUMN.search(name)]
        if not columns:
            continue
        for r, row in enumerate(rows[1:], start=1):
            if r % 3 == 0:
                for i in columns:
                    if i < len(row) and row[i]:
                        row[i] = PLANTED[planted % len(PLANTED)]
                        planted += 1
        buf = io.StringIO(newline="")
        csv.writer(buf, delimiter=sep, lineterminator="\n").writerows(rows)
        f.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode("utf-8" if encoding == "utf-8-sig" else encoding))
    return planted


@pytest.fixture(scope="module")
def planted_home(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Home:
    from bidui.flows import nightly

    inbox = tmp_path_factory.mktemp("planted") / NIGHT
    shutil.copytree(tiny / "inbox" / NIGHT, inbox)
    assert _plant(inbox) > 50
    home = Home(tmp_path_factory.mktemp("formulahome"))
    nightly.run_night(home, inbox)
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.write() as s:
        town = s.scalars(select(Clue.township_code)).first()
        add_user(s, "pref", "市督导", "prefecture", town[:4] + "00000000", PASSWORD, "市专班督导").real_name = "陈静"
    ledger.close()
    return home


def _cells(path: Path) -> list[object]:
    if path.suffix == ".csv":
        text = path.read_text(encoding="utf-8-sig")
        return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]
    wb = CalamineWorkbook.from_path(str(path))
    return [cell for name in wb.sheet_names for row in wb.get_sheet_by_name(name).to_python() for cell in row]


def _written(home: Home, out: Path) -> list[Path]:
    """Every CSV and XLSX the project writes, from the planted night."""
    from fastapi.testclient import TestClient

    from bidui.cli import app
    from bidui.web.app import create_app

    runner = CliRunner()
    for args in (["clues", "export", "--out", str(out / "clues.csv")], ["clues", "export", "--out", str(out / "clues.xlsx")],
                 ["clues", "export", "--codes", "--out", str(out / "codes.csv")],
                 ["clues", "export", "--codes", "--out", str(out / "codes.xlsx")],
                 ["rules", "export", "--date", NIGHT, "--out", str(out / "rules.csv")],
                 ["links", "export", "--date", NIGHT, "--out", str(out / "links.csv")]):
        res = runner.invoke(app, ["--home", str(home.root), *args])
        assert res.exit_code == 0, res.output + repr(res.exception)
    ledger = open_ledger(ledger_url(home.ledger))
    try:
        with ledger.read() as s:
            for t in sorted({c.township_code for c in s.scalars(select(Clue))}):
                write_workbook(s, t, out / f"workbook_{t}.xlsx", "k" * 32, "admin")
            report.write_xlsx(report.build(s, None, date.today()), out / "progress.xlsx")
            prefecture = s.scalars(select(Clue.township_code)).first()[:4] + "00000000"
            report.write_xlsx(report.three_days(s, prefecture, date.today()), out / "three_day.xlsx")
    finally:
        ledger.close()
    c = TestClient(create_app(home), follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    assert c.post("/login", data={"username": "pref", "password": PASSWORD, "csrf_token": token}).status_code == 303
    from bidui.web.supervisor import TABLES

    for path in [*(f"/dashboard/{t}.xlsx" for t in [*TABLES, "trend"]), "/report.xlsx", "/report.xlsx?three_day=false"]:
        r = c.get(path)
        assert r.status_code == 200, path
        name = path.strip("/").replace("/", "_").replace("?", "_").replace("=", "_")
        (out / (name if name.endswith(".xlsx") else name + ".xlsx")).write_bytes(r.content)
    return sorted(out.iterdir())


def test_no_file_the_project_writes_has_a_formula_cell(planted_home: Home, tmp_path: Path) -> None:
    files = _written(planted_home, tmp_path)
    assert len(files) > 15
    reached: set[str] = set()
    for path in files:
        cells = _cells(path)
        bad = [c for c in cells if isinstance(c, str) and c.startswith(FORMULA_LEADS)]
        assert bad == [], (path.name, bad[:5])
        reached |= {path.name for c in cells if isinstance(c, str) and c.startswith("'") and c[1:].startswith(FORMULA_LEADS)}
    # The planted values reached the people's and the systems' exports, the workbooks and the
    # dashboard's list (else this test would prove nothing).
    assert {"clues.csv", "clues.xlsx", "rules.csv", "links.csv"} <= reached, reached
    assert any(name.startswith("workbook_") for name in reached), reached


def test_negative_numbers_stay_numbers(planted_home: Home, tmp_path: Path) -> None:
    """Only text cells are touched: a number column in a CSV reads back as the same numbers."""
    from bidui.cli import _write_csv

    frame = pl.DataFrame({"名称": ["-2+3", "王芳"], "金额": [-120.5, 30.0], "天数": [-3, 4]})
    _write_csv(frame, tmp_path / "t.csv")
    back = pl.read_csv(tmp_path / "t.csv")
    assert back["金额"].to_list() == [-120.5, 30.0] and back["天数"].to_list() == [-3, 4]
    assert back["名称"].to_list() == ["'-2+3", "王芳"]
