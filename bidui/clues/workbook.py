"""The township workbook: its open clues to take on visits, filled in, and brought back.

Out: one row per open clue (dispatched or returned), grouped by village and household, with the
evidence and the link explanation; every cell locked except the input columns; dropdowns for
outcome and action; a very hidden sheet holding a signed token that binds the file to the
township, the clue ids and their versions.
Back: the token, the importer's scope, every value and signature are checked; all rows are
applied or none, and every bad row is named."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import xlsxwriter
from sqlalchemy import select
from sqlalchemy.orm import Session
from xlsxwriter.utility import xl_range

from bidui import config, scope
from bidui.clues import actions, link_decisions
from bidui.clues.models import Clue, Division, EvidenceSnapshot, User
from bidui.clues.present import (
    CATEGORY_LABELS,
    WORKBOOK_NOT_SELF,
    clue_evidence_text,
    dataset_title,
    link_sentence,
    rule_guide,
)
from bidui.clues.states import (
    ACTIONS,
    DISPATCHED,
    NOT_SELF,
    NOT_TRUE,
    OUTCOMES,
    RETURNED,
    STATUS_LABELS,
    Finding,
    TransitionError,
)
from bidui.clues.workbook_check import (
    INPUT_COLUMNS,
    LOCKED_COLUMNS,
    NOT_OURS,
    ROLE_ONLY,
    SHEET,
    TOKEN_PURPOSE,
    TOKEN_SHEET,
    Filled,
    WorkbookError,
    capped,
    read_filled,
)
from bidui.config import UploadSettings
from bidui.signing import serializer

__all__ = ["CATEGORY_LABELS", "WorkbookError", "apply_workbook", "import_workbook", "workbook_filename", "write_workbook"]


def open_clues(session: Session, township: str) -> list[Clue]:
    return list(session.scalars(
        select(Clue).where(Clue.township_code == township, Clue.status.in_((DISPATCHED, RETURNED)))
        .order_by(Clue.village_code, Clue.household_code, Clue.hukou_number, Clue.rule_code, Clue.id)))


def latest_evidence(session: Session, clue_ids: list[int]) -> dict[int, tuple[date, str]]:
    """Each clue's latest evidence: the night it was found and the record."""
    out: dict[int, tuple[date, str]] = {}
    for clue_id, night, record in session.execute(
            select(EvidenceSnapshot.clue_id, EvidenceSnapshot.night, EvidenceSnapshot.record)
            .where(EvidenceSnapshot.clue_id.in_(clue_ids)).order_by(EvidenceSnapshot.night, EvidenceSnapshot.id)):
        out[clue_id] = (night, record)
    return out


def workbook_filename(session: Session, township: str, day: date | None = None) -> str:
    """The file a township's workbook is saved as: by its name, not its code (核实工作簿_和屯镇_2026-11-25.xlsx)."""
    division = session.get(Division, township)
    name = division.name if division else township
    return f"核实工作簿_{name}_{(day or date.today()).isoformat()}.xlsx"


def write_workbook(session: Session, township: str, out: Path, key: str, issued_by: str) -> int:
    """Write the township's open clues to `out`; the number of clues written."""
    if not scope.is_code(township) or scope.level(township) != "township":
        raise WorkbookError(f"{township!r} is not a township code")
    clues = open_clues(session, township)
    names = {d.code: d.name for d in session.scalars(select(Division))}
    evidence = latest_evidence(session, [c.id for c in clues])
    token = serializer(key, TOKEN_PURPOSE).dumps({
        "township": township, "clues": [[c.id, c.version] for c in clues], "issued": datetime.now().isoformat(),
        "by": issued_by})
    from bidui.text import XLSX_OPTIONS, neutralise_formula

    wb = xlsxwriter.Workbook(str(out), XLSX_OPTIONS)
    ws = wb.add_worksheet(SHEET)
    head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True, "locked": True})
    band = [wb.add_format({"locked": True, "text_wrap": True, "valign": "top"}),
            wb.add_format({"locked": True, "text_wrap": True, "valign": "top", "bg_color": "#F2F2F2"})]
    inputs = wb.add_format({"locked": False, "bg_color": "#FFF2CC", "text_wrap": True, "valign": "top", "border": 1})
    date_input = wb.add_format({"locked": False, "bg_color": "#FFF2CC", "num_format": "yyyy-mm-dd", "border": 1})
    columns = LOCKED_COLUMNS + INPUT_COLUMNS
    ws.write_row(0, 0, columns, head)
    widths = {"证据": 48, "身份关联": 36, "疑点": 20, "核实情况说明": 36, "村": 14, "对象姓名": 10, "证件号码": 20}
    for i, c in enumerate(columns):
        ws.set_column(i, i, widths.get(c, 12))
    household, shade = None, 1
    for r, c in enumerate(clues, start=1):
        if (c.village_code, c.household_code or c.hukou_number) != household:
            household, shade = (c.village_code, c.household_code or c.hukou_number), 1 - shade
        fmt = band[shade]
        night, record = evidence.get(c.id, (None, None))
        row = [c.id, c.version, names.get(c.village_code or "", c.village_code or ""), c.household_code, c.hukou_number,
               c.subject_name or "", c.subject_id_number or "", c.rule_title,
               CATEGORY_LABELS.get(c.category, ""), dataset_title(c.evidence_dataset),
               clue_evidence_text(c, record, night, names), link_sentence(c, record), c.first_seen.isoformat(),
               c.due_date.isoformat(), STATUS_LABELS[c.status], c.return_reason or ""]
        for j, v in enumerate(row):
            # IDs and codes as text: Excel must not turn them into numbers. Names, addresses and the
            # evidence come from department data: none may read as a formula (even saved as CSV).
            ws.write_string(r, j, neutralise_formula(str(v)), fmt) if j != 0 and j != 1 else ws.write_number(r, j, v, fmt)
        for j in range(len(INPUT_COLUMNS)):
            ws.write_blank(r, len(LOCKED_COLUMNS) + j, None, date_input if INPUT_COLUMNS[j] == "核实日期" else inputs)
    last = max(len(clues), 1)
    first_input = len(LOCKED_COLUMNS)
    # 不属实（不是本人） is a fourth outcome, offered on the rows that stand on a linked record (as
    # the web form offers its box): two dropdowns, each over its runs of rows.
    linked = [bool(link_decisions.records_of(session, c)) for c in clues] or [False]
    for flag, choices in ((True, [*OUTCOMES, WORKBOOK_NOT_SELF]), (False, list(OUTCOMES))):
        runs, start = [], None
        for i, v in enumerate([*linked, not flag]):
            if v == flag and start is None:
                start = i
            elif v != flag and start is not None:
                runs.append(xl_range(1 + start, first_input, i, first_input))
                start = None
        if runs:
            first = runs[0].split(":")[0]
            ws.data_validation(first, {"validate": "list", "source": choices, "multi_range": " ".join(runs)})
    ws.data_validation(1, first_input + 1, last, first_input + 1, {"validate": "list", "source": list(ACTIONS)})
    ws.data_validation(1, first_input + 5, last, first_input + 5, {
        "validate": "date", "criteria": "between", "minimum": date(2000, 1, 1), "maximum": date(2100, 1, 1),
        "error_message": "请填写日期，如 2026-11-25"})
    ws.freeze_panes(1, 2)
    ws.autofilter(0, 0, last, len(columns) - 1)
    ws.protect("", {"autofilter": True, "sort": False, "format_columns": True, "format_rows": True})
    guide = wb.add_worksheet("填写说明")
    guide.write_column(0, 0, [neutralise_formula(line) for line in (
        f"乡镇：{names.get(township, township)}，导出 {date.today().isoformat()}，共 {len(clues)} 条待核实线索。",
        "只填写黄色列。核实结论：属实·已整改（须选整改措施并说明）、属实·申请豁免（须说明豁免依据）、不属实（须说明依据）。",
        f"比对把别人的记录对到了本人身上的，核实结论选“{WORKBOOK_NOT_SELF}”（只有由记录比对得出的线索可选）："
        "以后的比对不再把这条记录关联到本人，这条线索不会因此再次下发。",
        "每类疑点是什么意思、入户核实什么、结论怎么选、留存哪些佐证：见“规则说明”表。",
        "每条已填写结论的线索都须由核实人签字：填写核实人姓名、职务和核实日期。未填写结论的行不导入。",
        "请勿增删行、修改灰白色列或复制到其他文件：导入时整份文件校验，有一处不符则整份退回并列出问题行。")])
    guide.set_column(0, 0, 120)
    hidden = wb.add_worksheet(TOKEN_SHEET)
    hidden.write_string(0, 0, token)
    hidden.very_hidden()
    # After the token's sheet: its place (the third) is how a workbook of this system is recognised.
    write_rule_guides(wb, sorted({(c.rule_code, c.rule_title) for c in clues}, key=lambda r: r[1]))
    ws.activate()
    wb.close()
    return len(clues)


def write_rule_guides(wb: xlsxwriter.Workbook, rules: list[tuple[str, str]]) -> None:
    """A sheet with the guide of each rule the workbook's clues come from."""
    from bidui.text import neutralise_formula

    sheet = wb.add_worksheet("规则说明")
    head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True, "valign": "top"})
    cell = wb.add_format({"text_wrap": True, "valign": "top", "border": 1})
    columns = ("疑点", "规则含义", "入户核实要点", "属实·已整改", "属实·申请豁免", "不属实", "留存佐证")
    sheet.write_row(0, 0, columns, head)
    for i, width in enumerate((18, 40, 40, 30, 30, 30, 24)):
        sheet.set_column(i, i, width)
    for r, (code, title) in enumerate(rules, start=1):
        g = rule_guide(code)
        row = [title, *((g.meaning, g.checks, *(g.outcomes[o] for o in OUTCOMES), g.keep) if g
                        else ("（本规则没有说明，请向专班咨询）", "", "", "", "", ""))]
        sheet.write_row(r, 0, [neutralise_formula(text) for text in row], cell)  # a home's own rule's title too
    sheet.freeze_panes(1, 1)


@dataclass
class ImportResult:
    township: str
    applied: list[int]
    untouched: int
    already: list[int] = field(default_factory=list)  # rows the ledger already holds as signed (sent again)


def apply_workbook(session: Session, filled: Filled, actor: User, name: str, today: date | None = None,
                   required_attachments: Collection[str] = (), max_problems: int = 200) -> ImportResult:
    """Check a read workbook's rows against the ledger and apply them, in the caller's
    transaction: all rows or none. `filled` comes from read_filled (in the web app, from the upload
    worker); the township is checked against the user's scope again here, where it counts."""
    today = today or date.today()
    if actor.role != "township":
        raise WorkbookError(f"{name}: {ROLE_ONLY}")
    if not scope.covers(actor.scope, filled.township):
        raise WorkbookError(f"{name}: 该工作簿属于其他乡镇，不在您的管辖范围内")
    problems = list(filled.problems)
    todo: list[tuple[int, int, Finding]] = []
    already: list[int] = []
    for row in filled.rows:
        where = f"第 {row.row} 行（线索 {row.clue_id}）"
        clue = session.get(Clue, row.clue_id)
        if clue is None or clue.township_code != filled.township:
            problems.append((row.row, f"{where}：线索不存在或不属于本乡镇"))
            continue
        v = row.values
        outcome, detail = (NOT_TRUE, NOT_SELF) if v["核实结论"] == WORKBOOK_NOT_SELF else (v["核实结论"], None)
        # (no date: today stands in, so that the row's other problems are listed with it in one go)
        finding = Finding(outcome, v["整改措施"] or None, v["核实情况说明"], v["核实人"], v["职务"],
                          row.verified_on or today, detail)
        if clue.version != row.version:
            # The row imported before (the same file sent twice): refusing it as "changed since
            # exported" told a clerk their saved work had failed.
            if row.verified_on and actions.holds(clue, finding):
                already.append(clue.id)
            else:
                problems.append((row.row, f"{where}：导出后线索已被修改（当前第 {clue.version} 版），请重新导出工作簿"))
            continue
        issues = [] if row.verified_on else [f"核实日期缺失或不是日期（请填写如 {today.isoformat()}）"]
        issues += finding.problems(today, clue.first_seen)
        if detail and not link_decisions.records_of(session, clue):
            issues.append(actions.NOT_ON_A_LINK.format(choice=WORKBOOK_NOT_SELF))
        if clue.status not in (DISPATCHED, RETURNED):
            issues.append(f"线索当前状态为{STATUS_LABELS[clue.status]}，不能再次核实")
        if issues:
            problems.append((row.row, f"{where}：" + "；".join(issues)))
            continue
        todo.append((row.clue_id, row.version, finding))
    if problems:
        listed = [text for _, text in sorted(problems, key=lambda p: p[0])]
        raise WorkbookError(f"{name}: 有 {len(listed):,} 处问题，整份未导入：", capped(listed, max_problems))
    applied = []
    for clue_id, version, finding in todo:
        try:
            actions.verify(session, clue_id, version, actor, finding, today, required_attachments, via="workbook")
        except (actions.ConflictError, TransitionError) as e:
            advice = "：请重新下载工作簿填写" if isinstance(e, actions.ConflictError) else ""
            raise WorkbookError(f"{name}: 线索 {clue_id}：{e}{advice}；整份未导入") from e
        applied.append(clue_id)
    return ImportResult(filled.township, applied, len(filled.versions) - len(applied) - len(already), already)


def import_workbook(session: Session, path: Path, actor: User, key: str, today: date | None = None,
                    shown_name: str | None = None, required_attachments: Collection[str] = (),
                    limits: UploadSettings | None = None) -> ImportResult:
    """Check and apply a filled-in workbook in this process (the command line; the web app reads
    it in a worker, bidui.web.township): the upload guard's zip checks, then read_filled, then
    apply_workbook. `shown_name`: the file as its user knows it; `required_attachments`: the
    rules whose signature needs a photo or PDF (config)."""
    from bidui import uploads

    settings = limits or UploadSettings.from_config(config.load(None))
    name = shown_name or path.name
    zip_limits = uploads.workbook_zip_limits(settings.max_expanded_bytes, settings.max_ratio, settings.max_members,
                                             settings.max_rows)
    try:
        uploads.check_zip(path, zip_limits, expand=True)
    except uploads.ZipRefused as e:
        raise WorkbookError(uploads.zip_message(e, name, zip_limits, NOT_OURS)) from e
    filled = read_filled(path, key, name, actor.scope, actor.role, settings.max_rows)
    return apply_workbook(session, filled, actor, name, today, required_attachments, settings.max_problems)
