"""阈值推演 (issue 19 part 4): a replay with no change adds and removes nothing; one with changed
parameters equals a real rules run with them; the warehouse is not changed; a bad setting is a
clear error; --json's shape; the page is the prefecture's and admin's, in Chinese, and says when
the nightly run holds the warehouse."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bidui.cli import app as cli_app
from bidui.home import Home
from bidui.rules.whatif import BUSY, BUSY_WHATIF, COMMAND, WarehouseBusy, WhatIfError, replay
from bidui.web.app import create_app
from tests.conftest import PASSWORD
from tests.present_support import internal_codes

NIGHT = date(2026, 11, 20)
# A lower medical threshold adds clues; fewer dangerous-house grades removes some.
CHANGES = {"medical_household_threshold": 5000.0, "dangerous_grades": ["D"]}


@pytest.fixture(scope="module")
def wh_home(published_home, tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, str, str]:
    """A copy of the published tiny night (a replay takes the home's run lock: a file in it)."""
    root, town, other = published_home
    h = Home(tmp_path_factory.mktemp("whatif") / "home")
    shutil.copytree(root, h.root)
    return h, town, other


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_no_change_adds_and_removes_nothing(wh_home) -> None:
    h, _, _ = wh_home
    result = replay(h, NIGHT, {})
    assert result.added == 0 and result.removed == 0
    assert all(r["replayed"] for r in result.by_rule.values())  # every rule ran again, none by reuse
    assert all(r["published"] == r["whatif"] for r in result.by_rule.values())
    assert sum(r["published"] for r in result.by_rule.values()) > 50
    assert not result.notes


def test_changed_parameters_equal_a_real_rules_run(wh_home, tmp_path: Path) -> None:
    h, _, _ = wh_home
    before = digest(h.warehouse)
    result = replay(h, NIGHT, CHANGES)
    assert digest(h.warehouse) == before  # nothing written: not a hit, not a temp table
    assert not Path(str(h.warehouse) + ".wal").exists()
    assert result.by_rule["HIGH_MEDICAL_COST"]["added"] > 0 and result.by_rule["DANGEROUS_HOUSE"]["removed"] > 0
    assert not result.by_rule["VEHICLE"]["replayed"]  # a rule that reads neither is not run again
    # The same night, run for real with those parameters in a copy of the home.
    from bidui import config
    from bidui.connectors import warehouse
    from bidui.rules.engine import run_rules, store_hits

    copy = Home(tmp_path / "home")
    shutil.copytree(h.root, copy.root)
    copy.config.write_text(textwrap.dedent("""
        [rules.parameters]
        medical_household_threshold = 5000.0
        dangerous_grades = ["D"]
    """), encoding="utf-8")
    con = warehouse.connect(copy.warehouse)
    store_hits(con, NIGHT, run_rules(con, NIGHT, config.load(copy.config), copy.root / "rules"))
    hits = warehouse.query(con, "SELECT rule_code, township_code FROM rule_hits WHERE night = ?", [NIGHT])
    con.close()
    real_rules = dict(hits.group_by("rule_code").len().iter_rows())
    real_towns = dict(hits.group_by("township_code").len().iter_rows())
    assert {k: v["whatif"] for k, v in result.by_rule.items() if v["whatif"]} == real_rules
    assert {k: v["whatif"] for k, v in result.by_township.items() if v["whatif"]} == real_towns
    # Added and removed are the difference to the night as published.
    for row in result.by_rule.values():
        assert row["whatif"] == row["published"] + row["added"] - row["removed"]
    assert result.added == sum(v["added"] for v in result.by_township.values())


def test_scope_keeps_to_the_division(wh_home) -> None:
    h, town, _ = wh_home
    result = replay(h, NIGHT, CHANGES, scope_code=town)
    assert set(result.by_township) == {town}
    everywhere = replay(h, NIGHT, CHANGES)
    assert result.by_township[town] == everywhere.by_township[town]
    assert sum(r["whatif"] for r in result.by_rule.values()) == everywhere.by_township[town]["whatif"]


def cli(h: Home, *args: str):
    return CliRunner().invoke(cli_app, ["--home", str(h.root), "rules", "whatif", "--date", NIGHT.isoformat(), *args])


@pytest.mark.parametrize(("setting", "named"), [
    ("no_such_parameter=1", "no_such_parameter"),
    ("split_years=2.5", "split_years"),
    ("medical_household_threshold=很多", "medical_household_threshold"),
    ("medical_household_threshold=-5", "medical_household_threshold"),
    ("dangerous_grades", "dangerous_grades"),  # no value at all
])
def test_a_bad_setting_is_a_clear_error(wh_home, setting: str, named: str) -> None:
    h, _, _ = wh_home
    res = cli(h, "--set", setting)
    assert res.exit_code == 2, res.output
    assert named in res.output and "Traceback" not in res.output
    assert re.search(r"[\u4e00-\u9fff]", res.output)  # said in Chinese


@pytest.mark.parametrize(("fields", "said"), [
    # A vehicle type's name where its GA 802 code's start is compared: every car clue would vanish.
    ({"p_vehicle_counted_types": "小型汽车"}, "不是 GA 802 车辆类型代码的开头"),
    ({"p_dangerous_grades": "E、X"}, "可取：A、B、C、D"),
    ({"p_vehicle_active_statuses": "正常、扣押"}, "扣押 不是可能的取值"),
    ({"p_dropout_min_age": "16", "p_dropout_max_age": "7"}, "大于"),
    ({"p_dropout_min_age": "16"}, "大于"),  # past the current end of the range
])
def test_a_value_no_record_can_have_is_refused_not_replayed(wh_home, fields: dict[str, str], said: str) -> None:
    """The page refuses, in Chinese, a value the rules' records never hold, instead of showing its
    clues all removed as if the parameter had done it; the command line too."""
    h, _, _ = wh_home
    client = client_as(h, "admin")
    token = csrf(client.get("/whatif").text)
    res = client.post("/whatif", data={"csrf_token": token, "night": NIGHT.isoformat(), **fields})
    assert res.status_code == 400 and said in text_of(res.text), text_of(res.text)[:400]
    assert "推演结果" not in text_of(res.text) and internal_codes(text_of(res.text)) == []
    out = cli(h, *[a for k, v in fields.items() for a in ("--set", f"{k[2:]}={v}")])
    assert out.exit_code == 2 and said in out.output, out.output
    ok = client.post("/whatif", data={"csrf_token": token, "night": NIGHT.isoformat(),
                                      "p_vehicle_counted_types": "K、H1", "p_dangerous_grades": "B、C、D"})
    assert ok.status_code == 200 and "推演结果" in text_of(ok.text)


def test_unknown_night_is_an_error(wh_home) -> None:
    h, _, _ = wh_home
    with pytest.raises(WhatIfError, match="没有比对结果"):
        replay(h, date(2026, 11, 1), {})


def test_json_shape(wh_home) -> None:
    h, _, _ = wh_home
    res = cli(h, "--set", "medical_household_threshold=5000", "--set", "dangerous_grades=D", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {"added", "removed", "by_rule", "by_township"} <= set(out)
    assert out["changes"] == CHANGES
    rule_keys = {"title", "published", "whatif", "added", "removed", "replayed", "affected", "verified", "true",
                 "true_rate"}
    assert all(set(v) == rule_keys for v in out["by_rule"].values())
    assert all({"name", "county", "published", "whatif", "added", "removed"} <= set(v) for v in out["by_township"].values())
    assert out["added"] == sum(v["added"] for v in out["by_rule"].values()) > 0
    assert out["removed"] == sum(v["removed"] for v in out["by_rule"].values()) > 0
    plain = cli(h, "--set", "medical_household_threshold=5000")
    assert plain.exit_code == 0 and "户医疗自付费用门槛：10,000 → 5,000" in plain.stdout
    assert internal_codes(plain.stdout) == []


def hold_lock(h: Home, command: str = "run") -> subprocess.Popen:
    """Another process holding the home's run lock, as the nightly run does."""
    code = ("import sys, time; from pathlib import Path; from bidui.runlock import run_lock\n"
            "with run_lock(Path(sys.argv[1]), command=sys.argv[2]):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(h.root), command], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_run_in_progress_is_said(wh_home) -> None:
    h, _, _ = wh_home
    proc = hold_lock(h)
    try:
        with pytest.raises(WarehouseBusy, match=BUSY):
            replay(h, NIGHT, CHANGES)
        assert cli(h).exit_code == 3
    finally:
        proc.kill()
        proc.wait()
    proc = hold_lock(h, COMMAND)  # another what-if, not the night's run
    try:
        with pytest.raises(WarehouseBusy, match=BUSY_WHATIF):
            replay(h, NIGHT, CHANGES)
    finally:
        proc.kill()
        proc.wait()
    assert replay(h, NIGHT, {}).added == 0  # and once they are gone, it runs


def client_as(h: Home, username: str) -> TestClient:
    client = TestClient(create_app(h), follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
                       ).status_code == 303
    return client


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def text_of(page: str) -> str:
    body = page.split("<main", 1)[-1]
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"<[^>]+>", " ", body)


def test_page_result_in_chinese(wh_home) -> None:
    h, _, _ = wh_home
    client = client_as(h, "pref")
    form = client.get("/whatif")
    assert form.status_code == 200 and "户医疗自付费用门槛" in form.text and internal_codes(text_of(form.text)) == []
    res = client.post("/whatif", data={"csrf_token": csrf(form.text), "night": NIGHT.isoformat(),
                                       "p_medical_household_threshold": "5000", "p_dangerous_grades": "D",
                                       "p_split_years": "5"})  # the current value: not a change
    assert res.status_code == 200, res.text
    expected = replay(h, NIGHT, CHANGES)
    assert re.search(rf'id="whatif-added">{expected.added}<', res.text)
    assert re.search(rf'id="whatif-removed">{expected.removed}<', res.text)
    assert "住房安全未保障" in res.text and "以往属实率" in res.text
    assert internal_codes(text_of(res.text)) == []
    assert not re.search(r"\d{12}", text_of(res.text))


def test_page_errors_and_roles(wh_home) -> None:
    h, _, _ = wh_home
    client = client_as(h, "admin")
    token = csrf(client.get("/whatif").text)
    bad = client.post("/whatif", data={"csrf_token": token, "night": NIGHT.isoformat(), "p_split_years": "两年"})
    assert bad.status_code == 400 and "分户年限" in bad.text and internal_codes(text_of(bad.text)) == []
    assert client.post("/whatif", data={"night": NIGHT.isoformat()}).status_code == 403  # no CSRF token
    proc = hold_lock(h)
    try:
        busy = client.post("/whatif", data={"csrf_token": token, "night": NIGHT.isoformat(),
                                            "p_split_years": "3"})
    finally:
        proc.kill()
        proc.wait()
    assert busy.status_code == 503 and BUSY in busy.text and "Traceback" not in busy.text
    for username in ("town", "county"):
        other = client_as(h, username)
        assert other.get("/whatif").status_code == 404
        token = csrf(other.get("/inbox" if username == "town" else "/review").text)
        assert other.post("/whatif", data={"csrf_token": token, "night": NIGHT.isoformat()}).status_code == 404


def test_hits_key_is_the_engines(wh_home) -> None:
    """The comparison's key is the one the engine makes hits unique by: no hit of the night
    shares it with another (else added/removed would miscount)."""
    import duckdb

    from bidui.connectors import warehouse
    from bidui.rules.whatif import KEY

    con = duckdb.connect(str(wh_home[0].warehouse), read_only=True)
    hits = warehouse.query(con, "SELECT * FROM rule_hits WHERE night = ?", [NIGHT])
    con.close()
    keyed = hits.select([pl.col(k).cast(pl.String).fill_null("") for k in KEY])
    assert keyed.height == keyed.unique().height > 0


def test_past_truth_rate_of_the_affected_rules(wh_home) -> None:
    """属实率 of a changed rule's past clues, from verifications made through the real actions;
    under the scope asked for."""
    from sqlalchemy import select

    from bidui.clues import actions
    from bidui.clues.db import ledger_url, open_ledger
    from bidui.clues.models import Clue, User
    from bidui.clues.states import NOT_TRUE, TRUE_EXEMPT, Finding

    h, town, other = wh_home
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.write() as s:
        clerk = s.scalar(select(User).where(User.username == "town"))
        ids = list(s.scalars(select(Clue.id).where(Clue.rule_code == "DANGEROUS_HOUSE", Clue.township_code == town)
                             .order_by(Clue.id).limit(3)))
        assert len(ids) == 3
        for cid, outcome in zip(ids, (TRUE_EXEMPT, NOT_TRUE, NOT_TRUE), strict=True):
            actions.verify(s, cid, s.get(Clue, cid).version, clerk, Finding(
                outcome, None, "入户核实，情况如实记录。", clerk.real_name, "扶贫专干", date.today()))
    ledger.close()
    row = replay(h, NIGHT, CHANGES, scope_code=town).by_rule["DANGEROUS_HOUSE"]
    assert (row["verified"], row["true"], row["true_rate"]) == (3, 1, round(1 / 3, 4))
    assert replay(h, NIGHT, CHANGES, scope_code=other).by_rule["DANGEROUS_HOUSE"]["verified"] == 0
    untouched = replay(h, NIGHT, {"split_years": 3}, scope_code=town).by_rule["DANGEROUS_HOUSE"]
    assert not untouched["affected"] and untouched["verified"] == 0  # shown for the changed rules only


def test_the_default_parameters_are_within_their_domains() -> None:
    """Every default value is one the records can hold (and every domain names a real column)."""
    import tomllib

    from bidui.rules.whatif import PARAMETER_DOMAINS, check_domains

    defaults = tomllib.loads((Path(__file__).parents[1] / "bidui" / "defaults.toml").read_text())["rules"]["parameters"]
    assert set(PARAMETER_DOMAINS) <= set(defaults)
    check_domains(defaults, list(defaults))


def test_every_bad_value_is_said_at_once() -> None:
    """Two values mistyped: both named (the page named the first, the second only after a retry)."""
    from bidui.rules.whatif import parse_settings

    with pytest.raises(WhatIfError) as said:
        parse_settings(["medical_household_threshold=很多", "split_years=2.5"],
                       {"medical_household_threshold": 20000, "split_years": 3}, show_key=False)
    assert "不是数字" in str(said.value) and "须为整数" in str(said.value)
