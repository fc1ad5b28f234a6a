"""Clues as a table, two ways: for people (Chinese headers, names and words, the evidence and the
verification as they read on the clue page) and for other systems (`export_frame`: the columns of
`bidui rules export` and the clue's state, as codes)."""

from __future__ import annotations

from datetime import date

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues.models import Clue, Division
from bidui.rules.engine import EXPORT_COLUMNS

COLUMNS = (*EXPORT_COLUMNS, "clue_id", "status", "outcome", "first_seen", "last_seen", "due_date")
# Every column typed: a column whose first rows are empty (no clue verified yet among them) must
# still take the outcome of a later one (polars would infer Null from them and refuse the text).
SCHEMA: dict[str, pl.DataType] = {
    "rule_code": pl.String(), "category": pl.String(), "subject_id_number": pl.String(), "subject_name": pl.String(),
    "household_code": pl.String(), "hukou_number": pl.String(), "township_code": pl.String(),
    "village_code": pl.String(), "evidence_dataset": pl.String(), "evidence_key": pl.String(),
    "link_method": pl.String(), "link_score": pl.Float64(), "before_registration": pl.Boolean(), "clue_id": pl.Int64(),
    "status": pl.String(), "outcome": pl.String(), "first_seen": pl.Date(), "last_seen": pl.Date(), "due_date": pl.Date(),
}


def _query(night: date | None, under: str | None, *columns):
    q = select(*columns).order_by(Clue.township_code, Clue.id)
    if night:
        q = q.where(Clue.first_seen <= night, Clue.last_seen >= night)
    if under:
        q = q.where(scope.under(Clue.township_code, under))
    return q


def export_frame(session: Session, night: date | None = None, under: str | None = None) -> pl.DataFrame:
    """The clues as codes, for other systems (the columns of `bidui rules export` and the state)."""
    q = _query(night, under, *(getattr(Clue, "id" if c == "clue_id" else c) for c in COLUMNS))
    frame = pl.DataFrame([tuple(r) for r in session.execute(q)], schema=SCHEMA, orient="row")
    return frame.with_columns(pl.col("household_code").replace("", None), pl.col("hukou_number").replace("", None))


PEOPLE_COLUMNS = ("线索编号", "疑点", "类别", "对象姓名", "证件号码", "户编号", "户号", "县", "乡镇", "村", "证据来源",
                  "证据", "身份关联", "证据早于识别年份", "状态", "证据已消失", "首次发现", "最近发现", "截止日期",
                  "核实结论", "整改措施", "核实情况说明", "核实人", "职务", "核实日期", "退回理由", "销号日期")


def people_frame(session: Session, night: date | None = None, under: str | None = None) -> pl.DataFrame:
    """The clues as a person reads them: names, words, the latest evidence and the verification."""
    from bidui.clues.present import CATEGORY_LABELS, clue_evidence_text, dataset_title, link_sentence
    from bidui.clues.states import STATUS_LABELS
    from bidui.clues.workbook import latest_evidence

    names = {code: name for code, name in session.execute(select(Division.code, Division.name))}
    clues = list(session.scalars(_query(night, under, Clue)))
    evidence = latest_evidence(session, [c.id for c in clues]) if clues else {}
    rows = []
    for c in clues:
        seen, record = evidence.get(c.id, (None, None))
        yes_no = {True: "是", False: "否"}
        rows.append((c.id, c.rule_title, CATEGORY_LABELS.get(c.category, ""), c.subject_name or "",
                     c.subject_id_number or "", c.household_code or "", c.hukou_number or "",
                     names.get(c.county_code, c.county_code), names.get(c.township_code, c.township_code),
                     names.get(c.village_code or "", c.village_code or ""), dataset_title(c.evidence_dataset),
                     clue_evidence_text(c, record, seen, names), link_sentence(c, record),
                     yes_no.get(c.before_registration, "") if c.category == "mis_inclusion" else "",
                     STATUS_LABELS.get(c.status, ""), yes_no[bool(c.evidence_gone)], c.first_seen, c.last_seen,
                     c.due_date, c.outcome or "", c.action or "", c.finding or "", c.verifier_name or "",
                     c.verifier_position or "", c.verified_on, c.return_reason or "", c.closed_on))
    schema = {name: pl.String() for name in PEOPLE_COLUMNS} | {
        "线索编号": pl.Int64(), "首次发现": pl.Date(), "最近发现": pl.Date(), "截止日期": pl.Date(), "核实日期": pl.Date(),
        "销号日期": pl.Date()}
    return pl.DataFrame(rows, schema=schema, orient="row")
