"""一户一档 (issue 19): the register copied into the ledger at publish, the household file on the
page and from `bidui household print` (HTML that stands alone, PDF), a village at once, scope."""

from __future__ import annotations

import io
import re

from PIL import Image
from sqlalchemy import func, inspect, select
from typer.testing import CliRunner

from bidui.cli import app as cli_app
from bidui.clues import attachments as store
from bidui.clues import household_file
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue, RegisterHousehold, RegisterMember, User
from bidui.config import attachment_settings
from bidui.connectors import warehouse as wh
from tests.present_support import internal_codes
from tests.test_web import client_for, login
from tests.test_web_work import sign


def _read(h, fn):
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        with ledger.read() as s:
            return fn(s)
    finally:
        ledger.close()


def _text(html: str) -> str:
    html = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _busiest(h, township: str) -> tuple[str, list[int]]:
    """The register household of the township with the most clues, and its clue ids."""
    def q(s):
        code = s.scalar(select(Clue.household_code).join(
            RegisterHousehold, RegisterHousehold.household_code == Clue.household_code)
            .where(Clue.township_code == township).group_by(Clue.household_code)
            .order_by(func.count().desc(), Clue.household_code).limit(1))
        return code, list(s.scalars(select(Clue.id).where(Clue.household_code == code).order_by(Clue.id)))
    return _read(h, q)


def test_the_migration_makes_the_register_tables_and_publish_fills_them(published_home) -> None:
    from bidui.home import Home

    h = Home(published_home[0])
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        tables = set(inspect(ledger.engine).get_table_names())
        with ledger.read() as s:
            households = {r.household_code: r for r in s.scalars(select(RegisterHousehold))}
            members = list(s.scalars(select(RegisterMember)))
            clues = list(s.scalars(select(Clue).where(Clue.household_code.in_(list(households)))))
    finally:
        ledger.close()
    assert {"register_households", "register_members"} <= tables
    con = wh.connect(h.warehouse)
    try:
        snap = con.execute("SELECT max(snapshot_date) FROM snapshots WHERE dataset = 'register_households'").fetchone()[0]
        expected = con.execute("SELECT count(DISTINCT household_code) FROM ds_register_households_at(?) "
                               "WHERE village_code IS NOT NULL", [snap]).fetchone()[0]
    finally:
        con.close()
    assert len(households) == expected > 0
    assert {r.night for r in households.values()} == {snap}
    per_household: dict[str, int] = {}
    for m in members:
        per_household[m.household_code] = per_household.get(m.household_code, 0) + 1
    assert all(r.member_count == per_household.get(code, 0) for code, r in households.items())
    assert all(r.township_code == r.village_code[:9] + "000" for r in households.values())
    # A clue keys its subject as the register's member does: each clue of a register household names a member.
    keys = {m.person_key for m in members}
    assert clues and all(c.subject_key in keys for c in clues)


def _attach_photo(h, clue_id: int) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (320, 240), (30, 120, 60)).save(picture, "JPEG")
    prepared = store.prepare("入户照片.jpg", picture.getvalue(), attachment_settings(h.config))
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        with ledger.write() as s:
            user = s.scalar(select(User).where(User.username == "town"))
            store.add(s, h, clue_id, user, [prepared], attachment_settings(h.config))
    finally:
        ledger.close()


def test_the_household_file_holds_every_clue_with_its_signature_and_members(home) -> None:
    h, town, other = home
    code, ids = _busiest(h, town)
    sign(h, ids[0], finding="入户核实，车辆已过户")
    _attach_photo(h, ids[0])
    members = _read(h, lambda s: [m.name for m in s.scalars(select(RegisterMember)
                                                              .where(RegisterMember.household_code == code))])
    c = client_for(h)
    login(c, "town")
    page = c.get(f"/households/{code}/print")
    assert page.status_code == 200
    html = page.text
    assert all(f"线索编号 {i}，" in html for i in ids)
    assert "王秀兰（扶贫专干）" in html and "入户核实，车辆已过户" in html and 'id="signature-block"' in html
    assert members and all(name in html for name in members) and "家庭成员" in html
    assert re.search(r'<img src="/attachments/\d+\?thumb=1"', html) and "入户照片.jpg" in html
    assert "处理记录" in html and "核实签字" in html and "下发" in html
    assert internal_codes(_text(html)) == []
    # Scope: another township's household and village are not there for this user.
    theirs, _ = _busiest(h, other)
    assert c.get(f"/households/{theirs}/print").status_code == 404
    assert c.get("/households/0000000000000000/print").status_code == 404
    village = _read(h, lambda s: s.get(RegisterHousehold, code).village_code)
    their_village = _read(h, lambda s: s.get(RegisterHousehold, theirs).village_code)
    assert c.get(f"/villages/{their_village}/households/print").status_code == 404
    whole = c.get(f"/villages/{village}/households/print")
    assert whole.status_code == 200
    in_village = _read(h, lambda s: list(s.scalars(select(RegisterHousehold.household_code)
                                                    .where(RegisterHousehold.village_code == village))))
    assert all(f"户编号 {hh}" in whole.text for hh in in_village)
    assert whole.text.count("户主（签字）") >= len(in_village)
    assert f'href="/villages/{village}/households/print"' in html
    assert internal_codes(_text(whole.text)) == []
    o = client_for(h)
    login(o, "other")
    assert o.get(f"/households/{code}/print").status_code == 404

    # The command's file stands alone: the same record, style inline, the thumbnail as a data: URI.
    out = h.root / "file.html"
    res = CliRunner().invoke(cli_app, ["--home", str(h.root), "household", "print", code, "--out", str(out)])
    assert res.exit_code == 0, res.output
    alone = out.read_text(encoding="utf-8")
    assert all(f"线索编号 {i}，" in alone for i in ids) and "王秀兰（扶贫专干）" in alone
    assert "/static/" not in alone and "/attachments/" not in alone and 'src="data:image/jpeg;base64,' in alone
    assert re.search(r"<style>[^<]*\.household[^<]*</style>\s*</head>", alone)  # print.css, inline
    assert internal_codes(_text(alone)) == []
    # Scoped as the other township, the command finds nothing of this household.
    res = CliRunner().invoke(cli_app, ["--home", str(h.root), "household", "print", code, "--scope", other,
                                       "--out", str(h.root / "none.html")])
    assert res.exit_code == 1 and "没有找到这一户" in res.output


def test_a_village_prints_as_one_file_and_a_pdf_or_a_clear_error(home, monkeypatch) -> None:
    h, town, _ = home
    code, _ = _busiest(h, town)
    village = _read(h, lambda s: s.get(RegisterHousehold, code).village_code)
    n = _read(h, lambda s: s.scalar(select(func.count()).where(RegisterHousehold.village_code == village)))
    out = h.root / "village.html"
    res = CliRunner().invoke(cli_app, ["--home", str(h.root), "household", "print", "--village", village, "--out", str(out)])
    assert res.exit_code == 0, res.output
    html = out.read_text(encoding="utf-8")
    assert html.count('class="hh-file"') >= n and internal_codes(_text(html)) == []
    if household_file.chromium() is not None:
        pdf = h.root / "one.pdf"
        res = CliRunner().invoke(cli_app, ["--home", str(h.root), "household", "print", code, "--out", str(pdf)])
        assert res.exit_code == 0, res.output
        assert pdf.read_bytes()[:5] == b"%PDF-"
    monkeypatch.setattr(household_file, "CHROMIUM", ("/nonexistent/chromium",))
    monkeypatch.setattr(household_file.shutil, "which", lambda _: None)
    res = CliRunner().invoke(cli_app, ["--home", str(h.root), "household", "print", code, "--out", str(h.root / "x.pdf")])
    assert res.exit_code == 1 and "没有安装 Chromium" in res.output and "Traceback" not in res.output
    assert not (h.root / "x.pdf").exists()


def test_a_ledger_upgraded_after_its_night_gets_the_register_when_the_night_is_published_again(home) -> None:
    from datetime import date as day

    from sqlalchemy import delete

    from bidui.clues.publish import Register, _replace_register, publish_night

    h, _, _ = home
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        with ledger.write() as s:
            before = s.scalar(select(func.count()).select_from(RegisterMember))
            night = s.scalar(select(func.max(RegisterHousehold.night)))
            s.execute(delete(RegisterMember))
            s.execute(delete(RegisterHousehold))
    finally:
        ledger.close()
    result = publish_night(h, night)
    assert result.already and result.new == 0
    assert _read(h, lambda s: s.scalar(select(func.count()).select_from(RegisterMember))) == before > 0
    # An older night's copy never replaces a newer one.
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        with ledger.write() as s:
            _replace_register(s, Register([], []), day(2000, 1, 1), again=True)
    finally:
        ledger.close()
    assert _read(h, lambda s: s.scalar(select(func.count()).select_from(RegisterMember))) == before


def test_publish_writes_only_what_changed_in_the_register_and_the_copy_equals_tonights(home) -> None:
    """The register copy is diffed, not rewritten: a household gone, one changed, one new, a
    member gone, one new and one delivered twice leave the ledger holding exactly tonight's
    register (as a multiset of rows), with the untouched rows kept where they were."""
    from datetime import timedelta

    from bidui.clues.publish import Register, _replace_register

    h, _, _ = home
    hh_cols = [c.name for c in RegisterHousehold.__table__.columns]
    m_cols = [c.name for c in RegisterMember.__table__.columns if c.name != "id"]

    def copy(s):
        return ([{c: getattr(r, c) for c in hh_cols} for r in s.scalars(select(RegisterHousehold))],
                [{c: getattr(r, c) for c in m_cols} | {"id": r.id} for r in s.scalars(select(RegisterMember))])

    households, members = _read(h, copy)
    assert len(households) >= 3 and len(members) >= 3
    night = households[0]["night"] + timedelta(days=1)
    gone, changed, *rest = sorted(households, key=lambda r: r["household_code"])
    tonight_h = [dict(r, night=night) for r in rest]
    tonight_h.append(dict(changed, head_name="改过的户主", member_count=changed["member_count"] + 1, night=night))
    tonight_h.append(dict(rest[0], household_code="HH-NEW-0001", night=night))
    kept_members = [m for m in members if m["household_code"] != gone["household_code"]]
    dropped, twice, *others = kept_members
    plain = [{c: m[c] for c in m_cols} for m in [twice, *others]]
    dicts = [*plain, {c: twice[c] for c in m_cols},
             {"household_code": changed["household_code"], "seq": 9999, "person_key": "R:new", "name": "新成员",
              "relation": "子", "sex": "男", "birth_year": 2020}]
    tonight_m = [tuple(m[c] for c in m_cols) for m in dicts]  # as register_rows gives them
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        with ledger.write() as s:
            assert _replace_register(s, Register(tonight_h, tonight_m), night, again=False)
    finally:
        ledger.close()
    after_h, after_m = _read(h, copy)

    def bag(rows, cols):
        return sorted(tuple(str(r[c]) for c in cols) for r in rows)

    assert bag(after_h, hh_cols) == bag(tonight_h, hh_cols)
    assert bag(after_m, m_cols) == bag(dicts, m_cols)
    # Untouched member rows were kept, not deleted and inserted again.
    untouched = {m["id"] for m in others}
    assert untouched <= {m["id"] for m in after_m}
    assert dropped["id"] not in {m["id"] for m in after_m}


def test_a_register_the_same_as_the_copys_is_not_read_again_and_a_changed_or_damaged_one_is(home) -> None:
    """A quiet night's publish takes the register copy as it is when the rows it would be made from
    digest the same (only its night moves); a member renamed in the register, or linked to another
    person, makes the digest differ and reaches the copy; a copy that lost rows is compared row by
    row again, and publishing its night again repairs it."""
    from datetime import timedelta

    from bidui.clues import publish as pub

    h, _, _ = home
    m_cols = [c.name for c in RegisterMember.__table__.columns if c.name != "id"]

    def members(s):
        return sorted(tuple(str(getattr(r, c)) for c in m_cols) for r in s.scalars(select(RegisterMember)))

    def rows_tonight(night):
        con = wh.connect(h.warehouse)
        try:
            return pub.register_rows(con, night, _read(h, pub.kept_register_digest))
        finally:
            con.close()

    night = _read(h, lambda s: s.scalar(select(func.max(RegisterHousehold.night))))
    first = _read(h, pub.kept_register_digest)
    before = _read(h, members)
    assert first and len(before) > 10
    quiet = rows_tonight(night)
    assert quiet.unchanged and quiet.digest == first and quiet.members == [] and quiet.households == []

    con = wh.connect(h.warehouse)
    try:
        (snap, renamed), = con.execute("SELECT snapshot_date, min(source_row) FROM ds_register_members "
                                       "WHERE snapshot_date = (SELECT max(snapshot_date) FROM ds_register_members) "
                                       "GROUP BY ALL").fetchall()
        con.execute("UPDATE ds_register_members SET name = '改过名' WHERE snapshot_date = ? AND source_row = ?",
                    [snap, renamed])
        (relinked,), = con.execute("SELECT max(row_id) FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) AND dataset = 'register_members' "
                                   "AND method <> 'none'", [night]).fetchall()
        con.execute("UPDATE links SET person_key = '520000000000000000' WHERE ? BETWEEN night AND coalesce(last_night, night) AND dataset = 'register_members' "
                    "AND row_id = ?", [night, relinked])
    finally:
        con.close()
    changed = rows_tonight(night)
    assert not changed.unchanged and changed.digest not in (None, first) and len(changed.members) == len(before)
    pub.publish_night(h, night, again=True)
    after = _read(h, members)
    assert after != before and len(after) == len(before)
    assert any(r[m_cols.index("name")] == "改过名" for r in after)
    assert any(r[m_cols.index("person_key")] == "520000000000000000" for r in after)
    assert _read(h, pub.kept_register_digest) == changed.digest

    # A copy that lost rows (a partial restore, a hand edit) is not taken as the register's.
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        with ledger.write() as s:
            lost = list(s.scalars(select(RegisterMember.id).order_by(RegisterMember.id).limit(3)))
            s.execute(RegisterMember.__table__.delete().where(RegisterMember.id.in_(lost)))
    finally:
        ledger.close()
    assert _read(h, pub.kept_register_digest) is None
    assert not rows_tonight(night).unchanged
    pub.publish_night(h, night, again=True)
    assert _read(h, members) == after and _read(h, pub.kept_register_digest) == changed.digest
    # A copy altered without losing a row still digests as made; publishing its night again reads
    # the register and repairs it.
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        with ledger.write() as s:
            s.execute(RegisterMember.__table__.update().where(RegisterMember.id == lost[-1] + 1).values(name="手改"))
    finally:
        ledger.close()
    assert _read(h, pub.kept_register_digest) == changed.digest and _read(h, members) != after
    pub.publish_night(h, night, again=True)
    assert _read(h, members) == after
    # The next night, the same register: the copy's night moves, its rows stay.
    quiet = rows_tonight(night)
    assert quiet.unchanged
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        with ledger.write() as s:
            assert pub._replace_register(s, quiet, night + timedelta(days=1), again=False)
    finally:
        ledger.close()
    assert _read(h, members) == after
    assert _read(h, lambda s: set(s.scalars(select(RegisterHousehold.night)))) == {night + timedelta(days=1)}


def test_on_paper_the_link_weights_are_printed_open() -> None:
    """A printed clue or household file cannot be clicked: the weights of a scored link are open
    there (a closed heading with nothing under it was printed), and folded on the screen."""
    from types import SimpleNamespace

    from bidui.web.deps import templates

    env = templates.env
    view = SimpleNamespace(records=[], link="按姓名和出生日期比对", waterfall=[
        SimpleNamespace(comparison="姓名", level="相同", weight=13.3)])
    clue = SimpleNamespace(link_method="fuzzy")
    evidence = env.get_template("_evidence.html")
    screen = evidence.render(view=view, clue=clue)
    assert "<details>" in screen and "<details open>" not in screen
    for page in ("clue_print.html", "household_print.html"):
        source = env.loader.get_source(env, page)[0]
        assert "paper = true" in source, page  # every paper record sets it before the evidence
    assert "<details open>" in evidence.render(view=view, clue=clue, paper=True)


def test_a_household_not_on_the_register_prints_by_its_hukou_number_not_as_a_register_code(home) -> None:
    """漏评: the household has a 户号 and no 户编号; its file said 户编号 <户号> as if it were one."""
    h, town, _ = home
    hukou = _read(h, lambda s: s.scalar(select(Clue.hukou_number).where(
        Clue.township_code == town, Clue.household_code == "", Clue.hukou_number != "").limit(1)))
    assert hukou
    c = client_for(h)
    login(c, "town")
    page = _text(c.get(f"/households/{hukou}/print").text)
    assert f"户号 {hukou}（不在建档立卡名单中）" in page and f"户编号 {hukou}" not in page
