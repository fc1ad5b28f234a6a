"""Verdicts that teach the linker, the people's side (issue 18, part 3): 不属实 with 不是本人 on the
clue page and in the workbook makes the clue's records cannot-links, 属实 on a 待确认 link makes a
must-link, a changed finding revokes them; the task force's list is scoped, Chinese, and revokes
with a reason, audited."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bidui.clues import actions, link_decisions
from bidui.clues.models import AuditEvent, Clue, LinkDecision, User
from bidui.clues.present import NOT_SELF_CHOICE, WORKBOOK_NOT_SELF
from bidui.clues.states import NOT_SELF, NOT_TRUE, TRUE_EXEMPT, TRUE_FIXED, Finding, TransitionError
from bidui.clues.users import add_user
from bidui.clues.workbook import WorkbookError, import_workbook, write_workbook
from tests.conftest import PASSWORD
from tests.ledger_support import fill_workbook
from tests.present_support import internal_codes
from tests.test_web import client_for, csrf, login
from tests.test_web_work import write

TODAY = date.today()
VISITED = TODAY - timedelta(days=2)  # the visit, signed two days before the clerk recorded it


def page_text(html: str) -> str:
    main = html.split("<main>", 1)[-1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


def pick(h, town: str) -> tuple[int, int]:
    """An open clue of the township standing on a linked department record, and one on no link."""
    def find(s):
        linked = bare = None
        for clue in s.scalars(select(Clue).where(Clue.township_code == town, Clue.status == "dispatched")
                              .order_by(Clue.id)):
            has = bool(link_decisions.records_of(s, clue))
            if has and linked is None and clue.evidence_dataset not in ("hukou", "register_members"):
                linked = clue.id
            if not has and bare is None:
                bare = clue.id
        return linked, bare
    linked, bare = write(h, find)
    assert linked and bare
    return linked, bare


def decisions(h, clue_id: int | None = None) -> list[LinkDecision]:
    def do(s):
        q = select(LinkDecision).order_by(LinkDecision.id)
        rows = s.scalars(q.where(LinkDecision.clue_id == clue_id) if clue_id else q).all()
        s.expunge_all()
        return rows
    return write(h, do)


def finding(outcome: str, detail: str | None = None, who: str = "王秀兰") -> Finding:
    return Finding(outcome, "数据已更正" if outcome == TRUE_FIXED else None, "入户核实", who, "扶贫专干", TODAY, detail)


def test_a_finding_says_not_self_only_with_not_true() -> None:
    assert finding(NOT_TRUE, NOT_SELF).problems(TODAY) == []
    assert finding(NOT_TRUE).problems(TODAY) == []
    wrong = finding(TRUE_EXEMPT, NOT_SELF).problems(TODAY)
    assert len(wrong) == 1 and "不属实" in wrong[0] and internal_codes(wrong[0]) == []
    unknown = finding(NOT_TRUE, "搬走了").problems(TODAY)
    assert len(unknown) == 1 and "不是本人" in unknown[0]


def test_not_self_on_the_clue_page_makes_the_records_cannot_links(home) -> None:
    h, town, _ = home
    linked, bare = pick(h, town)
    c = client_for(h)
    login(c, "town")
    page = c.get(f"/clues/{linked}").text
    assert NOT_SELF_CHOICE in page and f'value="{NOT_SELF}"' in page
    assert NOT_SELF_CHOICE not in c.get(f"/clues/{bare}").text  # nothing to keep apart
    expected = write(h, lambda s: link_decisions.records_of(s, s.get(Clue, linked)))
    r = c.post(f"/clues/{linked}/verify", data={
        "csrf_token": csrf(c, f"/clues/{linked}"), "version": 1, "outcome": NOT_TRUE, "detail": NOT_SELF,
        "finding": "入户核实，车辆登记在同名他人名下", "verified_on": str(VISITED)})
    assert r.status_code == 303
    assert "不再把这条记录关联到本人" in c.get(r.headers["location"]).text  # the flash
    made = decisions(h, linked)
    assert [(d.kind, d.dataset, d.role, d.record_id_number, d.record_name, d.person_key) for d in made] == [
        (link_decisions.CANNOT, e.dataset, e.role, e.id_number, e.name, e.person_key) for e in expected]
    assert all(d.verifier_name == "王秀兰" and d.decided_by == "town" and d.township_code == town for d in made)
    clue = write(h, lambda s: s.get(Clue, linked))
    assert (clue.outcome, clue.outcome_detail) == (NOT_TRUE, NOT_SELF)
    shown = page_text(c.get(f"/clues/{linked}").text)
    assert "不属实（不是本人）" in shown and "不再把它关联到本人" in shown
    history = shown.rsplit("处理记录", 1)[1]
    assert ("不属实（不是本人）：入户核实，车辆登记在同名他人名下；记录不是本人：以后的比对不再把这条记录关联到本人"
            in history)
    assert internal_codes(shown) == []
    pairs = write(h, link_decisions.for_linking)
    assert {(p["kind"], p["id_number"], p["person_key"]) for p in pairs} == {
        (link_decisions.CANNOT, e.id_number, e.person_key) for e in expected}
    # The link explanation says 「…于<date>入户核实」: the day of the visit, not of the recording.
    assert {p["decided_on"] for p in pairs} == {VISITED}
    # The county closing it changes nothing of the decision.
    assert "不属实（不是本人）" in page_text(c.get(f"/clues/{linked}/print").text)  # the printed record
    assert "不属实（不是本人）" in page_text(c.get(f"/households/{clue.household_code}/print").text)  # 一户一档
    county = client_for(h)
    login(county, "county")
    queue = page_text(county.get("/review").text)
    assert "不属实（不是本人）" in queue and 'href="/admin/link-decisions"' in county.get("/review").text
    county.post(f"/clues/{linked}/review", data={"csrf_token": csrf(county, f"/clues/{linked}"), "version": 2,
                                                 "decision": "close"})
    assert write(h, lambda s: s.get(Clue, linked).status) == "closed"
    assert [d.revoked_at for d in decisions(h, linked)] == [None] * len(expected)


def test_not_self_on_a_clue_on_no_link_is_refused_and_nothing_is_written(home) -> None:
    h, town, _ = home
    _, bare = pick(h, town)
    c = client_for(h)
    login(c, "town")
    r = c.post(f"/clues/{bare}/verify", data={
        "csrf_token": csrf(c, f"/clues/{bare}"), "version": 1, "outcome": NOT_TRUE, "detail": NOT_SELF,
        "finding": "不是本人", "verified_on": str(TODAY)})
    assert r.status_code == 400 and actions.NOT_ON_A_LINK.format(choice=NOT_SELF) in r.text
    clue = write(h, lambda s: s.get(Clue, bare))
    assert (clue.status, clue.outcome, clue.outcome_detail, clue.version) == ("dispatched", None, None, 1)
    assert decisions(h) == []
    # The box left ticked while another outcome is chosen does not count (it is hidden then).
    r = c.post(f"/clues/{bare}/verify", data={
        "csrf_token": csrf(c, f"/clues/{bare}"), "version": 1, "outcome": TRUE_EXEMPT, "detail": NOT_SELF,
        "finding": "申请豁免", "verified_on": str(TODAY)})
    assert r.status_code == 303 and write(h, lambda s: s.get(Clue, bare).outcome_detail) is None


def test_amending_to_true_revokes_and_a_review_link_found_true_is_a_must_link(home) -> None:
    h, town, _ = home
    linked, _ = pick(h, town)
    write(h, lambda s: s.execute(update(Clue).where(Clue.id == linked).values(link_method="review")))
    user = write(h, lambda s: s.scalar(select(User).where(User.username == "town")))
    write(h, lambda s: actions.verify(s, linked, 1, user, finding(NOT_TRUE, NOT_SELF)))
    cannot = decisions(h, linked)
    assert cannot and {d.kind for d in cannot} == {link_decisions.CANNOT}
    # An amendment goes through the usual version check first.
    with pytest.raises(actions.ConflictError):
        write(h, lambda s: actions.amend(s, linked, 1, user, finding(TRUE_EXEMPT)))
    write(h, lambda s: actions.amend(s, linked, 2, user, finding(TRUE_EXEMPT)))
    after = decisions(h, linked)
    assert all(d.revoked_at is not None and d.revoke_reason == actions.CHANGED and d.revoked_by == "town"
               for d in after if d.kind == link_decisions.CANNOT)
    must = [d for d in after if d.kind == link_decisions.MUST and d.revoked_at is None]
    assert [(d.record_id_number, d.person_key) for d in must] == [(d.record_id_number, d.person_key) for d in cannot]
    assert {p["kind"] for p in write(h, link_decisions.for_linking)} == {link_decisions.MUST}
    c = client_for(h)
    login(c, "town")
    shown = page_text(c.get(f"/clues/{linked}").text)
    assert "原先的关联决定已撤销；已确认是本人" in shown and "原先“不是本人”的决定已撤销（核实结论已修改）" in shown
    assert write(h, lambda s: s.scalar(select(AuditEvent.kind).where(AuditEvent.kind == "link_decision_revoked")))
    # Not on a 待确认 link: 属实 teaches nothing.
    other = write(h, lambda s: s.scalar(select(Clue.id).where(Clue.township_code == town, Clue.id != linked,
                                                               Clue.status == "dispatched", Clue.link_method == "exact")))
    write(h, lambda s: actions.verify(s, other, 1, user, finding(TRUE_EXEMPT)))
    assert decisions(h, other) == []



def test_a_returned_finding_stops_teaching_and_another_clues_verdict_stands_on_its_own(home) -> None:
    """The county returning a 不是本人 finding withdraws its cannot-links until the township signs
    again; and when two clues say 不是本人 of the same record and person, amending one leaves the
    other's decision in force."""
    from bidui.clues.models import EvidenceSnapshot

    h, town, _ = home
    linked, _ = pick(h, town)
    town_user = write(h, lambda s: s.scalar(select(User).where(User.username == "town")))
    county_user = write(h, lambda s: s.scalar(select(User).where(User.username == "county")))
    write(h, lambda s: actions.verify(s, linked, 1, town_user, finding(NOT_TRUE, NOT_SELF)))
    assert {p["kind"] for p in write(h, link_decisions.for_linking)} == {link_decisions.CANNOT}
    write(h, lambda s: actions.send_back(s, linked, 2, county_user, "请入户核对身份证原件"))
    returned = decisions(h, linked)
    assert returned and all(d.revoked_at is not None and d.revoke_reason == actions.RETURNED
                            and d.revoked_by == "county" for d in returned)
    assert write(h, link_decisions.for_linking) == []  # the next night links as if it had not been said
    c = client_for(h)
    login(c, "town")
    history = page_text(c.get(f"/clues/{linked}").text).rsplit("处理记录", 1)[1]
    assert "原先的关联决定已撤销" in history and internal_codes(history) == []
    # Signed again: decided again.
    write(h, lambda s: actions.verify(s, linked, 3, town_user, finding(NOT_TRUE, NOT_SELF)))
    assert [d.kind for d in decisions(h, linked) if d.revoked_at is None] == [link_decisions.CANNOT] * len(returned)

    # A second clue standing on the same record and person (another rule's question about it).
    def twin(s):
        first = s.get(Clue, linked)
        other = s.scalar(select(Clue).where(Clue.township_code == town, Clue.id != linked, Clue.status == "dispatched")
                         .order_by(Clue.id))
        other.evidence_dataset = first.evidence_dataset
        evidence = s.scalar(select(EvidenceSnapshot.record).where(EvidenceSnapshot.clue_id == linked)
                            .order_by(EvidenceSnapshot.id.desc()).limit(1))
        s.add(EvidenceSnapshot(clue_id=other.id, night=TODAY, evidence_hash="twin", record=evidence))
        return other.id
    second = write(h, twin)
    write(h, lambda s: actions.verify(s, second, 1, town_user, finding(NOT_TRUE, NOT_SELF)))
    assert len([d for d in decisions(h, second) if d.revoked_at is None]) == len(returned)  # its own rows
    write(h, lambda s: actions.amend(s, linked, 4, town_user, finding(TRUE_EXEMPT)))
    pairs = {(p["kind"], p["id_number"], p["person_key"]) for p in write(h, link_decisions.for_linking)}
    assert pairs == {(link_decisions.CANNOT, d.record_id_number, d.person_key) for d in returned}

def test_the_workbook_says_not_self_as_a_fourth_outcome(home, tmp_path: Path) -> None:
    import zipfile

    h, town, _ = home
    linked, bare = pick(h, town)
    user = write(h, lambda s: s.scalar(select(User).where(User.username == "town")))
    src = tmp_path / "wb.xlsx"
    write(h, lambda s: write_workbook(s, town, src, "k", "town"))
    with zipfile.ZipFile(src) as z:
        assert WORKBOOK_NOT_SELF in z.read("xl/worksheets/sheet1.xml").decode()
    row = {"核实结论": WORKBOOK_NOT_SELF, "核实情况说明": "车辆登记在同名他人名下", "核实人": "王秀兰", "职务": "扶贫专干",
           "核实日期": TODAY}
    refused = tmp_path / "refused.xlsx"
    fill_workbook(src, refused, {linked: row, bare: row})
    with pytest.raises(WorkbookError) as info:
        write(h, lambda s: import_workbook(s, refused, user, "k", TODAY))
    assert len(info.value.problems) == 1 and f"线索 {bare}" in info.value.problems[0]
    assert "不能选“不属实（不是本人）”" in info.value.problems[0] and decisions(h) == []
    good = tmp_path / "good.xlsx"
    fill_workbook(src, good, {linked: row})
    write(h, lambda s: import_workbook(s, good, user, "k", TODAY))
    clue = write(h, lambda s: s.get(Clue, linked))
    expected = write(h, lambda s: link_decisions.records_of(s, s.get(Clue, linked)))
    assert (clue.outcome, clue.outcome_detail) == (NOT_TRUE, NOT_SELF)
    assert [(d.kind, d.record_id_number, d.record_name, d.person_key) for d in decisions(h, linked)] == [
        (link_decisions.CANNOT, e.id_number, e.name, e.person_key) for e in expected]
    with pytest.raises(TransitionError):  # the action itself refuses too (the web form's path)
        write(h, lambda s: actions.verify(s, bare, 1, user, finding(NOT_TRUE, NOT_SELF)))


def test_the_task_forces_list_is_scoped_chinese_and_revokes_with_a_reason(home) -> None:
    h, town, other_town = home
    linked, _ = pick(h, town)
    user = write(h, lambda s: s.scalar(select(User).where(User.username == "town")))
    write(h, lambda s: actions.verify(s, linked, 1, user, finding(NOT_TRUE, NOT_SELF)))
    made = decisions(h, linked)
    first = made[0]
    # Another county's reviewer (the tiny prefecture has one county: a code beside it).
    far = town[:4] + "99000000"
    write(h, lambda s: add_user(s, "farcounty", "远县", "county", far, PASSWORD, "审核员"))
    pref = client_for(h)
    login(pref, "pref")
    page = pref.get("/admin/link-decisions")
    assert page.status_code == 200
    text = page_text(page.text)
    assert internal_codes(text) == [], internal_codes(text)
    assert "不是本人（不再关联）" in text and f"线索 {linked}" in text and "生效" in text and "王秀兰" in text
    assert first.record_id_number not in page.text and first.record_name not in text  # masked
    assert f"编号 {first.id}" in text  # the number the audit log calls it by
    # Whose account signed (the person it belongs to: a page for people names no login).
    assert re.search(r"用.+?的账号签字", text) and "签字账号：" not in text
    county = client_for(h)
    login(county, "county")
    assert f'href="/clues/{linked}"' in county.get("/admin/link-decisions").text
    assert "撤销理由" not in county.get("/admin/link-decisions").text  # a county reads only
    far_client = client_for(h)
    login(far_client, "farcounty")
    assert f"线索 {linked}" not in far_client.get("/admin/link-decisions").text
    town_client = client_for(h)
    login(town_client, "town")
    assert town_client.get("/admin/link-decisions").status_code == 404
    token = csrf(pref, "/admin/link-decisions")
    url = f"/admin/link-decisions/{first.id}/revoke"
    assert pref.post(url, data={"reason": "同名误判"}).status_code == 403  # no CSRF token
    r = pref.post(url, data={"csrf_token": token, "reason": "  "})
    assert r.status_code == 400 and "撤销须说明理由" in r.text
    assert county.post(url, data={"csrf_token": csrf(county, "/admin/link-decisions"), "reason": "x"}).status_code == 404
    assert far_client.get("/admin/link-decisions").status_code == 200
    assert all(d.revoked_at is None for d in decisions(h, linked))
    # Asked once more first (it may send a clue back to a township), the reason carried along.
    ask = pref.post(url, data={"csrf_token": token, "reason": "复核后确认是本人"})
    assert ask.status_code == 200 and "请确认" in ask.text and 'value="复核后确认是本人"' in ask.text
    assert "退回乡镇重新核实" in ask.text and all(d.revoked_at is None for d in decisions(h, linked))
    r = pref.post(url, data={"csrf_token": token, "reason": "复核后确认是本人", "confirmed": "1"})
    assert r.status_code == 303
    assert "已撤销关联决定" in pref.get(r.headers["location"]).text
    done = next(d for d in decisions(h, linked) if d.id == first.id)
    assert (done.revoked_by, done.revoke_reason) == ("pref", "复核后确认是本人") and done.revoked_at is not None
    assert all(p["id_number"] != first.record_id_number or p["person_key"] != first.person_key
               for p in write(h, link_decisions.for_linking))
    audit = write(h, lambda s: s.scalar(select(AuditEvent).where(AuditEvent.kind == "link_decision_revoked")
                                        .order_by(AuditEvent.id.desc()).limit(1)))
    assert audit.actor == "pref" and audit.payload["reason"] == "复核后确认是本人"
    shown = page_text(pref.get("/admin/link-decisions?state=revoked").text)
    assert "已撤销" in shown and "复核后确认是本人" in shown and "陈静" in shown
    assert f"线索 {linked}" not in page_text(pref.get("/admin/link-decisions?state=active").text) or len(made) > 1
    admin = client_for(h)
    login(admin, "admin")
    audit_view = page_text(admin.get("/admin").text).split("操作记录（最近")[1]
    assert "撤销关联决定" in audit_view and "复核后确认是本人" in audit_view
    assert set(internal_codes(audit_view)) <= {"pref", "town"}  # accounts under their people, by login name
    assert "陈静" in audit_view and "账号 pref" in audit_view  # who: the person first
    assert f'href="/admin/link-decisions#decision-{first.id}"' in admin.get("/admin").text
    assert 'href="/admin/link-decisions"' in admin.get("/admin").text
    # The clue page says it is revoked.
    assert "决定已撤销（复核后确认是本人）" in page_text(town_client.get(f"/clues/{linked}").text)
    assert other_town  # the neighbouring township shares the county (its reviewer sees both)


def test_an_amended_not_self_finding_speaks_with_its_new_signature(home) -> None:
    """Amending a 不是本人 finding keeps the decision (it says the same); the link explanation's
    「<verifier>于<date>入户核实」 then names the amended signature, not the first one."""
    h, town, _ = home
    linked, _ = pick(h, town)
    first, amended = TODAY - timedelta(days=5), TODAY - timedelta(days=1)

    def act(s):
        user = s.scalar(select(User).where(User.username == "town"))
        actions.verify(s, linked, s.get(Clue, linked).version, user,
                       Finding(NOT_TRUE, None, "入户核实", "王秀兰", "扶贫专干", first, NOT_SELF), today=TODAY)
        actions.amend(s, linked, s.get(Clue, linked).version, user,
                      Finding(NOT_TRUE, None, "入户核实，更正日期与签字人", "王秀芝", "扶贫专干", amended, NOT_SELF),
                      today=TODAY)
        kept = s.scalars(select(LinkDecision).where(LinkDecision.clue_id == linked,
                                                    LinkDecision.revoked_at.is_(None))).all()
        return len(kept), {(p["verifier_name"], p["decided_on"]) for p in link_decisions.for_linking(s)
                           if p["clue_id"] == linked}

    kept, said = write(h, act)
    assert kept >= 1
    assert said == {("王秀芝", amended)}


def _linked_clues(h, town: str, n: int) -> list[int]:
    """`n` open clues of the township standing on linked department records."""
    def find(s):
        return [c.id for c in s.scalars(select(Clue).where(Clue.township_code == town, Clue.status == "dispatched")
                                         .order_by(Clue.id))
                if c.evidence_dataset not in ("hukou", "register_members") and link_decisions.records_of(s, c)][:n]
    found = write(h, find)
    assert len(found) == n
    return found


def test_a_revoked_verdict_sends_its_finding_back_and_a_closed_clues_history_says_so(home) -> None:
    """The task force revokes a 不是本人 decision (a clerk's browser walk, 2026-12-06: the clue stayed
    已核实待审核 on an overturned verdict, with nothing in its history, and the county could close
    it). A finding awaiting review goes back to the township, with a fresh due date; a closed clue
    stays closed and its history says what was revoked and why."""
    h, town, _ = home
    waiting, closed = _linked_clues(h, town, 2)

    def sign(s):
        town_user = s.scalar(select(User).where(User.username == "town"))
        for clue_id in (waiting, closed):
            actions.verify(s, clue_id, s.get(Clue, clue_id).version, town_user, finding(NOT_TRUE, NOT_SELF))
        actions.close(s, closed, s.get(Clue, closed).version, s.scalar(select(User).where(User.username == "county")))
        return {i: (s.get(Clue, i).due_date - s.get(Clue, i).first_seen) for i in (waiting, closed)}
    windows = write(h, sign)
    pref = client_for(h)
    login(pref, "pref")
    token = csrf(pref, "/admin/link-decisions")
    for clue_id, said in ((waiting, "已退回乡镇重新核实"), (closed, None)):
        decision = next(d for d in decisions(h, clue_id) if d.revoked_at is None)
        r = pref.post(f"/admin/link-decisions/{decision.id}/revoke",
                      data={"csrf_token": token, "reason": "复核后确认是本人", "confirmed": "1"})
        assert r.status_code == 303
        flash = pref.get(r.headers["location"]).text
        assert (said in flash) if said else ("保持销号" in flash and "已退回" not in flash), flash
    state = write(h, lambda s: {i: (s.get(Clue, i).status, s.get(Clue, i).return_reason, s.get(Clue, i).due_date)
                                for i in (waiting, closed)})
    status, reason, due = state[waiting]
    assert status == "returned" and "复核后确认是本人" in reason and "请重新核实" in reason
    assert due == date.today() + timedelta(days=15)  # what a county's return gives ([clues] due_days)
    assert windows  # (the clues' first windows: not what a revocation gives)
    assert all(d.revoked_at is not None for d in decisions(h, waiting))
    assert state[closed][0] == "closed"

    def close_again(s):
        actions.close(s, waiting, s.get(Clue, waiting).version, s.scalar(select(User).where(User.username == "county")))
    with pytest.raises(TransitionError):  # not on the overturned verdict
        write(h, close_again)
    town_client = client_for(h)
    login(town_client, "town")
    page = page_text(town_client.get(f"/clues/{waiting}").text)
    assert "已退回" in page and "“不是本人（不再关联）”的认定已被撤销（理由：复核后确认是本人），请重新核实" in page
    assert "陈静" in page  # who sent it back: the task force's person, in its history
    assert internal_codes(page) == [], internal_codes(page)
    history = page_text(town_client.get(f"/clues/{closed}").text)
    assert "撤销关联认定" in history and "“不是本人（不再关联）”的认定已撤销（理由：复核后确认是本人）" in history
    assert internal_codes(history) == [], internal_codes(history)
    # The verification form is open again for the returned clue, its finding as signed but not the
    # overturned 不是本人; not for the closed one.
    form = town_client.get(f"/clues/{waiting}").text.split('id="verify-form"', 1)[1].split("</form>", 1)[0]
    assert ">入户核实</textarea>" in form and " selected>" not in form  # the conclusion is drawn again
    assert re.search(r'<input type="checkbox" id="detail" name="detail" value="不是本人"\s*>', form), form
    assert 'name="verified_on"' not in town_client.get(f"/clues/{closed}").text
