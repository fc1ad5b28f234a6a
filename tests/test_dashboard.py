"""The supervisor's dashboard (issue 16): a trend chart with axes up to today (closures after the
last night counted), breakdowns by county, township and rule with names, every table downloadable
as Excel without a cell a spreadsheet would take for a formula, and a county sees its county only."""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from python_calamine import CalamineWorkbook
from sqlalchemy import select

from bidui.clues import actions
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue, Division, User
from bidui.clues.states import NOT_TRUE, Finding
from bidui.home import Home
from bidui.text import FORMULA_LEADS, neutralise_formula
from bidui.web.app import create_app
from tests.conftest import PASSWORD

TABLES = ("trend", "county", "township", "rule", "category", "findings", "overdue", "burden")


@pytest.fixture
def home(published_home, tmp_path: Path) -> tuple[Home, str, str]:
    """The published tiny night, with four clues verified and closed today (after the night) and
    one overdue subject whose name starts like a formula."""
    root, town, other = published_home
    h = Home(tmp_path / "home")
    shutil.copytree(root, h.root)
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.write() as s:
        clerk = s.scalar(select(User).where(User.username == "town"))
        county = s.scalar(select(User).where(User.username == "county"))
        clerk.real_name = clerk.real_name or "王芳"
        ids = list(s.scalars(select(Clue.id).where(Clue.township_code == town).order_by(Clue.id).limit(4)))
        for cid in ids:
            clue = actions.verify(s, cid, s.get(Clue, cid).version, clerk,
                                  Finding(NOT_TRUE, None, "入户核实，情况不属实，有村委会证明。", clerk.real_name, "扶贫专干",
                                          date.today()))
            actions.close(s, cid, clue.version, county)
        hostile = s.get(Clue, ids[-1] + 1)  # overdue, under a name a spreadsheet would run
        hostile.subject_name, hostile.due_date = "=HYPERLINK(\"http://x\")", date.today() - timedelta(days=3)
    ledger.close()
    return h, town, other


def client_as(h: Home, username: str) -> TestClient:
    client = TestClient(create_app(h), follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
                       ).status_code == 303
    return client


def names(h: Home, level: str) -> set[str]:
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.read() as s:
        out = {d.name for d in s.scalars(select(Division).where(Division.level == level))}
    ledger.close()
    return out


def test_trend_has_axes_and_counts_closures_after_the_last_night(home) -> None:
    h, _, _ = home
    page = client_as(h, "pref").get("/dashboard").text
    assert re.search(r'id="kpi-closed">4<', page)
    chart = page.split('id="trend"')[1].split("</svg>")[0]
    assert "<path d=\"M" in chart and chart.count("<circle") >= 2  # a line with a point per night and today
    for label in ("0%", "25%", "50%", "75%", "100%", "整改销号率", "未销号线索", "比对日期", "今天"):
        assert label in chart, label
    assert chart.count("<line") >= 5  # gridlines
    # The figures behind it: the last point is today, with the four closures of today.
    rows = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>",
                      page.split('id="trend"')[1].split('id="by-county"')[0])
    assert rows[-1][0].endswith("（今天）") and int(rows[-1][2]) == 4
    assert int(rows[0][2]) == 0  # none was closed by the night itself
    assert 'class="chart chart-narrow"' in page  # a phone gets its own drawing, text readable


def test_breakdowns_with_names(home) -> None:
    h, town, _ = home
    pref = client_as(h, "pref").get("/dashboard").text
    counties, townships = names(h, "county"), names(h, "township")
    by_county = re.sub(r"<[^>]+>", " ", pref.split('id="by-county"')[1].split('id="by-township"')[0])
    assert any(n in by_county for n in counties)
    by_township = re.sub(r"<[^>]+>", " ", pref.split('id="by-township"')[1].split('id="by-rule"')[0])
    assert sum(n in by_township for n in townships) >= 2
    by_rule = re.sub(r"<[^>]+>", " ", pref.split('id="by-rule"')[1].split('id="findings"')[0])
    assert "属实率" in by_rule and not re.search(r"\b[A-Z][A-Z_]{3,}\b", by_rule)  # titles, not codes
    assert not re.search(r"\b\d{12}\b", re.sub(r"<[^>]+>", " ", pref))  # no division code anywhere
    # By category, as the download and the command's report have it: its names, not its codes.
    from bidui.clues.present import CATEGORY_LABELS

    by_category = re.sub(r"<[^>]+>", " ", pref.split('id="by-category"')[1].split('id="burden"')[0])
    assert any(label in by_category for label in CATEGORY_LABELS.values()) and "按时核实率" in by_category
    assert not any(code in by_category for code in CATEGORY_LABELS)
    # A county user: no by-county section, only its own county's townships.
    county = client_as(h, "county").get("/dashboard").text
    assert 'id="by-county"' not in county
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.read() as s:
        elsewhere = {d.name for d in s.scalars(select(Division).where(Division.level == "township"))
                     if d.code[:6] != town[:6]}
        own = {d.name for d in s.scalars(select(Division).where(Division.level == "township"))
               if d.code[:6] == town[:6]}
    ledger.close()
    section = county.split('id="by-township"')[1].split('id="by-rule"')[0]
    assert any(n in section for n in own)
    assert not any(f">{n}<" in section for n in elsewhere - own)


@pytest.mark.parametrize("table", TABLES)
def test_every_table_downloads_without_formulas(home, table: str, tmp_path: Path) -> None:
    h, _, _ = home
    res = client_as(h, "pref").get(f"/dashboard/{table}.xlsx")
    assert res.status_code == 200 and res.content[:2] == b"PK"
    disposition = res.headers["content-disposition"]
    assert "xlsx" in disposition and not re.search(r"\d{12}", disposition)
    out = tmp_path / "t.xlsx"
    out.write_bytes(res.content)
    book = CalamineWorkbook.from_path(str(out))
    rows = book.get_sheet_by_index(0).to_python()
    assert len(rows) >= 2 and all(isinstance(v, str) for v in rows[1])  # a heading and the column titles
    for row in rows:
        for v in row:
            assert not (isinstance(v, str) and v.startswith(FORMULA_LEADS)), (table, v)
    if table == "overdue":
        assert any("'=HYPERLINK" in str(v) for row in rows for v in row)  # the hostile name, neutralised
    if table == "trend":
        assert rows[-1][0].endswith("（今天）") and rows[-1][2] == 4
    if table in ("county", "township", "rule", "category"):  # the same figures whichever way it is cut
        assert {"下发", "已核实", "已销号", "整改销号率", "逾期未核实"} <= set(rows[1]), rows[1]


def test_unknown_table_and_roles(home) -> None:
    h, _, _ = home
    assert client_as(h, "pref").get("/dashboard/nothing.xlsx").status_code == 404
    assert client_as(h, "town").get("/dashboard/township.xlsx").status_code == 404
    assert client_as(h, "town").get("/dashboard").status_code == 404


def test_neutralise_formula() -> None:
    assert neutralise_formula("=1+1") == "'=1+1" and neutralise_formula("-A2") == "'-A2"
    assert neutralise_formula("-2") == "-2"  # a signed number: no spreadsheet runs it
    assert neutralise_formula("@SUM(A1)") == "'@SUM(A1)" and neutralise_formula("王芳") == "王芳"
    assert date.today()  # the dashboard's 今天 is the server's date


def test_the_trend_legend_never_runs_into_itself() -> None:
    """Side by side on the wide chart; on the phone's chart, where the two would overlap, one below
    the other (both start at the plot's left edge there)."""
    from bidui.web.supervisor import Point, trend_svg

    points = [Point("11-20", date(2026, 11, 20), 10, 2), Point("今天", date(2026, 11, 21), 12, 5)]

    def legends(svg: str) -> list[tuple[float, float, str]]:
        return [(float(x), float(y), t) for x, y, t in
                re.findall(r'<text x="([\d.]+)" y="([\d.]+)"[^>]*>([━▮][^<]*)</text>', svg)]

    wide = legends(trend_svg(points, 760, 300, 12, 16))
    narrow = legends(trend_svg(points, 340, 270, 12, 5))
    assert len(wide) == len(narrow) == 2
    assert wide[0][1] == wide[1][1] and wide[1][0] > wide[0][0]  # one line
    assert narrow[1][1] >= narrow[0][1] + 12 and narrow[0][0] == narrow[1][0]  # two lines


def test_the_trend_says_todays_closure_rate_as_the_tile_does() -> None:
    """The chart labelled today 0% while the tile above it said 整改销号率 0.3% (a supervisor's
    browser walk, 2026-12-06): one decimal, as the tile."""
    from bidui.web.supervisor import Point, trend_svg

    svg = trend_svg([Point("11-20", date(2026, 11, 20), 1000, 0), Point("今天", date(2026, 11, 21), 1000, 3)],
                    760, 300, 12, 16)
    assert re.findall(r'font-weight="600">([^<]*%)</text>', svg) == ["0.3%"]
