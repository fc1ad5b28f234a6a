"""The township's and the county's work in the web app (issue 16): the inbox's order and search,
next clue after signing, amending one's own finding, the stored signature, the first sign-in
profile, forms that keep what was typed, the review queue (filters, pages, confirmation, a new
due date on return) and the printed record."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update

from bidui.clues import actions
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue, ClueEvent, PublishRun, User
from bidui.clues.states import Finding
from bidui.clues.users import add_user
from bidui.ids import upgrade_15
from tests.conftest import PASSWORD
from tests.test_web import client_for, clue_ids, csrf, login

TODAY = date.today()


def write(h, fn):
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        with ledger.write() as s:
            return fn(s)
    finally:
        ledger.close()


def order_on_page(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<td data-label="对象"><a href="/clues/(\d+)"', page)]


def sign(h, clue_id: int, username: str = "town", outcome: str = "不属实", finding: str = "入户核实，车辆已过户") -> None:
    def do(s):
        clue = s.get(Clue, clue_id)
        user = s.scalar(select(User).where(User.username == username))
        actions.verify(s, clue_id, clue.version, user, Finding(outcome, None, finding, user.real_name, user.position,
                                                               TODAY))
    write(h, do)


def test_the_inbox_puts_returned_first_then_overdue_then_by_due_date(home) -> None:
    h, town, _ = home
    ids = clue_ids(h, town)
    returned, late, soon, later = ids[5], ids[9], ids[2], ids[0]

    def arrange(s):
        s.execute(update(Clue).where(Clue.township_code == town).values(due_date=TODAY + timedelta(days=30)))
        s.execute(update(Clue).where(Clue.id == late).values(due_date=TODAY - timedelta(days=2)))
        s.execute(update(Clue).where(Clue.id == soon).values(due_date=TODAY + timedelta(days=1)))
        s.execute(update(Clue).where(Clue.id == later).values(due_date=TODAY + timedelta(days=5)))
    write(h, arrange)
    sign(h, returned)
    county_user = write(h, lambda s: s.scalar(select(User).where(User.username == "county")))
    write(h, lambda s: actions.send_back(s, returned, 2, county_user, "请补充入户照片", TODAY + timedelta(days=40)))
    c = client_for(h)
    login(c, "town")
    page = c.get("/inbox").text
    order = order_on_page(page)
    assert order[:4] == [returned, late, soon, later], order[:6]
    first_row = page.split('<tr class="returned">', 1)[1].split("</tr>", 1)[0]
    assert "已退回" in first_row and "请补充入户照片" in first_row and str(TODAY + timedelta(days=40)) in first_row
    assert "已逾期" in page
    # What waits, at a glance: each figure opens the list it counts.
    work = page.split('id="work">', 1)[1].split("</p>", 1)[0]
    links = re.findall(r'<a href="([^"]+)"[^>]*>(\d+) 条</a>', work)
    assert len(links) == 4 and dict((u.replace("&amp;", "&"), int(n)) for u, n in links)["/inbox?status=returned"] == 1
    for url, figure in links:
        assert int(re.search(r"共 (\d+) 条", c.get(url.replace("&amp;", "&")).text).group(1)) == int(figure), url
    # The clue's page says why it came back at the top, before the evidence (it was below the
    # evidence and the attachments, a long scroll on a phone).
    clue_page = c.get(f"/clues/{returned}").text
    top = clue_page.split('id="guide"', 1)[0].split('id="evidence"', 1)[0]
    assert 'id="returned"' in top and "退回理由：请补充入户照片" in top
    # A header click sorts by that column (and again the other way).
    by_due = order_on_page(c.get("/inbox?sort=due").text)
    assert by_due[0] == late
    by_due_desc = order_on_page(c.get("/inbox?sort=-due").text)
    assert by_due_desc[-1] == late
    assert 'href="/inbox?sort=-due"' in c.get("/inbox?sort=due").text


def test_search_finds_every_form_of_a_number_and_never_puts_it_in_the_url(home) -> None:
    h, town, _ = home

    def pick(s):
        rows = s.execute(select(Clue.id, Clue.subject_id_number, Clue.household_code, Clue.hukou_number,
                                Clue.subject_name).where(Clue.township_code == town)).all()
        with_x = next(r for r in rows if (r.subject_id_number or "").endswith("X"))
        old_style = next(r for r in rows if re.fullmatch(r"\d{6}19\d{10}", r.subject_id_number or "")
                         and upgrade_15(r.subject_id_number[:6] + r.subject_id_number[8:17]) == r.subject_id_number)
        return with_x, old_style
    with_x, old = write(h, pick)
    n = old.subject_id_number
    forms = {
        "18 digits": (n, old.id), "lower-case x": (with_x.subject_id_number.lower(), with_x.id),
        "15-digit old form": (n[:6] + n[8:17], old.id), "with spaces": (f"{n[:6]} {n[6:14]} {n[14:]}", old.id),
        "full-width digits": (n.translate(str.maketrans("0123456789", "０１２３４５６７８９")), old.id),
        "an ID's beginning": (n[:12], old.id), "户编号": (old.household_code, old.id),
        "户编号 beginning": (old.household_code[:13], old.id), "户号": (old.hukou_number, old.id),
        "户号 beginning": (old.hukou_number[:17], old.id), "name": (old.subject_name, old.id),
    }
    c = client_for(h)
    login(c, "town")
    token = csrf(c, "/inbox")
    for label, (term, wanted) in forms.items():
        r = c.post("/inbox/search", data={"csrf_token": token, "q": term, "status": ""})
        assert r.status_code == 303, label
        where = r.headers["location"]
        assert term not in where and not re.search(r"\d{6,}", where), (label, where)
        page = c.get(where).text
        assert f'href="/clues/{wanted}"' in page, label
        assert f'value="{term}"' in page, label  # the box still shows what was searched
    # Something nobody has finds nothing; an unknown token says the search expired.
    r = c.post("/inbox/search", data={"csrf_token": token, "q": "999999999999"})
    nothing = c.get(r.headers["location"]).text
    assert "没有符合条件的线索" in nothing and "其他状态" not in nothing
    # A person whose clues are all closed: 未销号 (the default) finds none, and says where they are
    # (a clerk's browser walk, 2026-12-06: "共 0 条" and nothing else).
    write(h, lambda s: s.execute(update(Clue).where(Clue.subject_name == old.subject_name).values(status="closed")))
    r = c.post("/inbox/search", data={"csrf_token": token, "q": old.subject_name})
    closed = c.get(r.headers["location"]).text
    assert "没有符合条件的线索" in closed and re.search(r"其他状态（如已销号）中有 \d+ 条", closed)
    everywhere = re.search(r'<a href="([^"]+)" id="all-statuses">', closed).group(1).replace("&amp;", "&")
    assert old.subject_name not in everywhere and f'href="/clues/{old.id}"' in c.get(everywhere).text
    assert "已过期" in c.get("/inbox?s=forged").text
    assert c.post("/inbox/search", data={"q": n}).status_code == 403  # CSRF


def test_a_too_long_search_comes_back_with_what_was_typed(home) -> None:
    h, _, _ = home
    c = client_for(h)
    login(c, "town")
    typed = "王" * 50
    r = c.post("/inbox/search", data={"csrf_token": csrf(c, "/inbox"), "q": typed})
    assert r.status_code == 400 and f'value="{typed}"' in r.text and "太长" in r.text
    # The search did not run: the heading does not say it found anything by it.
    assert "查找“" not in r.text and 'maxlength="40"' in r.text


def test_signing_leads_to_the_next_clue_and_uses_the_stored_signature(home) -> None:
    h, _, _ = home
    c = client_for(h)
    login(c, "town")
    inbox = order_on_page(c.get("/inbox").text)
    first, second = inbox[0], inbox[1]
    page = c.get(f"/clues/{first}").text
    assert 'name="verifier_name"' not in page and "王秀兰" in page and "乡镇甲" not in page.split("<main>")[1]
    r = c.post(f"/clues/{first}/verify", data={
        "csrf_token": csrf(c, f"/clues/{first}"), "version": 1, "outcome": "不属实", "finding": "入户核实，车辆已过户",
        "verified_on": str(TODAY), "verifier_name": "随便写的名字", "verifier_position": "乡镇核实员"})
    assert r.status_code == 303 and r.headers["location"] == f"/clues/{second}"
    shown = c.get(r.headers["location"]).text
    assert "已核实并签字" in shown and "下一条" in shown
    assert "已核实并签字" not in c.get(f"/clues/{second}").text  # said once
    clue = write(h, lambda s: s.get(Clue, first))
    assert (clue.verifier_name, clue.verifier_position) == ("王秀兰", "扶贫专干")


def signed_clue_as_county(h, town: str) -> tuple[int, str]:
    """A clue of the township signed by its clerk, and its page as the county reviewer reads it."""
    first = clue_ids(h, town)[0]
    sign(h, first)
    c = client_for(h)
    login(c, "county")
    return first, c.get(f"/clues/{first}").text


def test_the_header_and_the_history_show_people_not_accounts(home) -> None:
    h, town, _ = home
    _, page = signed_clue_as_county(h, town)
    header = page.split("</header>")[0]
    assert "赵志刚" in header and "县审核" not in header and "县级审核员（县级审核员）" not in header
    history = page.split("处理记录")[1]
    assert "王秀兰（扶贫专干）" in history and ">town<" not in history and "系统比对" in history
    assert "由核实工作簿导入" not in history  # signed on the page: the account is the verifier


def test_a_verifier_amends_their_own_finding_until_the_county_acts(home) -> None:
    h, town, _ = home
    first = clue_ids(h, town)[0]
    write(h, lambda s: add_user(s, "town2", "乡镇丙", "township", town, PASSWORD, "驻村干部"))
    write(h, lambda s: setattr(s.scalar(select(User).where(User.username == "town2")), "real_name", "孙丽"))
    sign(h, first)
    c = client_for(h)
    login(c, "town")
    page = c.get(f"/clues/{first}").text
    assert f'action="/clues/{first}/amend"' in page and "入户核实，车辆已过户" in page
    me = write(h, lambda s: s.scalar(select(User.id).where(User.username == "town")))
    # What is typed into the form is kept per account and round (app.js): signed once, round 1.
    assert f'data-draft="{me}:1"' in page
    r = c.post(f"/clues/{first}/amend", data={"csrf_token": csrf(c, f"/clues/{first}"), "version": 2,
                                              "outcome": "属实·申请豁免", "finding": "车辆为残疾人代步车，申请豁免",
                                              "verified_on": str(TODAY)})
    assert r.status_code == 303
    clue = write(h, lambda s: s.get(Clue, first))
    assert (clue.status, clue.outcome, clue.version) == ("verified", "属实·申请豁免", 3)
    kinds = write(h, lambda s: list(s.scalars(select(ClueEvent.kind).where(ClueEvent.clue_id == first))))
    page = c.get(f"/clues/{first}").text
    assert kinds[-1] == "amended" and "修改核实结论" in page
    assert f'data-draft="{me}:2"' in page  # an amendment moves the round on: its draft is not offered again
    # Another verifier of the same township may not change it.
    other = client_for(h)
    login(other, "town2")
    assert "/amend" not in other.get(f"/clues/{first}").text
    r = other.post(f"/clues/{first}/amend", data={"csrf_token": csrf(other, f"/clues/{first}"), "version": 3,
                                                  "outcome": "不属实", "finding": "x", "verified_on": str(TODAY)})
    assert r.status_code == 400 and "本人" in r.text
    # Once the county has acted, nobody may.
    county = client_for(h)
    login(county, "county")
    county.post("/review", data={"csrf_token": csrf(county, "/review"), "decision": "close", "clue": f"{first}:3",
                                 "confirmed": "yes"})
    assert write(h, lambda s: s.get(Clue, first).status) == "closed"
    assert "/amend" not in c.get(f"/clues/{first}").text
    r = c.post(f"/clues/{first}/amend", data={"csrf_token": csrf(c, f"/clues/{first}"), "version": 4,
                                              "outcome": "不属实", "finding": "改回", "verified_on": str(TODAY)})
    assert r.status_code == 400 and "已销号" in r.text
    assert write(h, lambda s: s.get(Clue, first).outcome) == "属实·申请豁免"


def test_the_verify_form_keeps_what_was_typed_after_a_refusal(home) -> None:
    h, town, _ = home
    first = clue_ids(h, town)[0]
    c = client_for(h)
    login(c, "town")
    typed = "入户查看，户主称已整改，待补材料"
    r = c.post(f"/clues/{first}/verify", data={"csrf_token": csrf(c, f"/clues/{first}"), "version": 1,
                                               "outcome": "属实·已整改", "action": "", "finding": typed,
                                               "verified_on": str(TODAY)})
    assert r.status_code == 400 and "location" not in r.headers
    assert "须选择整改措施" in r.text and typed in r.text and re.search(r"<option [^>]*selected>属实·已整改</option>", r.text)
    form = r.text.split('id="verify-form"', 1)[1].split("</form>", 1)[0]  # said beside the fields, not only at the top
    assert 'id="form-error"' in form and "须选择整改措施" in form
    r = c.post(f"/clues/{first}/verify", data={"csrf_token": csrf(c, f"/clues/{first}"), "version": 1,
                                               "outcome": "不属实", "action": "", "finding": typed,
                                               "verified_on": "25.11.2026"})
    assert r.status_code == 400 and "格式不对" in r.text and typed in r.text
    assert write(h, lambda s: s.get(Clue, first).status) == "dispatched"


def test_the_first_sign_in_asks_for_the_real_name_and_position(home) -> None:
    h, town, _ = home
    write(h, lambda s: add_user(s, "newclerk", "乡镇核实员", "township", town, PASSWORD))
    c = client_for(h)
    r = login(c, "newclerk")
    assert r.headers["location"] == "/profile"
    page = c.get("/profile").text
    assert 'value=""' in page and "乡镇核实员" not in page.split('id="real_name"')[1].split(">")[0]
    # Without a name the clue page cannot be signed: it says where to give one.
    first = clue_ids(h, town)[0]
    assert 'id="sign"' not in c.get(f"/clues/{first}").text
    r = c.post("/profile", data={"csrf_token": csrf(c, "/profile"), "real_name": "刘芳", "position": ""})
    assert r.status_code == 400 and 'value="刘芳"' in r.text and "职务" in r.text
    r = c.post("/profile", data={"csrf_token": csrf(c, "/profile"), "real_name": "刘芳", "position": "扶贫专干"})
    assert r.status_code == 303
    assert write(h, lambda s: s.scalar(select(User.real_name).where(User.username == "newclerk"))) == "刘芳"
    again = client_for(h)
    assert login(again, "newclerk").headers["location"] == "/inbox"
    assert "刘芳" in again.get("/inbox").text.split("</header>")[0]


def test_the_review_queue_filters_pages_and_shows_evidence(home) -> None:
    h, town, _ = home
    ids = clue_ids(h, town)
    for i in ids[:60]:
        sign(h, i)
    old = ids[:3]  # submitted twenty days ago (the queue waits from the signing as the ledger recorded it)
    write(h, lambda s: s.execute(update(ClueEvent).where(ClueEvent.clue_id.in_(old), ClueEvent.kind == "verify")
                                 .values(at=datetime.combine(TODAY - timedelta(days=20), datetime.min.time()))))
    c = client_for(h)
    login(c, "county")
    page = c.get("/review").text
    assert "60 条已核实待审核" in page and "第 1 / 2 页" in page
    assert len(re.findall(r'name="clue" value=', page)) == 50
    assert len(re.findall(r'name="clue" value=', c.get("/review?page=2").text)) == 10
    assert "疑点与证据" in page and '<div class="muted">' in page  # each clue's evidence excerpt
    aged = c.get("/review?age=15").text
    assert len(re.findall(r'name="clue" value=', aged)) == 3
    rule = write(h, lambda s: s.get(Clue, ids[0]).rule_code)
    by_rule = c.get(f"/review?rule={rule}").text
    wanted = write(h, lambda s: s.scalar(select(Clue).where(Clue.id.in_(ids[:60]), Clue.rule_code == rule).limit(1)))
    assert f'value="{wanted.id}:2"' in by_rule
    assert all(write(h, lambda s, i=int(i): s.get(Clue, i).rule_code) == rule
               for i in re.findall(r'name="clue" value="(\d+):', by_rule))
    assert len(re.findall(r'name="clue" value=', c.get(f"/review?township={town}").text)) == 50
    # The filters offer what waits, with how many (every rule was offered with one clue waiting).
    waiting = write(h, lambda s: {code: n for code, n in s.execute(
        select(Clue.rule_code, func.count()).where(Clue.id.in_(ids[:60])).group_by(Clue.rule_code))})
    rules = re.search(r'<select id="f-rule" name="rule">(.*?)</select>', page, re.S).group(1)
    offered = dict(re.findall(r'<option value="([^"]+)" [^>]*>[^<]*（(\d+)）</option>', rules))
    assert {code: int(n) for code, n in offered.items()} == waiting


def test_closing_several_asks_for_confirmation_first(home) -> None:
    h, town, _ = home
    a, b = clue_ids(h, town)[:2]
    sign(h, a)
    sign(h, b)
    c = client_for(h)
    login(c, "county")
    token = csrf(c, "/review")
    r = c.post("/review", data={"csrf_token": token, "decision": "close", "clue": [f"{a}:2", f"{b}:2"]})
    assert r.status_code == 200 and "确认销号 2 条" in r.text
    assert write(h, lambda s: (s.get(Clue, a).status, s.get(Clue, b).status)) == ("verified", "verified")
    r = c.post("/review", data={"csrf_token": token, "decision": "close", "clue": [f"{a}:2", f"{b}:2"],
                                "confirmed": "yes"})
    assert r.status_code == 303 and "已销号 2 条" in c.get(r.headers["location"]).text
    assert write(h, lambda s: (s.get(Clue, a).status, s.get(Clue, b).status)) == ("closed", "closed")


def test_a_return_needs_a_reason_sets_a_new_due_date_and_keeps_what_was_typed(home) -> None:
    h, town, _ = home
    a = clue_ids(h, town)[0]
    sign(h, a)
    c = client_for(h)
    login(c, "county")
    token = csrf(c, "/review")
    page = c.get("/review").text
    default = re.search(r'id="due" type="date" name="due" [^>]*value="([^"]+)"', page).group(1)
    assert date.fromisoformat(default) == date.today() + timedelta(days=15)  # [clues] due_days (today: the suite may pass midnight)
    r = c.post("/review", data={"csrf_token": token, "decision": "return", "reason": "", "due": default,
                                "clue": f"{a}:2"})
    assert r.status_code == 400 and "退回须说明理由" in r.text and "已退回" not in r.text
    assert 'class="msg ok"' not in r.text and f'value="{a}:2" aria-label="选择线索 {a}" checked' in r.text
    r = c.post("/review", data={"csrf_token": token, "decision": "return", "reason": "请补充入户照片", "due": "明天",
                                "clue": f"{a}:2"})
    assert r.status_code == 400 and 'value="请补充入户照片"' in r.text
    new_due = TODAY + timedelta(days=10)
    r = c.post("/review", data={"csrf_token": token, "decision": "return", "reason": "请补充入户照片",
                                "due": str(new_due), "clue": f"{a}:2"})
    assert r.status_code == 303 and "已退回 1 条" in c.get(r.headers["location"]).text
    clue = write(h, lambda s: s.get(Clue, a))
    assert (clue.status, clue.due_date, clue.return_reason) == ("returned", new_due, "请补充入户照片")
    # A stale version: nothing done, said as an error only.
    r = c.post("/review", data={"csrf_token": token, "decision": "return", "reason": "再补", "due": str(new_due),
                                "clue": f"{a}:2"})
    assert r.status_code == 303, r.text[:300]
    shown = c.get(r.headers["location"]).text
    assert "没有退回任何线索" in shown, re.findall(r'class="msg[^"]*">[^<]*', shown) and 'class="msg ok"' not in shown
    t = client_for(h)
    login(t, "town")
    assert order_on_page(t.get("/inbox").text)[0] == a
    returned = t.get(f"/clues/{a}").text
    assert f"{new_due}" in returned
    # The form comes back with the finding as signed, to add what the county asked for (a clerk's
    # browser walk, 2026-12-06: it came back empty and everything was typed again), dated today.
    form = returned.split('id="verify-form"', 1)[1].split("</form>", 1)[0]
    assert "<option class=\"not-true\" selected>不属实</option>" in form
    assert ">入户核实，车辆已过户</textarea>" in form and f'value="{date.today()}"' in form


def test_a_single_clue_is_closed_by_its_own_form_which_asks_first(home) -> None:
    """On the clue page the close button asked nothing and sat above the return's reason, so a
    reviewer who typed a reason and pressed the first button closed the clue (a browser walk,
    2026-12-06): closing is now its own form, asked about once more; returning is the other."""
    h, town, _ = home
    a, page = signed_clue_as_county(h, town)
    forms = re.findall(rf'<form method="post" action="/clues/{a}/review"[^>]*>.*?</form>', page, re.S)
    assert len(forms) == 2
    closing, returning = forms
    assert 'data-confirm="销号后乡镇不能再修改核实结论。确定销号吗？"' in closing and 'value="close"' in closing
    assert 'name="reason"' not in closing and 'value="return"' not in closing
    assert 'name="reason"' in returning and 'value="return"' in returning and 'value="close"' not in returning


def test_a_clue_prints_as_a_record_with_a_signature_block(home) -> None:
    h, town, _ = home
    a = clue_ids(h, town)[0]
    sign(h, a)
    c = client_for(h)
    login(c, "town")
    assert f'href="/clues/{a}/print"' in c.get(f"/clues/{a}").text
    page = c.get(f"/clues/{a}/print").text
    assert "<nav" not in page and "<header" not in page and 'action="/logout"' not in page
    assert 'id="signature-block"' in page and "签字" in page and "日期" in page
    assert "疑点线索核实记录" in page and "王秀兰（扶贫专干）" in page
    assert c.get(f"/clues/{clue_ids(h, home[2])[0]}/print").status_code == 404  # another township's


def test_a_household_prints_as_one_record_of_all_its_clues(home) -> None:
    h, town, other = home
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.read() as s:
        # The household of the township with the most clues, and one of another township.
        code, n = s.execute(select(Clue.household_code, func.count()).where(Clue.township_code == town,
                                                                           Clue.household_code != "")
                            .group_by(Clue.household_code).order_by(func.count().desc()).limit(1)).one()
        ids = s.scalars(select(Clue.id).where(Clue.household_code == code)).all()
        theirs = s.scalar(select(Clue.household_code).where(Clue.township_code == other, Clue.household_code != ""))
    ledger.close()
    assert n >= 2
    sign(h, ids[0])
    c = client_for(h)
    login(c, "town")
    assert f'href="/households/{code}/print"' in c.get(f"/clues/{ids[0]}").text
    page = c.get(f"/households/{code}/print").text
    assert "<nav" not in page and 'action="/logout"' not in page and 'id="signature-block"' in page
    assert all(f"线索编号 {i}，" in page for i in ids) and "王秀兰（扶贫专干）" in page and "户主（签字）" in page
    assert c.get(f"/households/{theirs}/print").status_code == 404  # another township's household
    assert c.get("/households/0000000000000000/print").status_code == 404


def test_an_upload_error_names_the_users_own_file_and_says_what_to_do(home) -> None:
    h, _, _ = home
    c = client_for(h)
    login(c, "town")
    token = csrf(c, "/inbox")
    before = [(i, s) for i, s in _statuses(h)]
    for content in (b"<html><script>alert(1)</script></html>", b"PK\x03\x04broken zip"):
        r = c.post("/workbook", data={"csrf_token": token},
                   files={"file": ("C:\\Users\\王\\桃河镇核实表（已填）.xlsx", content, "application/octet-stream")})
        assert r.status_code == 400
        text = re.sub(r"<[^>]+>", " ", r.text)
        assert "桃河镇核实表（已填）.xlsx" in text and "重新下载" in text
        assert "upload.xlsx" not in text and "Users" not in text
        assert not re.search(r"\((\w*Error|\w*NotFound)\)|（\w*(Error|NotFound)）", text)
    assert _statuses(h) == before  # nothing applied


def _statuses(h) -> list[tuple[int, str]]:
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.read() as s:
        out = [(c.id, c.status) for c in s.scalars(select(Clue).order_by(Clue.id))]
    ledger.close()
    return out


def test_the_list_downloads_as_it_is_filtered_with_names_and_words(home) -> None:
    from io import BytesIO

    from python_calamine import CalamineWorkbook

    from tests.present_support import internal_codes

    h, town, _ = home
    signed = clue_ids(h, town)[0]
    sign(h, signed)
    c = client_for(h)
    login(c, "county")
    page = c.get("/inbox?status=").text
    link = re.search(r'href="([^"]*)" id="download-list"', page).group(1).replace("&amp;", "&")
    assert link.startswith("/inbox.xlsx")
    r = c.get(link)
    assert r.status_code == 200 and "no-store" in r.headers.get("cache-control", "")
    rows = CalamineWorkbook.from_filelike(BytesIO(r.content)).get_sheet_by_name("线索").to_python()
    total = int(re.search(r"共 (\d+) 条", page).group(1))
    assert rows[0][:3] == ["线索编号", "乡镇", "村"] and len(rows) - 1 == total
    assert internal_codes("\n".join("\t".join(str(v) for v in row[1:]) for row in rows)) == []
    # What the township found, and who signed it when (a reviewer's list had only the clues).
    row = dict(zip(rows[0], next(r for r in rows[1:] if int(r[0]) == signed), strict=True))
    assert (row["核实结论"], row["核实情况"], row["核实人"], row["核实日期"]) == (
        "不属实", "入户核实，车辆已过户", "王秀兰（扶贫专干）", str(TODAY))
    # A prefecture's list says which county each clue is in.
    p = client_for(h)
    login(p, "pref")
    whole = CalamineWorkbook.from_filelike(BytesIO(p.get("/inbox.xlsx?status=").content)).get_sheet_by_name("线索").to_python()
    assert whole[0][:2] == ["县（区）", "线索编号"] and all(r[0] for r in whole[1:])
    t = client_for(h)
    login(t, "town")
    mine = CalamineWorkbook.from_filelike(BytesIO(t.get("/inbox.xlsx?status=").content)).get_sheet_by_name("线索").to_python()
    assert 0 < len(mine) < len(rows)  # scoped: the township's own only


def test_the_review_queue_cuts_evidence_between_items_never_inside_one() -> None:
    """The queue showed "自付 1…" for a bill of 自付 15000 元 (a reviewer's browser walk, 2026-12-06)."""
    from bidui.web.county import EVIDENCE_CHARS, excerpt

    bills = ("全户自付合计：20000 元；统计期间：2025-11-21 至 2026-11-20（比对日前 365 天）；结算明细：2026-09-11，许欢，"
             "黔中州人民医院，总费用 15000 元，自付 5000 元；2026-10-11，白立新，黔中州人民医院，总费用 45000 元，自付 15000 元")
    cut = excerpt(bills)
    assert cut.endswith("…（详见线索页）") and len(cut) <= EVIDENCE_CHARS + len("…（详见线索页）")
    shown = cut.removesuffix("…（详见线索页）")
    assert bills.startswith(shown) and bills[len(shown)] in "；，"  # up to a whole item
    assert excerpt("车牌 贵A12345") == "车牌 贵A12345"
    assert excerpt("字" * 300) == "字" * EVIDENCE_CHARS + "…（详见线索页）"  # no separator: cut where it must be


def test_the_inbox_marks_the_latest_nights_new_clues(home) -> None:
    """A clerk could not tell last night's new clues from the rest (a browser walk, 2026-12-06)."""
    h, town, _ = home
    ids = clue_ids(h, town)
    newest = write(h, lambda s: s.scalar(select(func.max(PublishRun.night))))  # the latest published night
    older = newest - timedelta(days=1)
    write(h, lambda s: s.execute(update(Clue).where(Clue.id.in_(ids[1:])).values(first_seen=older)))
    write(h, lambda s: s.execute(update(Clue).where(Clue.id == ids[0]).values(first_seen=newest)))
    c = client_for(h)
    login(c, "town")
    page = c.get("/inbox?status=").text
    marked = re.findall(r'<a href="/clues/(\d+)">[^<]*</a> <span class="tag new" title="([^"]+)">新</span>', page)
    assert marked == [(str(ids[0]), f"{newest} 的比对新发现")]


def test_a_clue_whose_evidence_is_gone_says_what_that_means_and_what_to_do(home) -> None:
    """"之后的比对中证据已消失" alone left a clerk unsure whether to still visit (a browser walk,
    2026-12-06)."""
    h, town, _ = home
    a, b = clue_ids(h, town)[:2]
    write(h, lambda s: s.execute(update(Clue).where(Clue.id.in_((a, b))).values(evidence_gone=True)))
    sign(h, b)
    c = client_for(h)
    login(c, "town")
    page = c.get(f"/clues/{a}").text
    said = re.search(r'<p class="reason" id="evidence-gone">([^<]+)</p>', page).group(1)
    assert "不会因此自动销号" in said and "仍须核实" in said and "入户核实要点" in said
    assert 'id="evidence-gone"' not in c.get(f"/clues/{b}").text  # signed: nothing left to tell the clerk


def test_a_reviewer_who_saw_an_older_finding_checks_the_new_one_and_submits_again(home) -> None:
    """The county opened the clue; the verifier amended it meanwhile; the county's 退回 is refused
    (409) and the page says the clue as it is now is shown: its form carries the new version and the
    typed reason, so the same button works. ("Refresh and retry" re-sent the refused POST.)"""
    h, town, _ = home
    first = clue_ids(h, town)[0]
    sign(h, first)
    county = client_for(h)
    login(county, "county")
    token = csrf(county, f"/clues/{first}")
    assert 'name="version" value="2"' in county.get(f"/clues/{first}").text
    town_client = client_for(h)
    login(town_client, "town")
    assert town_client.post(f"/clues/{first}/amend", data={
        "csrf_token": csrf(town_client, f"/clues/{first}"), "version": 2, "outcome": "属实·申请豁免",
        "finding": "车辆为残疾人代步车，申请豁免", "verified_on": str(TODAY)}).status_code == 303
    due = str(TODAY + timedelta(days=10))
    r = county.post(f"/clues/{first}/review", data={"csrf_token": token, "version": 2, "decision": "return",
                                                    "reason": "请补充残疾证照片", "due": due})
    assert r.status_code == 409
    assert "您看到的是第 2 版，当前为第 3 版" in r.text and "请核对后再提交" in r.text and "刷新" not in r.text
    assert "车辆为残疾人代步车" in r.text and "请补充残疾证照片" in r.text  # the new finding, the typed reason
    assert 'name="version" value="3"' in r.text
    again = county.post(f"/clues/{first}/review", data={"csrf_token": token, "version": 3, "decision": "return",
                                                        "reason": "请补充残疾证照片", "due": due})
    assert again.status_code == 303
    clue = write(h, lambda s: s.get(Clue, first))
    assert (clue.status, clue.return_reason) == ("returned", "请补充残疾证照片")


def test_the_review_queue_waits_from_the_signing_as_recorded_and_marks_a_clue_signed_again(home) -> None:
    """The queue is ordered, and 核实后等待 N 天 counts, from when the township submitted (the ledger's
    time), not from the 核实日期 typed (a walk found a clue signed minutes before listed as waiting 3
    days and more: its typed date was set back). A clue re-signed after a 退回 says so."""
    h, town, _ = home
    old, new, again = clue_ids(h, town)[:3]
    for clue_id in (old, new, again):
        sign(h, clue_id)
    county_user = write(h, lambda s: s.scalar(select(User).where(User.username == "county")))
    write(h, lambda s: actions.send_back(s, again, 2, county_user, "请补充入户照片", TODAY + timedelta(days=10)))
    sign(h, again)

    def stamp(s):
        s.execute(update(Clue).where(Clue.id == new).values(verified_on=TODAY - timedelta(days=20)))  # typed, set back
        for clue_id, days in ((old, 5), (new, 0), (again, 1)):
            for e in s.scalars(select(ClueEvent).where(ClueEvent.clue_id == clue_id, ClueEvent.kind == "verify")):
                e.at = datetime.combine(TODAY - timedelta(days=days), datetime.min.time()) + timedelta(hours=9)
    write(h, stamp)
    county = client_for(h)
    login(county, "county")
    page = county.get("/review").text
    queue = lambda text: [int(i) for i in re.findall(r'data-label="对象" class="nowrap"><a href="/clues/(\d+)"', text)]  # noqa: E731
    mine = [i for i in queue(page) if i in (old, new, again)]
    assert mine == [old, again, new], mine
    waiting = queue(county.get("/review?age=3").text)
    assert old in waiting and new not in waiting and again not in waiting
    row = lambda i: page.split(f'href="/clues/{i}"')[1].split("</tr>")[0]  # noqa: E731
    assert "退回后重新核实" in row(again) and "退回后重新核实" not in row(old)
    assert f"核实 {TODAY - timedelta(days=20)}" in row(new) and f"提交 {TODAY}" in row(new)
    assert f"提交 {TODAY - timedelta(days=5)}" in row(old)  # typed today, submitted five days ago


def test_a_finding_changed_from_fixed_to_another_outcome_drops_the_measure_still_selected(home) -> None:
    """属实·已整改 with its measure, amended to 属实·申请豁免: the form posts the measure still selected
    (the list keeps it); the finding is taken without it, not refused with 只有属实·已整改填写整改措施."""
    h, town, _ = home
    first = clue_ids(h, town)[0]
    c = client_for(h)
    login(c, "town")
    fixed = {"outcome": "属实·已整改", "action": "清退出列", "finding": "已按程序清退", "verified_on": str(TODAY)}
    assert c.post(f"/clues/{first}/verify", data={"csrf_token": csrf(c, f"/clues/{first}"), "version": 1,
                                                  **fixed}).status_code == 303
    r = c.post(f"/clues/{first}/amend", data={"csrf_token": csrf(c, f"/clues/{first}"), "version": 2, **fixed,
                                              "outcome": "属实·申请豁免", "finding": "户主已去世，申请豁免"})
    assert r.status_code == 303, r.text[-500:]
    clue = write(h, lambda s: s.get(Clue, first))
    assert (clue.outcome, clue.action, clue.finding) == ("属实·申请豁免", None, "户主已去世，申请豁免")


def test_a_supervisors_figures_open_as_the_lists_they_count(home) -> None:
    """Each county's and township's 下发 and 逾期 on the dashboard is a link to the list of those clues,
    and the list holds as many (the figures were dead ends; the inbox had no 县 filter)."""
    h, town, other = home
    write(h, lambda s: s.execute(update(Clue).where(Clue.township_code == other).values(due_date=TODAY - timedelta(days=1))))
    # One clue in a county next to it (the tiny prefecture has one), so that each county's list is its own.
    moved = clue_ids(h, other)[0]
    was = write(h, lambda s: (lambda c: {"county_code": c.county_code, "township_code": c.township_code,
                                         "village_code": c.village_code})(s.get(Clue, moved)))
    write(h, lambda s: s.execute(update(Clue).where(Clue.id == moved).values(
        county_code=town[:4] + "99000000", township_code=town[:4] + "99001000", village_code=town[:4] + "99001001")))
    p = client_for(h)
    login(p, "pref")
    page = p.get("/dashboard").text
    links = re.findall(r'<a href="(/inbox\?(?:county|township)=[0-9]{12}&amp;(?:status=|overdue=true))"[^>]*>(\d+)</a>',
                       page)
    assert any("county=" in u for u, _ in links) and any("township=" in u for u, _ in links)
    assert any(f"township={other}&amp;overdue=true" in u for u, _ in links)
    for url, figure in links:
        listed = p.get(url.replace("&amp;", "&")).text
        assert int(re.search(r"共 (\d+) 条", listed).group(1)) == int(figure), url
    assert sum(1 for u, _ in links if "county=" in u and "status=" in u) == 2
    county = town[:6] + "000000"
    inbox = p.get(f"/inbox?county={county}&status=").text
    assert 'id="f-county"' in inbox and f'value="{county}" selected' in inbox
    write(h, lambda s: s.execute(update(Clue).where(Clue.id == moved).values(**was)))


def test_every_figure_of_the_dashboard_opens_as_the_list_it_counts_returns_too(home) -> None:
    """A county reviewer's returns were nowhere on the dashboard (已核实 fell from 10 to 6 after four
    returns, with no trace of them), and only 下发 and 逾期 of the counties and townships opened
    their clues: now 退回待补充 is a figure, and every county's, township's, rule's and category's
    下发, 退回待补充, 已销号 and 逾期 opens the list that holds as many."""
    h, town, _ = home
    a, b, c3 = clue_ids(h, town)[:3]
    for clue in (a, b, c3):
        sign(h, clue)
    county = client_for(h)
    login(county, "county")
    due = str(TODAY + timedelta(days=5))
    for clue in (a, b):
        r = county.post(f"/clues/{clue}/review", data={"csrf_token": csrf(county, f"/clues/{clue}"), "version": 2,
                                                       "decision": "return", "reason": "请补充照片", "due": due})
        assert r.status_code == 303
    r = county.post("/review", data={"csrf_token": csrf(county, "/review"), "decision": "close", "clue": f"{c3}:2",
                                     "confirmed": "yes"})
    assert r.status_code == 303
    # A rule of the home's own may have any file name: its code is sent quoted (LOCAL+1 opened an
    # empty list, a red-team pass).
    write(h, lambda s: s.execute(update(Clue).where(Clue.id == c3).values(rule_code="LOCAL+1&#")))
    p = client_for(h)
    login(p, "pref")
    page = p.get("/dashboard").text
    assert "rule=LOCAL%2B1%26%23&amp;status=" in page
    assert re.search(r'id="kpi-returned"><a href="/inbox\?status=returned"[^>]*>2</a>', page)
    assert "被县级退回的不计在内" in page  # what 已核实 counts, said
    links = re.findall(r'<a href="(/inbox\?(?:county|township|rule|category)=[^"&]+&amp;[^"]+)" title="查看这些[^"]*">(\d+)</a>',
                       page)
    kinds = {u.split("?")[1].split("=")[0] for u, _ in links}
    assert kinds == {"county", "township", "rule", "category"}
    assert any("status=returned" in u for u, _ in links) and any("status=closed" in u for u, _ in links)
    for url, figure in links:
        listed = p.get(url.replace("&amp;", "&")).text
        assert int(re.search(r"共 (\d+) 条", listed).group(1)) == int(figure), url
    returned = [int(n) for u, n in links if u.startswith(f"/inbox?township={town}") and "status=returned" in u]
    assert returned == [2]


def test_a_reviewer_goes_on_to_the_next_clue_waiting_after_closing_or_returning_one(home) -> None:
    """After 销号 or 退回 on a clue page the reviewer is taken to the next clue waiting in the queue
    (the longest waiting), as a clerk is after signing; after the last, back to the empty queue."""
    h, town, _ = home
    first, second = clue_ids(h, town)[:2]
    sign(h, first)
    sign(h, second)
    county = client_for(h)
    login(county, "county")
    token = csrf(county, f"/clues/{first}")
    r = county.post(f"/clues/{first}/review", data={"csrf_token": token, "version": 2, "decision": "close"})
    assert r.status_code == 303 and r.headers["location"] == f"/clues/{second}"
    assert f"线索 {first} 已销号。这是下一条待审核线索" in county.get(r.headers["location"]).text
    r = county.post(f"/clues/{second}/review", data={"csrf_token": token, "version": 2, "decision": "return",
                                                      "reason": "请补充照片", "due": str(TODAY + timedelta(days=7))})
    assert r.status_code == 303 and r.headers["location"] == "/review"
    assert "待审核的线索已全部处理完" in county.get("/review").text


def test_an_account_without_a_name_is_told_before_the_form_not_after_it(home) -> None:
    """Signing needs the account's real name and position: a clerk without them filled the whole
    form, then found no button and the reason below what they had typed."""
    h, town, _ = home
    first = clue_ids(h, town)[0]
    write(h, lambda s: setattr(s.scalar(select(User).where(User.username == "town")), "real_name", ""))
    c = client_for(h)
    login(c, "town")
    form = c.get(f"/clues/{first}").text.split('id="verify-form"', 1)[1]
    assert 'id="signer-first"' in form and form.index('id="signer-first"') < form.index('name="outcome"')
    assert 'id="sign"' not in form


def test_the_review_queue_offers_no_box_for_a_finding_the_reviewer_signed(home) -> None:
    """A walk (2026-12-06): a clerk made a county reviewer found her own signed clue in her queue,
    ticked it and was refused. It is listed, without a box, saying another reviewer reviews it;
    the clues others signed keep theirs."""
    from bidui.clues.users import CLI, rescope

    h, town, _ = home
    mine, theirs = clue_ids(h, town)[:2]
    sign(h, mine)
    write(h, lambda s: add_user(s, "town2", "李四", "township", town, PASSWORD, "扶贫专干").__setattr__("real_name", "李四"))
    sign(h, theirs, username="town2")
    write(h, lambda s: rescope(s, "town", "county", town[:6] + "000000", CLI))
    c = client_for(h)
    login(c, "town")
    page = c.get("/review").text
    assert f'value="{theirs}:2"' in page and f'value="{mine}:' not in page
    row = re.search(rf'<a href="/clues/{mine}">.*?</tr>', page, re.S)
    assert row is not None
    assert "本人签字</span><br><span class=\"muted\">请其他审核人员审核" in page.split(f'<a href="/clues/{mine}">')[0].rsplit("<tr>", 1)[1]
    # The county's own reviewer sees both with their boxes.
    county = client_for(h)
    login(county, "county")
    other = county.get("/review").text
    assert f'value="{mine}:2"' in other and f'value="{theirs}:2"' in other and "请其他审核人员审核" not in other
