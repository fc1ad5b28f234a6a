"""Issue 16: how a record reads to a person, in one place (bidui.clues.present).

Every rule's clues go through every non-web surface — the township workbook, the exports, the
three-day and progress reports, the nightly run report — and no internal code may come out
(tests/present_support.internal_codes). The ledger holds clues of every outcome and state."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from python_calamine import CalamineWorkbook
from sqlalchemy import select
from typer.testing import CliRunner

from bidui.clues import actions, report
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.load_messages import file_message
from bidui.clues.models import Clue, Division, EvidenceSnapshot
from bidui.clues.present import clue_view, evidence_text, reasons, rule_guide, signer
from bidui.clues.states import (
    CLOSED,
    DISPATCHED,
    NOT_TRUE,
    RETURNED,
    TRUE_EXEMPT,
    TRUE_FIXED,
    VERIFIED,
    Finding,
)
from bidui.clues.users import add_user
from bidui.clues.workbook import write_workbook
from bidui.flows import nightly
from bidui.home import Home
from bidui.rules.engine import GUIDE_KEYS, RuleError, load_rules
from tests.present_support import internal_codes

NIGHT = "2026-11-20"
TODAY = date(2026, 11, 25)
PASSWORD = "present-pass-1"


@pytest.fixture(scope="module")
def home(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Home:
    """The tiny prefecture's first night published, and clues of every outcome and every state."""
    home = Home(tmp_path_factory.mktemp("present"))
    nightly.run_night(home, tiny / "inbox" / NIGHT)
    ledger = open_ledger(ledger_url(home.ledger))
    try:
        with ledger.write() as s:
            towns = sorted({c.township_code for c in s.scalars(select(Clue))})
            users = {t: add_user(s, f"town{i}", f"乡镇{i}", "township", t, PASSWORD, "扶贫专干") for i, t in enumerate(towns)}
            counties = {c: add_user(s, f"county{c}", "县审核", "county", c + "000000", PASSWORD)
                        for c in sorted({t[:6] for t in towns})}
        with ledger.write() as s:
            clues = list(s.scalars(select(Clue).order_by(Clue.id)))
            # Per rule, its first clues: verified with each outcome, then one closed, one returned.
            by_rule: dict[str, list[Clue]] = {}
            for c in clues:
                by_rule.setdefault(c.rule_code, []).append(c)
            outcomes = [(TRUE_FIXED, "数据已更正"), (TRUE_EXEMPT, None), (NOT_TRUE, None)]
            for rule_clues in by_rule.values():
                for i, c in enumerate(rule_clues[:3]):
                    outcome, action = outcomes[i]
                    actions.verify(s, c.id, c.version, users[c.township_code],
                                   Finding(outcome, action, "入户核实：情况属实或已查明", "张三", "驻村干部", TODAY), TODAY)
                if len(rule_clues) >= 2:
                    c = rule_clues[0]
                    actions.close(s, c.id, c.version, counties[c.township_code[:6]], TODAY)
                    c = rule_clues[1]
                    actions.send_back(s, c.id, c.version, counties[c.township_code[:6]], "请补充证明材料",
                                      TODAY + timedelta(days=7), TODAY)
    finally:
        ledger.close()
    return home


def _ledger_read(home: Home):
    return open_ledger(ledger_url(home.ledger))


def _workbook_text(path: Path) -> str:
    wb = CalamineWorkbook.from_path(str(path))
    return "\n".join("\t".join("" if v is None else str(v) for v in row)
                     for name in wb.sheet_names if name != "_token" for row in wb.get_sheet_by_name(name).to_python())


def _no_codes(surface: str, text: str) -> None:
    found = internal_codes(text)
    assert not found, f"{surface} shows internal codes: {sorted(set(found))[:20]}"


# ---------------------------------------------------------------- the detector can fail


def test_the_detector_finds_each_kind_of_internal_code() -> None:
    assert internal_codes("vehicle_type_code：H31；车辆类型：H31") == ["vehicle_type_code", "H31", "H31"]
    assert internal_codes("类别 exit_risk，状态 dispatched，证件 valid") == ["exit_risk", "dispatched", "valid"]
    assert internal_codes("证据来源 register_members，规则 VEHICLE") == ["register_members", "VEHICLE"]
    assert internal_codes("范围：529000000000 生成：2026-11-25") == ["529000000000"]
    assert internal_codes("is_primary：True；年学费：None") == ["is_primary", "True", "None"]
    # Data is not a code: IDs, household and hukou numbers, plates, credit codes, amounts, units.
    assert internal_codes("证件号码：52900119880427107X；户编号：5290010012010005；户号：5290011012030000216；"
                          "号牌号码：贵J53292；统一社会信用代码：92529001Q4PJ35Y7EF；注册资本：100 万元；"
                          "建筑面积：69.56 m²；鉴定等级：D级；户主证件号码：529001195304124…（被 Excel 截断）") == []


def test_planted_codes_on_a_surface_are_caught(home: Home, tmp_path: Path) -> None:
    """The surface check fails when a code gets through: a clue whose title is its code."""
    ledger = _ledger_read(home)
    try:
        with ledger.write() as s:
            clue = s.scalars(select(Clue).where(Clue.status == DISPATCHED)).first()
            saved = clue.rule_title
            clue.rule_title = clue.rule_code
        with ledger.read() as s:
            out = tmp_path / "planted.xlsx"
            write_workbook(s, clue.township_code, out, "k" * 32, "admin")
        with pytest.raises(AssertionError, match=clue.rule_code):
            _no_codes("workbook", _workbook_text(out))
    finally:
        with ledger.write() as s:
            s.get(Clue, clue.id).rule_title = saved
        ledger.close()


# ---------------------------------------------------------------- every surface


def test_the_ledger_holds_every_outcome_and_state(home: Home) -> None:
    ledger = _ledger_read(home)
    try:
        with ledger.read() as s:
            states = {c.status for c in s.scalars(select(Clue))}
            found = {c.outcome for c in s.scalars(select(Clue)) if c.outcome}
            rules = {c.rule_code for c in s.scalars(select(Clue))}
    finally:
        ledger.close()
    assert states == {DISPATCHED, VERIFIED, RETURNED, CLOSED}
    assert found == {TRUE_FIXED, TRUE_EXEMPT, NOT_TRUE}
    assert len(rules) == 19, "every rule has clues on the tiny night"


def test_every_township_workbook_reads_without_codes(home: Home, tmp_path: Path) -> None:
    ledger = _ledger_read(home)
    try:
        with ledger.read() as s:
            towns = sorted({c.township_code for c in s.scalars(select(Clue))})
            titles = {c.rule_title for c in s.scalars(select(Clue).where(Clue.status.in_((DISPATCHED, RETURNED))))}
            texts = []
            for t in towns:
                out = tmp_path / f"{t}.xlsx"
                write_workbook(s, t, out, "k" * 32, "admin")
                texts.append(_workbook_text(out))
    finally:
        ledger.close()
    text = "\n".join(texts)
    _no_codes("workbook", text)
    assert all(title in text for title in titles)
    assert "规则含义" in text and "入户核实要点" in text and "结算明细" in text and "其他户" in text


def test_clues_export_works_on_every_outcome_and_reads_without_codes(home: Home, tmp_path: Path) -> None:
    from bidui.cli import app

    runner = CliRunner()
    ledger = _ledger_read(home)
    try:
        with ledger.read() as s:
            town = s.scalars(select(Clue.township_code)).first()
            name = s.get(Division, town).name
    finally:
        ledger.close()
    for args in (["--out", str(tmp_path / "all.csv")], ["--out", str(tmp_path / "all.xlsx")],
                 ["--township", name, "--out", str(tmp_path / "town.csv")],
                 ["--codes", "--out", str(tmp_path / "codes.xlsx")]):
        res = runner.invoke(app, ["--home", str(home.root), "clues", "export", *args])
        assert res.exit_code == 0, res.output + repr(res.exception)
        assert "Traceback" not in res.output
    people = pl.read_csv(tmp_path / "all.csv", infer_schema=False)
    assert set(people["核实结论"].drop_nulls()) - {""} == {TRUE_FIXED, TRUE_EXEMPT, NOT_TRUE}
    _no_codes("export (csv)", (tmp_path / "all.csv").read_text(encoding="utf-8-sig"))
    _no_codes("export (xlsx)", _workbook_text(tmp_path / "all.xlsx"))
    town_rows = pl.read_csv(tmp_path / "town.csv", infer_schema=False)
    assert town_rows.height and set(town_rows["乡镇"]) == {name}
    codes = CalamineWorkbook.from_path(str(tmp_path / "codes.xlsx")).get_sheet_by_index(0).to_python()
    outcome = codes[0].index("outcome")
    assert {row[outcome] for row in codes[1:]} - {""} == {TRUE_FIXED, TRUE_EXEMPT, NOT_TRUE}


def test_a_township_unknown_by_name_is_said_in_chinese(home: Home, tmp_path: Path) -> None:
    from bidui.cli import app

    res = CliRunner().invoke(app, ["--home", str(home.root), "clues", "export", "--township", "没有这个镇",
                                   "--out", str(tmp_path / "x.csv")])
    assert res.exit_code == 1 and "没有名称或代码为“没有这个镇”的行政区划" in res.output and res.exception is not None
    assert "Traceback" not in res.output


def test_report_takes_a_scope_by_name_and_refuses_an_unknown_one(home: Home) -> None:
    from bidui.cli import app

    ledger = _ledger_read(home)
    with ledger.read() as s:
        town = s.scalar(select(Division).where(Division.level == "township", Division.code.in_(
            select(Clue.township_code))))
    ledger.close()
    by_name = CliRunner().invoke(app, ["--home", str(home.root), "report", "--scope", town.name])
    assert by_name.exit_code == 0 and "整改销号率" in by_name.output and "Traceback" not in by_name.output
    for unknown in ("没有这个镇", "529099000000"):
        res = CliRunner().invoke(app, ["--home", str(home.root), "report", "--scope", unknown])
        assert res.exit_code == 1 and f"没有名称或代码为“{unknown}”" in res.output  # said, not zeros


def test_the_reports_read_without_codes(home: Home, tmp_path: Path) -> None:
    ledger = _ledger_read(home)
    try:
        with ledger.read() as s:
            prefecture = s.scalars(select(Clue.township_code)).first()[:4] + "00000000"
            three = report.three_days(s, prefecture, TODAY)
            progress = report.build(s, None, TODAY)
    finally:
        ledger.close()
    for name, rep in (("three-day", three), ("progress", progress)):
        out = tmp_path / f"{name}.xlsx"
        report.write_xlsx(rep, out)
        text = _workbook_text(out)
        _no_codes(f"{name} report", text)
        assert "错退/返贫风险" in text
    assert three.scope_name and three.scope_name != prefecture
    assert f"范围：{three.scope_name}" in _workbook_text(tmp_path / "three-day.xlsx")


def test_the_run_report_reads_without_codes(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    from bidui.flows.cli import print_report

    night = nightly.stored_report(home, date.fromisoformat(NIGHT))
    assert night is not None and night.township_names
    text = night.markdown()
    def without_file_names(text: str) -> str:
        """The delivered files' own names are the departments' words, shown as they came."""
        for f in night.files:
            text = text.replace(f["file"], "")
        return text.replace(night.folder, "")

    _no_codes("run report (markdown)", without_file_names(text))
    print_report(night)
    printed = capsys.readouterr().out
    _no_codes("run report (console)", without_file_names(printed.replace("\n", "").replace("│", "").replace(" ", "")))
    assert all(n in text for n in night.township_names.values())


# ---------------------------------------------------------------- each rule explains itself


def test_every_packaged_rule_has_a_whole_guide_and_a_custom_one_needs_none(tmp_path: Path) -> None:
    rules, _ = load_rules()
    assert len(rules) == 19
    for r in rules:
        assert r.guide is not None, r.code
        assert all(text.strip() for text in (r.guide.meaning, r.guide.checks, r.guide.keep, *r.guide.outcomes.values()))
        assert set(r.guide.outcomes) == {TRUE_FIXED, TRUE_EXEMPT, NOT_TRUE} == set(GUIDE_KEYS[2:5])
        assert not internal_codes(" ".join((r.guide.meaning, r.guide.checks, r.guide.keep, *r.guide.outcomes.values())))
    (tmp_path / "MY_RULE.sql").write_text(
        "-- code: MY_RULE\n-- title: 自定义\n-- category: data_quality\n-- inputs: register_members\n"
        "SELECT * FROM subjects WHERE FALSE\n", encoding="utf-8")
    mine = next(r for r in load_rules(tmp_path)[0] if r.code == "MY_RULE")
    assert mine.guide is None and rule_guide("MY_RULE") is None
    (tmp_path / "MY_RULE.sql").write_text(
        "-- code: MY_RULE\n-- title: 自定义\n-- category: data_quality\n-- inputs: register_members\n"
        "-- 规则含义：只写了一半\nSELECT * FROM subjects WHERE FALSE\n", encoding="utf-8")
    with pytest.raises(RuleError, match="guide lacks"):
        load_rules(tmp_path)


def test_a_long_guide_line_continues_on_the_next(tmp_path: Path) -> None:
    guide = next(r for r in load_rules()[0] if r.code == "VEHICLE").guide
    assert guide is not None and "牵引车" in guide.meaning and guide.meaning.endswith("按本地政策认定。")


# ---------------------------------------------------------------- the evidence shows what the rule used


def _views(home: Home) -> dict[str, list[dict]]:
    ledger = _ledger_read(home)
    out: dict[str, list[dict]] = {}
    try:
        with ledger.read() as s:
            for c in s.scalars(select(Clue).order_by(Clue.id)):
                snaps = list(s.scalars(select(EvidenceSnapshot).where(EvidenceSnapshot.clue_id == c.id)
                                       .order_by(EvidenceSnapshot.night.desc(), EvidenceSnapshot.id.desc())))
                view = clue_view(c, snaps)
                out.setdefault(c.rule_code, []).append(view | {"clue": c, "snaps": snaps})
    finally:
        ledger.close()
    return out


def test_every_clue_view_reads_without_codes(home: Home) -> None:
    for rule, views in _views(home).items():
        for v in views:
            assert v["guide"] is not None, rule
            shown = [v["link"], *(f"{k}：{x}" for r in v["records"] for k, x in r["fields"]),
                     *(t.text() for r in v["records"] for t in r["tables"]), *(r["empty"] for r in v["records"]),
                     *(f"{p['comparison']}{p['level']}" for p in v["waterfall"])]
            _no_codes(f"clue view of {rule}", "\n".join(shown))
            assert any(r["fields"] or r["tables"] or r["empty"] for r in v["records"]), rule


def test_the_evidence_is_what_each_rule_used(home: Home) -> None:
    views = _views(home)
    medical = views["HIGH_MEDICAL_COST"][0]["records"][0]
    bills = next(t for t in medical["tables"] if t.title == "结算明细")
    assert bills.columns == ["结算日期", "患者", "医疗机构", "医疗总费用", "个人自付"] and bills.rows
    assert all(row[3].endswith(" 元") and row[4].endswith(" 元") for row in bills.rows)
    assert dict(medical["fields"])["统计期间"] == "2025-11-21 至 2026-11-20（比对日前 365 天）"
    missed = views["MISSED_MEDICAL"][0]["records"][0]
    assert any(t.title == "结算明细" for t in missed["tables"])
    assert "不在建档立卡名单中" in views["MISSED_MEDICAL"][0]["link"]
    dropout = views["DROPOUT"]
    assert all("年龄" in dict(v["records"][0]["fields"]) for v in dropout)
    assert any(v["records"][0]["tables"] or dict(v["records"][0]["fields"]).get("学籍记录") for v in dropout)
    for v in views["DUPLICATE_MEMBER"]:
        c = v["clue"]
        others = next((t for t in v["records"][0]["tables"] if t.title.startswith("其他户")), None)
        if others:
            assert c.household_code not in [row[0] for row in others.rows], "the clue's own household is not another"
            assert all(row[1] and row[2].strip() for row in others.rows)
    for rule in ("DECEASED", "MOVED_OUT", "NAME_MISMATCH"):
        for v in views[rule]:
            if v["clue"].evidence_dataset == "hukou":
                assert v["link"].startswith("证据是本人的户籍记录"), (rule, v["link"])
    for v in views["NAME_MISMATCH"]:  # the two names compared, side by side
        shown = dict(v["records"][0]["fields"])["姓名"]
        assert shown.endswith(f"（建档立卡名单上为“{v['clue'].subject_name}”）"), shown
    vehicle = dict(views["VEHICLE"][0]["records"][0]["fields"])
    assert "vehicle_type_code" not in str(vehicle) and not internal_codes(vehicle["车辆类型"])
    invalid = dict(views["ID_INVALID"][0]["records"][0]["fields"])
    assert "证件号码问题" in invalid and "脱贫状态" not in invalid


def test_values_carry_their_units_and_words() -> None:
    record = json.dumps({"credit_code": "91X", "entity_name": "某公司", "registered_capital": 100.0,
                         "status": "存续", "source_file": "a.xlsx", "source_row": 3})
    assert evidence_text(record, "businesses") == "统一社会信用代码：91X；主体名称：某公司；注册资本：100 万元；登记状态：存续"
    fee = json.dumps({"school_name": "某校", "annual_fee": 20000.0})
    assert evidence_text(fee, "students") == "学校名称：某校；年学费：20000 元"
    car = json.dumps({"plate": "贵J00001", "vehicle_type_code": "H31", "vehicle_type": "H31"})
    assert evidence_text(car, "vehicles") == "号牌号码：贵J00001；车辆类型：轻型普通货车"
    bad = json.dumps({"owner_id_number": "529001195304124000", "owner_id_number_status": "excel_mangled"})
    assert evidence_text(bad, "dangerous_housing") == "户主证件号码：529001195304124…（被 Excel 截断，只剩前15位）"
    invalid = json.dumps({"status": "bad_birth_date", "probable_id": "529001197104097758~5290011012010000241"})
    assert evidence_text(invalid, "register_members") == "证件号码问题：出生日期不合法；可能的正确证件号码：529001197104097758"


def test_a_fuzzy_link_says_why_in_words() -> None:
    explanation = json.dumps({"parts": [
        {"comparison": "id", "level": "one digit or a transposition apart", "weight": 15.7},
        {"comparison": "name", "level": "same pinyin (homophone)", "weight": 7.0},
        {"comparison": "birth", "level": "equal", "weight": 10.5},
        {"comparison": "sex", "level": "not observed", "weight": 0.0}]})
    assert reasons(explanation, "张威", "张伟") == "证件号码差一位（或相邻两位颠倒）；姓名同音（威/伟）；出生日期一致"


def test_load_messages_are_chinese_without_the_file_name_twice() -> None:
    assert file_message("a.csv", "missing", "no payroll file tonight; the snapshot of 2026-11-19 stays in force") == \
        "今晚没有财政供养人员文件，继续使用 2026-11-19 的数据"
    said = file_message("x.xlsx", "refused", "x.xlsx: sheet not found (WorksheetNotFound)")
    assert said == "拒收（原文：sheet not found (WorksheetNotFound)）" and "x.xlsx" not in said
    assert not internal_codes(file_message("x.csv", "accepted", "3 exact duplicate row(s) collapsed; 2 row(s) with a "
                                           "rejected value, kept with that value empty; first: row 3: bad date"))



def test_a_held_files_reasons_read_in_chinese_once() -> None:
    """What an admin reads before approving a held file: why, not "see the log"; the file's name once."""
    name = "不动产登记信息_20261121.csv"
    message = (f"{name}: the last record is cut (no line break ends the last record); a transfer that stopped? Resend "
               f"it, ending with a line break, or with {name}.sha256 beside it; {name}: 195 rows, fewer than 90.0% "
               "(min_row_ratio) of the 434 rows of the snapshot of 2026-11-20 (44.9%; truncated?); the snapshot of "
               "2026-11-20 stays in force; to apply it anyway: bidui run --force (the night is run again)")
    said = file_message(name, "held", message)
    assert "最后一行不完整" in said and "本期 195 行" in said and "继续使用 2026-11-20 的数据" in said
    assert "运行日志" not in said and name not in said and internal_codes(said) == []


def test_a_signer_reads_with_a_position_only_when_there_is_one() -> None:
    """The one way pages and files write who signed: no empty （） for an account without a position."""
    assert signer("张三", "扶贫专干") == "张三（扶贫专干）"
    assert signer("张三", "") == signer("张三", None) == "张三"
    assert signer(None, "扶贫专干") == signer("", None) == ""


def test_a_decision_on_a_register_record_says_the_hukou_person_was_not_the_member() -> None:
    """A 不是本人 on a register member's clue (a death found in hukou) is about the hukou person the
    member was linked to: it read "贫困户家庭成员的这条记录不是本人的", as if the member were not herself
    (a walk, 2026-12-06). A department's record still reads as that record not being the person's."""
    from bidui.clues.present import decision_sentence

    member = decision_sentence("cannot", "register_members")
    assert "户籍中关联到的这个人不是贫困户家庭成员中的本人" in member and "这条记录不是本人的" not in member
    assert "户籍中关联到的这个人就是" in decision_sentence("must", "register_households")
    assert decision_sentence("cannot", "vehicles").startswith("机动车登记的这条记录不是本人的")
