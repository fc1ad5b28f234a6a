"""What a county reviewer's walk found (2026-12-06): a return could set any due date (2099-12-31
took a clue off every overdue list), a reason or finding had no length limit (6,600 characters
squeezed every list it showed in), and a double click on 确认销号 answered 没有销号任何线索 over
the clue the first click had closed. Each asserted on the ledger, not only on the message."""

from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import func, select, update

from bidui.clues import actions
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue, ClueEvent
from bidui.clues.states import (
    MAX_FINDING,
    MAX_REASON,
    MAX_RETURN_DAYS,
    MAX_SIGNER,
    NOT_TRUE,
    RETURNED,
    TRUE_FIXED,
    VERIFIED,
    Finding,
    TransitionError,
    return_problems,
)
from tests.test_web import client_for, clue_ids, csrf, login

TODAY = date(2026, 12, 6)


def _finding(text: str = "已按程序清退", outcome: str = TRUE_FIXED) -> Finding:
    return Finding(outcome, "清退出列" if outcome == TRUE_FIXED else None, text, "张三", "扶贫专干", date(2026, 11, 21))


def test_a_returns_due_date_is_between_today_and_the_limit_and_its_reason_is_bounded() -> None:
    latest = TODAY + timedelta(days=MAX_RETURN_DAYS)
    assert return_problems("材料不全", latest, TODAY) == []
    assert return_problems("材料不全", None, TODAY) == []  # (the CLI's return without a new date)
    assert return_problems("材料不全", latest + timedelta(days=1), TODAY) == [
        f"新的截止日期不能晚于 {latest.isoformat()}（退回后最多再给 {MAX_RETURN_DAYS} 天）"]
    assert return_problems("材料不全", date(2099, 12, 31), TODAY)
    assert return_problems("材料不全", TODAY - timedelta(days=1), TODAY) == ["新的截止日期不能早于今天"]
    assert return_problems("  ", TODAY, TODAY) == ["退回须说明理由"]
    assert return_problems("字" * MAX_REASON, TODAY, TODAY) == []
    assert return_problems("字" * (MAX_REASON + 1), TODAY, TODAY) == [
        f"退回理由不能超过 {MAX_REASON} 字（现有 {MAX_REASON + 1} 字），请精简"]
    assert _finding("字" * MAX_FINDING).problems(TODAY) == []
    assert _finding("字" * (MAX_FINDING + 1)).problems(TODAY) == [
        f"核实情况说明不能超过 {MAX_FINDING} 字（现有 {MAX_FINDING + 1} 字），请精简后再签字"]
    too_long_name = Finding(TRUE_FIXED, "清退出列", "已清退", "张" * (MAX_SIGNER + 1), "扶贫专干", date(2026, 11, 21))
    assert too_long_name.problems(TODAY) == [f"核实人姓名不能超过 {MAX_SIGNER} 字"]


def _state(home, clue_id: int) -> tuple:
    ledger = open_ledger(ledger_url(home.ledger))
    try:
        with ledger.read() as s:
            c = s.get(Clue, clue_id)
            events = s.scalar(select(func.count()).where(ClueEvent.clue_id == clue_id))
            return c.status, c.version, c.due_date, c.return_reason, c.finding, events
    finally:
        ledger.close()


def _verified(home, town: str, finding: str = "已按程序清退") -> int:
    clue = clue_ids(home, town)[0]
    t = client_for(home)
    login(t, "town")
    r = t.post(f"/clues/{clue}/verify", data={"csrf_token": csrf(t, f"/clues/{clue}"), "version": 1,
                                              "outcome": TRUE_FIXED, "action": "清退出列", "finding": finding,
                                              "verified_on": "2026-11-21"})
    assert r.status_code == 303
    return clue


def test_a_return_with_a_far_due_date_or_a_long_reason_changes_nothing(home) -> None:
    h, town, _ = home
    clue = _verified(h, town)
    before = _state(h, clue)
    county = client_for(h)
    login(county, "county")
    far = (date.today() + timedelta(days=MAX_RETURN_DAYS + 1)).isoformat()
    # the queue's batch return, and the clue page's own
    r = county.post("/review", data={"csrf_token": csrf(county, "/review"), "decision": "return", "clue": f"{clue}:2",
                                     "reason": "材料不全", "due": "2099-12-31"})
    assert r.status_code == 400 and "新的截止日期不能晚于" in r.text and "没有退回任何线索" in r.text
    r = county.post(f"/clues/{clue}/review", data={"csrf_token": csrf(county, f"/clues/{clue}"), "version": 2,
                                                   "decision": "return", "reason": "材料不全", "due": far})
    assert r.status_code == 400 and "新的截止日期不能晚于" in r.text
    r = county.post(f"/clues/{clue}/review", data={"csrf_token": csrf(county, f"/clues/{clue}"), "version": 2,
                                                   "decision": "return", "reason": "长" * (MAX_REASON + 1),
                                                   "due": date.today().isoformat()})
    assert r.status_code == 400 and f"退回理由不能超过 {MAX_REASON} 字" in r.text
    assert _state(h, clue) == before
    # The form says the window before sending: the date field's bounds and the reason's length.
    page = county.get(f"/clues/{clue}").text
    limit = (date.today() + timedelta(days=MAX_RETURN_DAYS)).isoformat()
    assert f'max="{limit}"' in page and f'maxlength="{MAX_REASON}"' in page


def test_a_finding_over_the_limit_is_not_signed(home) -> None:
    h, town, _ = home
    clue = clue_ids(h, town)[0]
    before = _state(h, clue)
    t = client_for(h)
    login(t, "town")
    page = t.get(f"/clues/{clue}").text
    assert f'maxlength="{MAX_FINDING}"' in page
    r = t.post(f"/clues/{clue}/verify", data={"csrf_token": csrf(t, f"/clues/{clue}"), "version": 1,
                                              "outcome": NOT_TRUE, "finding": "查" * (MAX_FINDING + 1),
                                              "verified_on": "2026-11-21"})
    assert r.status_code == 400 and f"核实情况说明不能超过 {MAX_FINDING} 字" in r.text
    assert _state(h, clue) == before


def test_a_double_click_on_close_or_return_is_done_once_and_said_so(home) -> None:
    h, town, _ = home
    first = _verified(h, town)
    county = client_for(h)
    login(county, "county")
    token = csrf(county, "/review")
    for _ in range(2):  # the same form sent twice, as a double click sends it
        r = county.post("/review", data={"csrf_token": token, "decision": "close", "clue": f"{first}:2",
                                         "confirmed": "yes"})
        assert r.status_code == 303
        shown = county.get(r.headers["location"]).text
        assert "已销号 1 条" in shown and "没有销号任何线索" not in shown
    status, version, *_, events = _state(h, first)
    assert (status, version) == ("closed", 3) and events == 3  # published, verified, closed: once
    # A return sent twice from the clue's page: returned once, the second says it is done.
    ids = clue_ids(h, town)
    second = _verified_other(h, ids[1])
    due = (date.today() + timedelta(days=5)).isoformat()
    token = csrf(county, f"/clues/{second}")
    for _ in range(2):
        r = county.post(f"/clues/{second}/review", data={"csrf_token": token, "version": 2, "decision": "return",
                                                         "reason": "请补充照片", "due": due})
        assert r.status_code == 303
    status, version, day, reason, _, events = _state(h, second)
    assert (status, version, day.isoformat(), reason, events) == (RETURNED, 3, due, "请补充照片", 3)


def _verified_other(home, clue: int) -> int:
    t = client_for(home)
    login(t, "town")
    r = t.post(f"/clues/{clue}/verify", data={"csrf_token": csrf(t, f"/clues/{clue}"), "version": 1,
                                              "outcome": TRUE_FIXED, "action": "清退出列", "finding": "已清退",
                                              "verified_on": "2026-11-21"})
    assert r.status_code == 303
    return clue


def test_only_ones_own_very_last_action_counts_as_sent_again(home) -> None:
    """Anything else at a stale version is still a conflict: another reviewer's close, another
    return reason, a different finding, or an action with something between."""
    h, town, _ = home
    clue = clue_ids(h, town)[-1]
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        with ledger.read() as s:
            from bidui.clues.models import User

            county = s.scalar(select(User).where(User.username == "county"))
            town_user = s.scalar(select(User).where(User.username == "town"))
        # the township's signing sent again: done; with another text: a conflict
        for _ in range(2):
            with ledger.write() as s:
                assert actions.verify(s, clue, 1, town_user, _finding(), TODAY).version == 2
        try:
            with ledger.write() as s:
                actions.verify(s, clue, 1, town_user, _finding("另一段说明"), TODAY)
            raise AssertionError("a different finding at a stale version was taken")
        except actions.ConflictError:
            pass
        with ledger.write() as s:
            actions.send_back(s, clue, 2, county, "材料不全", TODAY + timedelta(days=3), TODAY)
        for reason, due in (("另一个理由", TODAY + timedelta(days=3)), ("材料不全", TODAY + timedelta(days=4))):
            try:
                with ledger.write() as s:
                    actions.send_back(s, clue, 2, county, reason, due, TODAY)
                raise AssertionError("another return at a stale version was taken")
            except actions.ConflictError:
                pass
        # the return made it 3; a close at 2 is not a repeat of anything of the county's
        try:
            with ledger.write() as s:
                actions.close(s, clue, 2, county)
            raise AssertionError("a close at a stale version was taken")
        except (actions.ConflictError, TransitionError):
            pass
        with ledger.read() as s:
            c = s.get(Clue, clue)
            assert (c.status, c.version, c.return_reason) == (RETURNED, 3, "材料不全")
        # two steps on, the same action is no repeat: the township signed again since
        with ledger.write() as s:
            actions.verify(s, clue, 3, town_user, _finding(), TODAY)
        try:
            with ledger.write() as s:
                actions.verify(s, clue, 1, town_user, _finding(), TODAY)
            raise AssertionError("a signing two versions stale was taken")
        except actions.ConflictError:
            pass
        with ledger.read() as s:
            assert s.get(Clue, clue).status == VERIFIED
            assert s.scalar(select(func.count()).where(ClueEvent.clue_id == clue, ClueEvent.kind == "verify")) == 2
    finally:
        ledger.close()


def test_a_long_reason_stored_before_the_limit_is_shortened_in_the_lists(home) -> None:
    h, town, _ = home
    clue = _verified(h, town)
    county = client_for(h)
    login(county, "county")
    r = county.post(f"/clues/{clue}/review", data={"csrf_token": csrf(county, f"/clues/{clue}"), "version": 2,
                                                   "decision": "return", "reason": "请补充照片",
                                                   "due": date.today().isoformat()})
    assert r.status_code == 303
    long = "这是一段很长的退回理由" * 60  # as a ledger of an earlier version may hold one
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        with ledger.write() as s:
            s.execute(update(Clue).where(Clue.id == clue).values(return_reason=long))
    finally:
        ledger.close()
    t = client_for(h)
    login(t, "town")
    inbox = t.get("/inbox").text
    shown = re.search(r'<div class="reason">退回理由：([^<]*)</div>', inbox).group(1)
    assert shown.endswith("…") and len(shown) <= 81 and long not in inbox
    assert long in t.get(f"/clues/{clue}").text  # the clue's page has it whole


def test_the_history_says_what_an_amendment_replaced(home) -> None:
    """A reviewer saw 核实签字 不属实, then 修改核实结论 twice in a minute, and not that 不属实 had
    become 属实 nor what the first text said (stored in the event, never shown)."""
    h, town, _ = home
    clue = clue_ids(h, town)[0]
    t = client_for(h)
    login(t, "town")
    r = t.post(f"/clues/{clue}/verify", data={"csrf_token": csrf(t, f"/clues/{clue}"), "version": 1,
                                              "outcome": NOT_TRUE, "finding": "挂名，已停业", "verified_on": "2026-11-21"})
    assert r.status_code == 303
    r = t.post(f"/clues/{clue}/amend", data={"csrf_token": csrf(t, f"/clues/{clue}"), "version": 2,
                                             "outcome": TRUE_FIXED, "action": "清退出列", "finding": "车辆在用",
                                             "verified_on": "2026-11-21"})
    assert r.status_code == 303, r.text[:500]
    county = client_for(h)
    login(county, "county")
    history = county.get(f"/clues/{clue}").text.rsplit("处理记录", 1)[1]
    assert "核实签字</td>" in history or "核实签字" in history
    assert "不属实：挂名，已停业" in history
    assert "属实·已整改（清退出列）：车辆在用；原为 不属实：挂名，已停业" in history
    printed = county.get(f"/clues/{clue}/print").text
    assert "原为 不属实：挂名，已停业" in printed


def test_line_breaks_count_once_and_invisible_text_is_no_text() -> None:
    """A textarea sends CRLF, which Python counted twice where the browser's maxlength counted once
    (1,999 characters let through were refused as 2,018); a finding or a reason of only zero-width
    characters was signed as one (a red-team pass)."""
    lines = "第一行\r\n" * 400  # 1,600 characters as the browser counts them, 2,000 as CRLF
    assert len(lines) == 2000 and _finding(lines + "查" * 399).problems(TODAY) == []
    assert _finding("查" * 2001).problems(TODAY) != []
    for invisible in ("\u200b", "\u2060\ufeff", " \u200b "):
        assert "须说明整改情况" in _finding(invisible).problems(TODAY)
        assert return_problems(invisible, TODAY, TODAY) == ["退回须说明理由"]
        unsigned = Finding(TRUE_FIXED, "清退出列", "已清退", invisible, invisible, date(2026, 11, 21))
        assert unsigned.problems(TODAY) == ["须由核实人签字（姓名）", "须填写核实人职务"]
    assert actions.finding_values(_finding("入户\r\n核实\u200b")) ["finding"] == "入户\n核实"
