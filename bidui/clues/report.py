"""Follow-up figures: issued, verified, closed, closure rate (整改销号率), on-time rate, overdue;
by county, township, rule and category; 属实率 per rule; the counts behind 错评 / 漏评 / 错退.
The three-day report (三天一报) is this with `since` three days back: what moved in the window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues.models import Clue, ClueEvent, Division
from bidui.clues.states import CLOSED, DISPATCHED, NOT_TRUE, RETURNED, TRUE_OUTCOMES, VERIFIED

COLUMNS = {"issued": "下发", "verified": "已核实", "returned": "退回待补充", "closed": "已销号", "closure_rate": "整改销号率",
           "on_time_rate": "按时核实率", "overdue": "逾期未核实", "true_rate": "属实率"}
WINDOW_COLUMNS = {"new_in_window": "期间新增", "verified_in_window": "期间核实", "returned_in_window": "期间退回",
                  "closed_in_window": "期间销号"}


@dataclass
class Report:
    today: date
    scope: str | None
    since: date | None
    overall: pl.DataFrame
    by_county: pl.DataFrame
    by_township: pl.DataFrame
    by_rule: pl.DataFrame
    by_category: pl.DataFrame
    overdue: pl.DataFrame
    findings: pl.DataFrame  # 错评 / 漏评 / 错退
    scope_name: str = ""  # the division's name (a person reads 黔中州, not 529000000000)
    burden: pl.DataFrame | None = None  # 核查负担 per rule (see `burden`)


def clue_frame(session: Session, scope_code: str | None) -> pl.DataFrame:
    q = select(Clue.id, Clue.rule_code, Clue.rule_title, Clue.category, Clue.county_code, Clue.township_code,
               Clue.village_code, Clue.household_code, Clue.hukou_number, Clue.subject_name, Clue.status, Clue.outcome, Clue.due_date,
               Clue.verified_on, Clue.closed_on, Clue.first_seen, Clue.before_registration, Clue.household_status)
    if scope_code:
        q = q.where(scope.under(Clue.township_code, scope_code))
    rows = session.execute(q).all()
    schema = {"id": pl.Int64, "rule_code": pl.String, "rule_title": pl.String, "category": pl.String,
              "county_code": pl.String, "township_code": pl.String, "village_code": pl.String,
              "household_code": pl.String, "hukou_number": pl.String, "subject_name": pl.String, "status": pl.String, "outcome": pl.String,
              "due_date": pl.Date, "verified_on": pl.Date, "closed_on": pl.Date, "first_seen": pl.Date,
              "before_registration": pl.Boolean, "household_status": pl.String}
    frame = pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")
    signed = first_signed(session, scope_code)
    frame = frame.join(pl.DataFrame([(k, *v) for k, v in signed.items()], orient="row",
                                    schema={"id": pl.Int64, "signed_on": pl.Date, "due_when_signed": pl.Date}),
                       on="id", how="left")
    return frame.join(returns(session, scope_code), on="id", how="left")


def returns(session: Session, scope_code: str | None) -> pl.DataFrame:
    """The clues ever returned (few), with their returns' days, the last, and their history of
    states (`history`: each event's day and the state it left the clue in, in order): a returned
    clue's state on a past day is read from it (`as_of`), not guessed from its latest dates."""
    returned = select(ClueEvent.clue_id).where(ClueEvent.kind == "return")
    q = (select(ClueEvent.clue_id, ClueEvent.at, ClueEvent.kind, ClueEvent.to_status)
         .join(Clue, Clue.id == ClueEvent.clue_id)
         # (every clue starts dispatched: its first event says nothing more)
         .where(ClueEvent.clue_id.in_(returned), ClueEvent.to_status.is_not(None), ClueEvent.kind != "dispatched")
         .order_by(ClueEvent.clue_id, ClueEvent.at, ClueEvent.id))
    if scope_code:
        q = q.where(scope.under(Clue.township_code, scope_code))
    rows: dict[int, dict] = {}
    for clue_id, at, kind, to_status in session.execute(q):
        r = rows.setdefault(clue_id, {"days": [], "history": []})
        r["history"].append({"day": _day(at), "status": to_status})
        if kind == "return":
            r["days"].append(_day(at))
    return pl.DataFrame([(k, v["days"], max(v["days"]), v["history"]) for k, v in rows.items()], orient="row",
                        schema={"id": pl.Int64, "returned_days": pl.List(pl.Date), "returned_on": pl.Date,
                                "history": pl.List(pl.Struct({"day": pl.Date, "status": pl.String}))})


def first_signed(session: Session, scope_code: str | None) -> dict[int, tuple[date, date | None]]:
    """Each signed clue's first signing in its round (since it was dispatched, or raised again), as
    the ledger recorded it, not as the date typed on the form (核实日期, which a verifier may set
    back), and the due date it had then: a county's 退回 gives a new one, which the first signing
    is not measured against. None for the due date when the ledger does not say (the round raised
    again before its event kept it): the clue's own then counts."""
    round_start = (select(ClueEvent.clue_id, func.max(ClueEvent.at).label("at"))
                   .where(ClueEvent.kind == "reraised").group_by(ClueEvent.clue_id).subquery())
    q = (select(ClueEvent.clue_id, func.min(ClueEvent.at))
         .join(Clue, Clue.id == ClueEvent.clue_id)
         .outerjoin(round_start, round_start.c.clue_id == ClueEvent.clue_id)
         .where(ClueEvent.kind == "verify", or_(round_start.c.at.is_(None), ClueEvent.at >= round_start.c.at))
         .group_by(ClueEvent.clue_id))
    if scope_code:
        q = q.where(scope.under(Clue.township_code, scope_code))
    signed = {i: _day(at) for i, at in session.execute(q)}
    # Returned since (few): the due date of the round's start, from its event.
    returned = select(ClueEvent.clue_id).where(ClueEvent.kind == "return", ClueEvent.clue_id.in_(
        select(Clue.id).where(scope.under(Clue.township_code, scope_code)) if scope_code else select(Clue.id)))
    due: dict[int, date | None] = {}
    for clue_id, payload in session.execute(
            select(ClueEvent.clue_id, ClueEvent.payload)
            .where(ClueEvent.clue_id.in_(returned), ClueEvent.kind.in_(("dispatched", "reraised")))
            .order_by(ClueEvent.clue_id, ClueEvent.at, ClueEvent.id)):
        given = (payload or {}).get("due_date")  # the last one read is the round's start
        due[clue_id] = date.fromisoformat(given) if given else None
    return {i: (day, due.get(i)) for i, day in signed.items()}


def _day(at: datetime | str) -> date:
    return (datetime.fromisoformat(at) if isinstance(at, str) else at).date()


def _figures(frame: pl.DataFrame, by: list[str], today: date, since: date | None) -> pl.DataFrame:
    done = pl.col("status").is_in([VERIFIED, CLOSED])
    aggs = [
        pl.len().alias("issued"), done.sum().alias("verified"), (pl.col("status") == CLOSED).sum().alias("closed"),
        # Signed by the due date it had then, as the ledger recorded the signing (`first_signed`);
        # a clue whose signing the ledger holds no event of (history imported): its typed date.
        (done & (pl.coalesce("signed_on", "verified_on") <= pl.coalesce("due_when_signed", "due_date")))
        .sum().alias("_on_time"),
        (pl.col("status").is_in([DISPATCHED, RETURNED]) & (pl.col("due_date") < today)).sum().alias("overdue"),
        (done & pl.col("outcome").is_in(list(TRUE_OUTCOMES))).sum().alias("_true"),
        # Sent back and not signed again yet: out of 已核实 until the township signs again, and
        # counted here (a reviewer's four returns took 已核实 from 10 to 6 with no trace of them).
        (pl.col("status") == RETURNED).sum().alias("returned"),
    ]
    if since:
        aggs += [(pl.col("first_seen") >= since).sum().alias("new_in_window"),
                 (done & (pl.col("verified_on") >= since)).sum().alias("verified_in_window"),
                 pl.col("returned_days").list.eval(pl.element().is_between(since, today)).list.sum().fill_null(0)
                 .sum().alias("returned_in_window"),
                 (pl.col("closed_on") >= since).sum().alias("closed_in_window")]
    grouped = frame.group_by(by).agg(aggs) if by else frame.select(aggs)
    rate = lambda a, b: pl.when(pl.col(b) > 0).then((pl.col(a) / pl.col(b)).round(4))  # noqa: E731
    figures = grouped.with_columns(rate("closed", "issued").alias("closure_rate"),
                                   rate("_on_time", "verified").alias("on_time_rate"),
                                   rate("_true", "verified").alias("true_rate")).drop("_on_time", "_true")
    # In the order of COLUMNS and WINDOW_COLUMNS after the grouping's own (how a sheet lists them).
    order = [*by, *(c for c in (*COLUMNS, *WINDOW_COLUMNS) if c in figures.columns)]
    return figures.select(order).sort(by or "issued")


BURDEN_COLUMNS = {"issued": "下发", "verified": "已核实", "true": "属实", "not_true": "不属实",
                  "median_days": "核实用时中位数（天）", "visits_per_true": "每查实一条需核实（条）"}


def burden(frame: pl.DataFrame) -> pl.DataFrame:
    """核查负担 per rule: issued, verified, 属实, 不属实, the median days from dispatch (first seen)
    to the verification, and visits per true finding (verified ÷ 属实; null when none is 属实).
    A township visits a household for each clue it verifies: a rule with many visits per true
    finding spends its time for little. The heaviest first: verified with none 属实, then by
    visits per true finding."""
    done = pl.col("status").is_in([VERIFIED, CLOSED])
    days = (pl.col("verified_on") - pl.col("first_seen")).dt.total_days()
    grouped = frame.group_by("rule_code", "rule_title").agg(
        pl.len().alias("issued"), done.sum().alias("verified"),
        (done & pl.col("outcome").is_in(list(TRUE_OUTCOMES))).sum().alias("true"),
        (done & (pl.col("outcome") == NOT_TRUE)).sum().alias("not_true"),
        days.filter(done & pl.col("verified_on").is_not_null()).median().alias("median_days"))
    out = grouped.with_columns(
        pl.col("median_days").cast(pl.Float64).round(1),
        pl.when(pl.col("true") > 0).then((pl.col("verified") / pl.col("true")).round(2)).alias("visits_per_true"))
    heaviest = pl.when((pl.col("true") == 0) & (pl.col("verified") > 0)).then(float("inf")).otherwise(
        pl.col("visits_per_true").fill_null(0.0))
    return out.sort([heaviest, pl.col("issued"), pl.col("rule_code")], descending=[True, True, False])


def as_of(frame: pl.DataFrame, day: date) -> pl.DataFrame:
    """The clues as they stood at the end of `day` (a report of a past day, a 三天一报 made again):
    those first seen by then, a verification or a closing after it undone (not yet verified: its
    outcome unknown; verified, not yet closed). As the trend reads the ledger, by the latest dates
    it keeps: a clue verified, returned and verified again counts from its last verification. A
    day that is today changes nothing."""
    later = lambda c: (pl.col(c) > day).fill_null(False)  # noqa: E731
    # A clue ever returned: its state then is the one its last event by the day left it in (its
    # latest dates say nothing of a return and a signing between them).
    then = pl.col("history").list.eval(
        pl.element().filter(pl.element().struct.field("day") <= day).struct.field("status")).list.last()
    returned = pl.col("history").is_not_null()
    # Signed after the day, as the ledger recorded it, whatever date was typed: not yet verified then.
    unsigned = (pl.when(returned).then(~then.fill_null(DISPATCHED).is_in([VERIFIED, CLOSED]))
                .otherwise(later("verified_on") | later("signed_on")))
    unclosed = pl.when(returned).then(then.fill_null(DISPATCHED) != CLOSED).otherwise(later("closed_on"))
    return frame.filter((pl.col("first_seen") <= day).fill_null(True)).with_columns(
        pl.when(returned).then(then.fill_null(DISPATCHED))
        .when(pl.col("status").is_in([VERIFIED, CLOSED]) & unsigned).then(pl.lit(DISPATCHED))
        .when((pl.col("status") == CLOSED) & later("closed_on")).then(pl.lit(VERIFIED))
        .otherwise(pl.col("status")).alias("status"),
        pl.when(unsigned).then(None).otherwise(pl.col("outcome")).alias("outcome"),
        pl.when(unsigned).then(None).otherwise(pl.col("verified_on")).alias("verified_on"),
        pl.when(unsigned).then(None).otherwise(pl.col("signed_on")).alias("signed_on"),
        pl.when(unclosed).then(None).otherwise(pl.col("closed_on")).alias("closed_on"))


def build(session: Session, scope_code: str | None = None, today: date | None = None,
          since: date | None = None) -> Report:
    today = today or date.today()
    frame = as_of(clue_frame(session, scope_code), today)
    names = {d.code: d.name for d in session.scalars(select(Division))}
    named = frame.with_columns(
        pl.col("county_code").replace_strict(names, default=pl.col("county_code")).alias("county"),
        pl.col("township_code").replace_strict(names, default=pl.col("township_code")).alias("township"),
        pl.col("village_code").replace_strict(names, default=pl.col("village_code")).alias("village"))
    true_ = pl.col("outcome").is_in(list(TRUE_OUTCOMES)) & pl.col("status").is_in([VERIFIED, CLOSED])
    kinds = {
        "错评（证据早于识别年份）": (pl.col("category") == "mis_inclusion") & pl.col("before_registration").fill_null(False),
        "漏评": pl.col("category") == "missed_inclusion",
        "错退（已脱贫户）": (pl.col("category") == "exit_risk") & (pl.col("household_status") == "已脱贫"),
    }
    findings = pl.DataFrame({
        "kind": list(kinds), "raised": [named.filter(c).height for c in kinds.values()],
        "confirmed": [named.filter(c & true_).height for c in kinds.values()]})
    # A missed household (漏评) is on no register: it is found by its hukou number (户号).
    household = pl.when(pl.col("household_code").fill_null("") != "").then(pl.col("household_code")) \
        .when(pl.col("hukou_number").fill_null("") != "").then(pl.lit("户号 ") + pl.col("hukou_number")).alias("household_code")
    overdue = named.filter(pl.col("status").is_in([DISPATCHED, RETURNED]) & (pl.col("due_date") < today)).select(
        "id", "county", "township", "village", household, "subject_name", "rule_title", "due_date",
        (pl.lit(today) - pl.col("due_date")).dt.total_days().alias("days_overdue")).sort("days_overdue", descending=True)
    # A prefecture's own code may not be among the divisions delivered (counties, townships, villages).
    scope_name = names.get(scope_code) or {"prefecture": "全市（州）", "county": "全县（区）"}.get(
        scope.level(scope_code), scope_code) if scope_code else "全市（州）"
    return Report(today, scope_code, since, _figures(named, [], today, since),
                  _figures(named, ["county_code", "county"], today, since),
                  # counties in the order of 按县 (their codes), not of their names
                  _figures(named, ["county_code", "county", "township_code", "township"], today, since),
                  _figures(named, ["rule_code", "rule_title"], today, since),
                  _figures(named, ["category"], today, since), overdue, findings, scope_name, burden(named))


def three_days(session: Session, scope_code: str | None = None, today: date | None = None) -> Report:
    today = today or date.today()
    return build(session, scope_code, today, since=today - timedelta(days=2))


SHEET_LABELS = {"county_code": "县代码", "county": "县", "township_code": "乡镇代码", "township": "乡镇", "rule_code": "规则",
                "rule_title": "疑点", "category": "类别", "id": "线索编号", "village": "村", "household_code": "户编号",
                "subject_name": "对象", "due_date": "截止日期", "days_overdue": "逾期天数", "kind": "类型",
                "raised": "线索数", "confirmed": "核实属实"} | COLUMNS | WINDOW_COLUMNS | BURDEN_COLUMNS
# Columns whose empty value means "none to count from": a sheet shows — there, not a blank (as the
# dashboard does), the rates too.
DASHED = ("visits_per_true", "median_days", *(c for c in COLUMNS if c.endswith("_rate")))

# What a figure counts, where its name alone would mislead: under the dashboard's cards and tables,
# and under the sheets of the report workbook.
ON_TIME_NOTE = ("按时核实率：已核实的线索中，在截止日期前提交核实结论的比例。以系统记录的签字提交时间为准，不看填写的"
                "核实日期；被县级退回后重新核实的，按第一次提交是否按时计。")
FINDINGS_NOTE = ("这里只数更确切的一部分，与“按类别”的数字不同：错评只数证据早于该户识别年份的（该户本不应纳入；证据在"
                 "识别之后的，是脱贫退出的问题）；错退只数已脱贫户的退出风险线索（“按类别”的错退/返贫风险还含未脱贫户）；"
                 "漏评与“按类别”的漏评疑点相同。")
VERIFIED_NOTE = ("已核实：已签字提交（待县级审核或已销号）的线索；被县级退回的不计在内，计入“退回待补充”，乡镇重新签字后"
                 "再计入已核实。")
# Keyed by the column that shows the figure: a sheet or a downloaded table with it says so beneath.
COLUMN_NOTES = {"returned": VERIFIED_NOTE, "on_time_rate": ON_TIME_NOTE, "confirmed": FINDINGS_NOTE}


def notes(columns: list[str]) -> str:
    """What the figures of a table with these columns count, where their names alone would mislead."""
    return "\n".join(note for column, note in COLUMN_NOTES.items() if column in columns)


# Code columns a sheet leaves out: each has a name column beside it.
CODE_COLUMNS = ("county_code", "township_code", "village_code", "rule_code")


def for_people(frame: pl.DataFrame) -> pl.DataFrame:
    """A report table as a person reads it: names, not codes; categories in words."""
    from bidui.clues.present import CATEGORY_LABELS

    frame = frame.drop([c for c in CODE_COLUMNS if c in frame.columns])
    if "category" in frame.columns:
        frame = frame.with_columns(pl.col("category").replace_strict(CATEGORY_LABELS, default="其他"))
    return frame


def title(report: Report) -> str:
    """The heading of every sheet: which report, which window, whose division, as of when."""
    name = "三天一报" if report.since else "线索核查进展"
    window = f"（{report.since.isoformat()} 至 {report.today.isoformat()}）" if report.since else ""
    return f"{name}{window} 范围：{report.scope_name or report.scope or '全市（州）'} 生成：{report.today.isoformat()}"


def write_xlsx(report: Report, out: Path) -> None:
    import xlsxwriter

    from bidui.text import XLSX_OPTIONS, neutralise_formula

    wb = xlsxwriter.Workbook(str(out), XLSX_OPTIONS)
    heading = neutralise_formula(title(report))
    sheets = [("概览", report.overall), ("按县", report.by_county), ("按乡镇", report.by_township),
              ("按规则", report.by_rule), ("按类别", report.by_category), ("错评漏评错退", report.findings),
              ("逾期清单", report.overdue)]
    if report.burden is not None:
        sheets.insert(4, ("核查负担", report.burden))
    bold = wb.add_format({"bold": True})
    pct = wb.add_format({"num_format": "0.0%"})
    for name, frame in sheets:
        frame = for_people(frame)
        ws = wb.add_worksheet(name)
        ws.write_string(0, 0, heading, bold)
        ws.write_row(1, 0, [neutralise_formula(SHEET_LABELS.get(c, c)) for c in frame.columns], bold)
        for r, row in enumerate(frame.iter_rows(), start=2):
            for c, v in enumerate(row):
                col = frame.columns[c]
                if v is None:
                    if col in DASHED:
                        ws.write_string(r, c, "—")
                    continue
                if col.endswith("_rate"):
                    ws.write_number(r, c, v, pct)
                elif isinstance(v, int | float):
                    ws.write_number(r, c, v)
                else:  # names and places come from department data
                    ws.write_string(r, c, neutralise_formula(str(v)))
        if note := notes(frame.columns):
            ws.write_string(frame.height + 3, 0, note)
        ws.set_column(0, len(frame.columns), 14)
    wb.close()
