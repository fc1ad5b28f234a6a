"""The web app over HTTP: every role's pages, scope (another township's clue, workbook or report
is a 404), CSRF, expired sessions, lock-out, and the verify → close path through the forms."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue, Division
from bidui.home import Home
from bidui.web import security
from bidui.web.app import create_app
from tests.conftest import PASSWORD


def client_for(home: Home) -> TestClient:
    return TestClient(create_app(home), follow_redirects=False)


def login(client: TestClient, username: str, password: str = PASSWORD):
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def csrf(client: TestClient, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def clue_ids(home: Home, township: str) -> list[int]:
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.read() as s:
        ids = list(s.scalars(select(Clue.id).where(Clue.township_code == township).order_by(Clue.id)))
    ledger.close()
    return ids


@pytest.mark.parametrize(("user", "landing", "pages"), [
    ("town", "/inbox", ["/inbox", "/inbox?status=&overdue=true", "/inbox?sort=-due", "/workbook", "/profile"]),
    ("county", "/review", ["/review", "/review?age=3&page=2", "/inbox", "/dashboard", "/report.xlsx"]),
    ("pref", "/dashboard", ["/dashboard", "/inbox", "/report.xlsx?three_day=false"]),
    ("admin", "/admin", ["/admin", "/dashboard"]),
])
def test_every_roles_pages(home, user: str, landing: str, pages: list[str]) -> None:
    h, town, _ = home
    c = client_for(h)
    r = login(c, user)
    assert r.status_code == 303 and r.headers["location"] == landing
    for path in pages:
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:300])
    some = clue_ids(h, town)[0]
    assert c.get(f"/clues/{some}").status_code == 200  # every role here covers that township


def test_the_inbox_is_one_table_and_scoped(home) -> None:
    h, town, other = home
    c = client_for(h)
    login(c, "town")
    page = c.get("/inbox?status=").text
    assert page.count("<table") == 1 and "户编号" in page
    mine, theirs = clue_ids(h, town), clue_ids(h, other)
    assert all(f'href="/clues/{i}"' not in page for i in theirs)
    assert sum(f'href="/clues/{i}"' in page for i in mine) == len(mine)


def test_another_townships_clue_workbook_and_report_are_404(home) -> None:
    h, _, other = home
    c = client_for(h)
    login(c, "town")
    theirs = clue_ids(h, other)[0]
    assert c.get(f"/clues/{theirs}").status_code == 404
    assert c.get(f"/workbook?township={other}").status_code == 404
    assert c.get("/report.xlsx").status_code == 404 and c.get("/dashboard").status_code == 404
    assert c.get("/review").status_code == 404 and c.get("/admin").status_code == 404
    token = csrf(c, "/inbox")
    r = c.post(f"/clues/{theirs}/verify", data={"csrf_token": token, "version": 1, "outcome": "不属实", "finding": "x",
                                               "verifier_name": "甲", "verifier_position": "乙", "verified_on": "2026-11-21"})
    assert r.status_code == 404


def test_a_form_without_its_csrf_token_is_refused(home) -> None:
    h, town, _ = home
    c = client_for(h)
    login(c, "town")
    mine = clue_ids(h, town)[0]
    data = {"version": 1, "outcome": "不属实", "finding": "x", "verifier_name": "甲", "verifier_position": "乙",
            "verified_on": "2026-11-21"}
    assert c.post(f"/clues/{mine}/verify", data=data).status_code == 403
    assert c.post(f"/clues/{mine}/verify", data=data | {"csrf_token": "forged"}).status_code == 403
    fresh = client_for(h)
    assert fresh.post("/login", data={"username": "town", "password": PASSWORD}).status_code == 403


def test_an_expired_session_goes_back_to_login(home, monkeypatch) -> None:
    h, _, _ = home
    c = client_for(h)
    login(c, "town")
    assert c.get("/inbox").status_code == 200
    real = security.now
    monkeypatch.setattr(security, "now", lambda: real() + timedelta(hours=8, seconds=1))  # [web] session_idle_hours
    r = c.get("/inbox")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client_for(h).get("/inbox").headers["location"] == "/login"  # no session at all


def test_repeated_wrong_passwords_lock_the_account_here(home) -> None:
    h, _, _ = home
    c = client_for(h)
    for _ in range(security.PAIR_BLOCK_AFTER):
        r = login(c, "town", "wrong-password")
        assert r.status_code == 400 and 'value="town"' in r.text  # the form again, the user name kept
    r = login(c, "town")  # the right password, too late
    assert r.status_code == 400 and "锁定" in r.text and "location" not in r.headers


def test_the_login_rotates_the_session(home) -> None:
    h, _, _ = home
    c = client_for(h)
    c.get("/login")
    before = c.cookies.get("bidui_session")
    login(c, "town")
    assert c.cookies.get("bidui_session") != before


def test_verify_sign_then_close_moves_the_closure_rate(home) -> None:
    h, town, _ = home
    clue = clue_ids(h, town)[0]
    t = client_for(h)
    login(t, "town")
    token = csrf(t, f"/clues/{clue}")
    r = t.post(f"/clues/{clue}/verify", data={"csrf_token": token, "version": 1, "outcome": "属实·已整改",
                                              "action": "清退出列", "finding": "已按程序清退", "verified_on": "2026-11-21"})
    assert r.status_code == 303 and r.headers["location"].startswith("/clues/")
    assert "已核实并签字" in t.get(r.headers["location"]).text
    again = t.post(f"/clues/{clue}/verify", data={"csrf_token": token, "version": 1, "outcome": "不属实", "finding": "x",
                                                  "verified_on": "2026-11-21"})
    assert again.status_code == 409 and "在您打开后已有变动" in again.text  # a stale version: refused, said so
    county = client_for(h)
    login(county, "county")
    before = re.search(r'id="kpi-closure">([^<]+)<', county.get("/dashboard").text).group(1)
    assert f"{clue}:2" in county.get("/review").text
    r = county.post("/review", data={"csrf_token": csrf(county, "/review"), "decision": "close", "clue": f"{clue}:2",
                                     "confirmed": "yes"})
    assert r.status_code == 303
    after = re.search(r'id="kpi-closure">([^<]+)<', county.get("/dashboard").text).group(1)
    assert before != after and float(after.rstrip("%")) > float(before.rstrip("%"))
    assert "已销号" in county.get(f"/clues/{clue}").text


def test_no_id_number_reaches_the_access_log(home, caplog) -> None:
    h, town, _ = home
    c = client_for(h)
    login(c, "town")
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.read() as s:
        some_id = s.scalar(select(Clue.subject_id_number).where(Clue.township_code == town,
                                                                Clue.subject_id_number.is_not(None)))
    ledger.close()
    with caplog.at_level("INFO", logger="bidui.web"):
        r = c.post("/inbox/search", data={"csrf_token": csrf(c, "/inbox"), "q": some_id})
        assert r.status_code == 303 and some_id not in r.headers["location"]
        assert c.get(r.headers["location"]).status_code == 200
    assert caplog.records and all(some_id not in r.getMessage() for r in caplog.records)


EVIL = ["' OR '1'='1", "' OR 1=1 --", "%", "_", "\\", "529%", "'; DROP TABLE clues; --", "\" OR \"\"=\"", "0 OR 1=1"]


@pytest.mark.parametrize("param", ["rule", "category", "status", "village", "q", "page"])
def test_sql_injection_in_every_filter_is_only_text(home, param: str) -> None:
    h, town, other = home
    c = client_for(h)
    login(c, "town")
    theirs = clue_ids(h, other)
    token = csrf(c, "/inbox")
    for evil in EVIL:
        if param == "q":  # the search is posted (no typed text in a URL), then shown under a token
            r = c.post("/inbox/search", data={"csrf_token": token, "q": evil})
            r = c.get(r.headers["location"]) if r.status_code == 303 else r
        else:
            r = c.get("/inbox", params={param: evil})
        assert r.status_code in (200, 400), (param, evil)  # 400: a page number that is not a number
        assert all(f'href="/clues/{i}"' not in r.text for i in theirs), (param, evil)
        if param != "status" and r.status_code == 200:  # nothing matches text that is not in the data
            assert "没有符合条件的线索" in r.text or param == "page", (param, evil)
    assert len(clue_ids(h, town)) > 0  # the table is still there
    assert c.get(f"/clues/{theirs[0]}' OR '1'='1").status_code == 404


def test_another_countys_user_can_neither_review_nor_export_its_clues(home, tmp_path: Path) -> None:
    """Scope holds for form fields and downloads too: a county user who types another county's
    clue ids into the review form changes nothing, and its progress workbook lists only its own."""
    from python_calamine import CalamineWorkbook

    from bidui.clues.users import add_user

    h, town, _ = home
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.write() as s:
        counties = {d.code[:6] for d in s.scalars(select(Division).where(Division.level == "county"))}
        # The tiny prefecture has one county: the intruder's is a neighbour with no clues yet.
        elsewhere = next((c for c in sorted(counties) if c != town[:6]), town[:4] + ("98" if town[4:6] == "99" else "99"))
        add_user(s, "county2", "另一县审核", "county", elsewhere + "000000", PASSWORD)
    ledger.close()
    clue = clue_ids(h, town)[0]
    t = client_for(h)
    login(t, "town")
    t.post(f"/clues/{clue}/verify", data={"csrf_token": csrf(t, f"/clues/{clue}"), "version": 1, "outcome": "不属实",
                                          "finding": "车辆已过户", "verifier_name": "张三", "verifier_position": "扶贫专干",
                                          "verified_on": "2026-11-21"})
    intruder = client_for(h)
    login(intruder, "county2")
    token = csrf(intruder, "/review")
    assert f"{clue}:2" not in intruder.get("/review").text
    intruder.post("/review", data={"csrf_token": token, "decision": "close", "clue": f"{clue}:2"})
    intruder.post(f"/clues/{clue}/review", data={"csrf_token": token, "version": 2, "decision": "return", "reason": "x"})
    assert intruder.get(f"/clues/{clue}").status_code == 404
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.read() as s:
        assert (s.get(Clue, clue).status, s.get(Clue, clue).version) == ("verified", 2)  # untouched
    ledger.close()

    def progress_cells(client: TestClient) -> set[str]:
        xlsx = tmp_path / "progress.xlsx"
        xlsx.write_bytes(client.get("/report.xlsx?three_day=false").content)
        wb = CalamineWorkbook.from_path(str(xlsx))
        return {str(v) for name in wb.sheet_names for row in wb.get_sheet_by_name(name).to_python() for v in row}

    county = client_for(h)  # the clue's own county sees its township in the export, the other county doesn't
    login(county, "county")
    mine, theirs = progress_cells(county), progress_cells(intruder)
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.read() as s:
        town_name = s.get(Division, town).name
    ledger.close()
    assert any(town_name in c for c in mine) and not any(town_name in c for c in theirs)
    county.post("/review", data={"csrf_token": csrf(county, "/review"), "decision": "close", "clue": f"{clue}:2",
                                 "confirmed": "yes"})
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.read() as s:
        assert s.get(Clue, clue).status == "closed"
    ledger.close()
