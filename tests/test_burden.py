"""核查负担 (issue 19 part 5): per rule, issued, verified, 属实, 不属实, the median days to verify
and visits per true finding, from verifications made through the real actions; scoped by
division; on the supervisor dashboard, its Excel download and `bidui report`."""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from python_calamine import CalamineWorkbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from bidui.cli import app as cli_app
from bidui.clues import actions, report
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue, User
from bidui.clues.states import NOT_TRUE, TRUE_EXEMPT, Finding
from bidui.home import Home
from bidui.web.app import create_app
from tests.conftest import PASSWORD
from tests.present_support import internal_codes

TODAY = date.today()
FAR = "529099001000"  # a township of a county no test user is in


@pytest.fixture(scope="module")
def burden_home(published_home, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """In the clerk's township, the two rules with most clues there: rule A, three clues verified
    (属实 on days 2 and 4 after dispatch, 不属实 on day 9), one left open; rule B, two verified
    不属实. One more of rule A, verified 属实 in the other township, is then moved to another county."""
    root, town, other = published_home
    h = Home(tmp_path_factory.mktemp("burden") / "home")
    shutil.copytree(root, h.root)
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.write() as s:
        clerk = s.scalar(select(User).where(User.username == "town"))
        rules = [r for r, in s.execute(select(Clue.rule_code).where(Clue.township_code == town)
                                       .group_by(Clue.rule_code).having(func.count() >= 4)
                                       .order_by(func.count().desc(), Clue.rule_code).limit(2))]
        a, b = rules
        first_seen = s.scalar(select(func.min(Clue.first_seen)))
        # The night is in the past for the tests' today: verifications are dated after it.
        days = max(1, (TODAY - first_seen).days)
        ids_a = list(s.scalars(select(Clue.id).where(Clue.township_code == town, Clue.rule_code == a).order_by(Clue.id)))
        ids_b = list(s.scalars(select(Clue.id).where(Clue.township_code == town, Clue.rule_code == b).order_by(Clue.id)))

        def verify(cid: int, outcome: str, after: int) -> None:
            on = min(TODAY, first_seen + timedelta(days=after))
            actions.verify(s, cid, s.get(Clue, cid).version, clerk,
                           Finding(outcome, None, "入户核实，情况如实记录，附村委会证明。", clerk.real_name, "扶贫专干", on))

        for cid, outcome, after in zip(ids_a, (TRUE_EXEMPT, TRUE_EXEMPT, NOT_TRUE), (2, 4, 9), strict=False):
            verify(cid, outcome, after)
        for cid in ids_b[:2]:
            verify(cid, NOT_TRUE, 1)
        elsewhere = s.scalar(select(Clue.id).where(Clue.rule_code == a, Clue.township_code == other).order_by(Clue.id))
        if elsewhere is None:  # every clue of A is in the clerk's township: use its last one
            elsewhere = ids_a[-1]
            ids_a = ids_a[:-1]
        other_clerk = s.scalar(select(User).where(User.username == "other"))
        c = s.get(Clue, elsewhere)
        actions.verify(s, elsewhere, c.version, other_clerk if c.township_code != town else clerk,
                       Finding(TRUE_EXEMPT, None, "入户核实，属实，按政策豁免。", "李建国", "民政助理员", min(TODAY, first_seen + timedelta(days=3))))
        c = s.get(Clue, elsewhere)
        c.township_code, c.county_code, c.village_code = FAR, FAR[:6] + "000000", FAR[:9] + "001"
    ledger.close()
    return {"home": h, "town": town, "a": a, "b": b, "issued_a": len(ids_a), "issued_b": len(ids_b), "days": days}


def burden_of(h: Home, scope_code: str | None) -> dict[str, dict]:
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.read() as s:
        rep = report.build(s, scope_code, TODAY)
    ledger.close()
    return {r["rule_code"]: r for r in rep.burden.iter_rows(named=True)}


def test_burden_figures(burden_home) -> None:
    h, town, a, b = burden_home["home"], burden_home["town"], burden_home["a"], burden_home["b"]
    rows = burden_of(h, town)
    ra, rb = rows[a], rows[b]
    assert (ra["issued"], ra["verified"], ra["true"], ra["not_true"]) == (burden_home["issued_a"], 3, 2, 1)
    assert ra["visits_per_true"] == 1.5  # three visits for two true findings
    cap = burden_home["days"]
    assert ra["median_days"] == min(4, cap)  # days 2, 4, 9 after dispatch
    assert (rb["verified"], rb["true"], rb["not_true"], rb["visits_per_true"]) == (2, 0, 2, None)
    # The heaviest first: verified with none 属实, then the most visits per true finding.
    order = list(rows)
    assert order[0] == b and order.index(b) < order.index(a)
    untouched = [r for r in rows.values() if r["verified"] == 0]
    assert untouched and all(r["median_days"] is None and r["visits_per_true"] is None for r in untouched)


def test_burden_is_scoped(burden_home) -> None:
    h, town, a = burden_home["home"], burden_home["town"], burden_home["a"]
    county = town[:6] + "000000"
    in_county = burden_of(h, county)[a]
    everywhere = burden_of(h, None)[a]
    far = burden_of(h, FAR[:6] + "000000")[a]
    assert everywhere["true"] == in_county["true"] + 1 and everywhere["issued"] == in_county["issued"] + 1
    assert (far["issued"], far["verified"], far["true"]) == (1, 1, 1)


def client_as(h: Home, username: str) -> TestClient:
    client = TestClient(create_app(h), follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
                       ).status_code == 303
    return client


def section(page: str) -> str:
    part = page.split('id="burden"')[1].split('<div class="card"')[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", part))


def test_dashboard_table_and_download(burden_home, tmp_path: Path) -> None:
    h, a, b = burden_home["home"], burden_home["a"], burden_home["b"]
    from bidui.clues.present import rule_title

    county = section(client_as(h, "county").get("/dashboard").text)
    assert "核查负担" in county and rule_title(a) in county and rule_title(b) in county
    issued = {k: v["issued"] for k, v in burden_of(h, burden_home["town"][:6] + "000000").items()}
    assert re.search(rf"{re.escape(rule_title(a))} {issued[a]} 3 2 1 \S+ 1\.5 ", county), county
    assert re.search(rf"{re.escape(rule_title(b))} {issued[b]} 2 0 2 \S+ — ", county)
    assert internal_codes(county) == []
    pref = section(client_as(h, "pref").get("/dashboard").text)
    assert re.search(rf"{re.escape(rule_title(a))} {issued[a] + 1} 4 3 1 ", pref)  # the far county's too
    res = client_as(h, "county").get("/dashboard/burden.xlsx")
    assert res.status_code == 200 and res.content[:2] == b"PK"
    out = tmp_path / "b.xlsx"
    out.write_bytes(res.content)
    rows = CalamineWorkbook.from_path(str(out)).get_sheet_by_index(0).to_python()
    assert rows[1][0] == "疑点" and "每查实一条需核实（条）" in rows[1]
    by_title = {r[0]: r for r in rows[2:]}
    assert by_title[rule_title(a)][6] == 1.5 and by_title[rule_title(b)][6] == "—"
    assert client_as(h, "town").get("/dashboard/burden.xlsx").status_code == 404


def test_report_command(burden_home, tmp_path: Path) -> None:
    h, town, a = burden_home["home"], burden_home["town"], burden_home["a"]
    from bidui.clues.present import rule_title

    out = tmp_path / "r.xlsx"
    res = CliRunner().invoke(cli_app, ["--home", str(h.root), "report", "--scope", town[:6] + "000000",
                                       "--out", str(out)])
    assert res.exit_code == 0, res.output
    printed = res.stdout.split("核查负担")[1].split("报表 →")[0]  # the file path said last is the operator's
    assert rule_title(a) in printed and "1.5" in printed and "150.0%" not in printed
    assert internal_codes(printed) == []
    book = CalamineWorkbook.from_path(str(out))
    assert "核查负担" in book.sheet_names
    rows = book.get_sheet_by_name("核查负担").to_python()
    header = rows[1]
    assert "属实" in header and "不属实" in header and "核实用时中位数（天）" in header
    row = next(r for r in rows[2:] if r[header.index("疑点")] == rule_title(a))
    assert row[header.index("每查实一条需核实（条）")] == 1.5
