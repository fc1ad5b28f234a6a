"""Supervisor pages (county and prefecture): closure rate, on-time rate, overdue; the trend over
nights up to today (a chart with axes); breakdowns by county (a prefecture's), township and rule,
with names; 属实率 per rule; 核查负担 per rule (visits per true finding); every table downloadable
as Excel; the three-day report.

Every figure comes from the clues under the user's division (report.build filters by
scope.under, the one scope check)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse
from markupsafe import Markup, escape
from sqlalchemy import select
from starlette.background import BackgroundTask

from bidui import scope
from bidui.clues import report
from bidui.clues.models import Division, PublishRun
from bidui.clues.workbook import CATEGORY_LABELS
from bidui.text import XLSX_OPTIONS, neutralise_formula
from bidui.web.charts import gridlines, nice_max
from bidui.web.deps import Ctx, ctx
from bidui.web.security import require_role

router = APIRouter()
TREND_NIGHTS = 30


@dataclass
class Point:
    label: str  # MM-DD, or 今天
    day: date
    issued: int
    closed: int

    @property
    def open(self) -> int:
        return self.issued - self.closed

    @property
    def rate(self) -> float:
        return self.closed / self.issued if self.issued else 0.0


def trend(frame: pl.DataFrame, nights: list[date], today: date) -> list[Point]:
    """Per published night: clues issued by then, closed by then. Then today's point: closures
    happen between nights (a county closes during the day), so the last night alone would not
    show them."""
    out = [Point(n.strftime("%m-%d"), n, frame.filter(pl.col("first_seen") <= n).height,
                 frame.filter(pl.col("closed_on") <= n).height) for n in nights]
    now = Point("今天", today, frame.height, frame.filter(pl.col("closed_on").is_not_null()).height)
    if not out or today > out[-1].day or (now.issued, now.closed) != (out[-1].issued, out[-1].closed):
        out.append(now)
    return out


def trend_svg(points: list[Point], width: int, height: int, font: int, max_labels: int) -> Markup:
    """The trend as an SVG drawn on the server: 整改销号率 (line, left axis, 0–100%) and 未销号线索
    (bars, right axis), gridlines, labelled axes and a legend. Drawn for a width; the page carries
    a wide one and a narrow one (phone) so the text stays readable at either."""
    left, right, top, bottom = font * 4, font * 4, font * 3.2, font * 3
    w, h = width - left - right, height - top - bottom
    n = len(points)
    slot = w / max(n, 1)
    omax = nice_max(max((p.open for p in points), default=0))
    x = lambda i: left + slot * (i + 0.5)  # noqa: E731
    y_rate = lambda r: top + h * (1 - r)  # noqa: E731
    y_open = lambda v: top + h * (1 - v / omax)  # noqa: E731
    rate_colour, open_colour = "#1d4ed8", "#f59e0b"
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="整改销号率与未销号线索的趋势" '
             f'font-size="{font}" font-family="inherit">']
    parts += gridlines(left, top, w, h, font, 4, lambda frac: f"{frac * 100:.0f}%", rate_colour,
                       lambda frac: f"{round(omax * frac):,}", "#92400e")
    bar = min(slot * 0.6, font * 2.5)
    every = max(1, -(-n // max_labels))
    for i, p in enumerate(points):
        yy = y_open(p.open)
        parts.append(f'<rect x="{x(i) - bar / 2:.1f}" y="{yy:.1f}" width="{bar:.1f}" height="{top + h - yy:.1f}" '
                     f'fill="{open_colour}" opacity=".55"><title>{escape(p.label)}：未销号 {p.open:,} 条</title></rect>')
        if (i % every == 0 and n - 1 - i >= every) or i == n - 1:  # the last (今天) always, uncrowded
            weight = ' font-weight="600"' if p.label == "今天" else ""
            parts.append(f'<text x="{x(i):.1f}" y="{top + h + font * 1.3:.1f}" text-anchor="middle"{weight}>'
                         f'{escape(p.label)}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y_rate(p.rate):.1f}" for i, p in enumerate(points))
    parts.append(f'<path d="{path}" fill="none" stroke="{rate_colour}" stroke-width="2.5"/>')
    for i, p in enumerate(points):
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y_rate(p.rate):.1f}" r="{font * .3:.1f}" fill="{rate_colour}">'
                     f'<title>{escape(p.label)}：整改销号率 {p.rate:.1%}（{p.closed:,}/{p.issued:,}）</title></circle>')
    last = points[-1] if points else None
    if last:
        parts.append(f'<text x="{x(n - 1):.1f}" y="{y_rate(last.rate) - font * .7:.1f}" text-anchor="middle" '
                     f'fill="{rate_colour}" font-weight="600">{last.rate:.1%}</text>')  # as the tile above says it
    # Axis titles and the legend.
    rate_legend, open_legend = "━ 整改销号率（左轴）", "▮ 未销号线索（条，右轴）"
    parts.append(f'<text x="{left}" y="{font * 1.2:.1f}" fill="{rate_colour}">{rate_legend}</text>')
    # Side by side where both fit (every character about a font's width), else the second below
    # the first: on a phone they ran into each other.
    if (len(rate_legend) + len(open_legend) + 2) * font <= w:
        parts.append(f'<text x="{left + w}" y="{font * 1.2:.1f}" text-anchor="end" fill="#92400e">{open_legend}</text>')
    else:
        parts.append(f'<text x="{left}" y="{font * 2.4:.1f}" fill="#92400e">{open_legend}</text>')
    parts.append(f'<text x="{left + w / 2:.1f}" y="{height - font * .4:.1f}" text-anchor="middle" fill="#616e7c">'
                 f'比对日期</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _scope_name(c: Ctx) -> str:
    code = c.user.scope
    row = c.session.get(Division, code)
    return row.name if row else ("全市" if scope.level(code) == "prefecture" else code)


# The tables a supervisor can download: title, the report's frame, its columns as people read them.
TABLES = {
    "county": ("按县", lambda r: r.by_county, ["county", "issued", "verified", "returned", "closed", "closure_rate",
                                              "on_time_rate", "overdue"]),
    "township": ("按乡镇", lambda r: r.by_township, ["county", "township", "issued", "verified", "returned", "closed",
                                                    "closure_rate", "on_time_rate", "overdue"]),
    "rule": ("按疑点", lambda r: r.by_rule, ["rule_title", "issued", "verified", "returned", "closed", "closure_rate",
                                            "true_rate", "overdue"]),
    "category": ("按类别", lambda r: r.by_category.with_columns(
        pl.col("category").alias("category_code"),
        pl.col("category").replace_strict(CATEGORY_LABELS, default=pl.col("category"))),
        ["category", "issued", "verified", "returned", "closed", "closure_rate", "on_time_rate", "true_rate", "overdue"]),
    "findings": ("错评漏评错退", lambda r: r.findings, ["kind", "raised", "confirmed"]),
    "burden": ("核查负担", lambda r: r.burden, ["rule_title", "issued", "verified", "true", "not_true", "median_days",
                                             "visits_per_true"]),
    "overdue": ("逾期清单", lambda r: r.overdue, ["county", "township", "village", "household_code", "subject_name",
                                                 "rule_title", "due_date", "days_overdue"]),
}
# What a table's row is filtered by in the list of clues (/inbox), where a figure of it opens its clues.
DRILL = ("county_code", "township_code", "rule_code", "category_code")
LABELS = report.SHEET_LABELS | {"household_code": "户编号", "category": "类别", "open": "未销号", "day": "日期"}


def _rows(frame: pl.DataFrame, columns: list[str]) -> list[dict]:
    return frame.select([c for c in columns if c in frame.columns]).to_dicts()


@router.get("/dashboard")
def dashboard(c: Ctx = Depends(ctx)):  # noqa: B008
    require_role(c.user, "county", "prefecture", "admin")
    today = date.today()
    rep = report.build(c.session, c.user.scope, today)
    nights = sorted(c.session.scalars(select(PublishRun.night)).all())[-TREND_NIGHTS:]
    points = trend(report.clue_frame(c.session, c.user.scope), nights, today)
    wide = scope.level(c.user.scope) == "prefecture"  # a prefecture's: its counties
    # (with the divisions' codes: a county's or a township's figures open its list of clues)
    tables = {k: _rows(get(rep), [*cols, *DRILL]) for k, (_, get, cols) in TABLES.items() if k != "overdue"}
    tables["overdue"] = rep.overdue.head(100).to_dicts()  # with the clue's id, for its link
    return c.render("dashboard.html", ON_TIME_NOTE=report.ON_TIME_NOTE, FINDINGS_NOTE=report.FINDINGS_NOTE,
                    VERIFIED_NOTE=report.VERIFIED_NOTE,
                    rep=rep, overall=rep.overall.row(0, named=True) if rep.overall.height else {},
                    tables=tables, overdue_total=rep.overdue.height, show_counties=wide, points=points, scope_name=_scope_name(c),
                    chart_wide=trend_svg(points, 760, 300, 12, 16) if points else "",
                    chart_narrow=trend_svg(points, 340, 270, 12, 5) if points else "")


@router.get("/dashboard/{table}.xlsx")
def table_download(table: str, c: Ctx = Depends(ctx)):  # noqa: B008
    """One dashboard table as an Excel file: the names a person reads, rates as percentages, and
    no cell that a spreadsheet would take for a formula."""
    require_role(c.user, "county", "prefecture", "admin")
    today = date.today()
    if table == "trend":
        nights = sorted(c.session.scalars(select(PublishRun.night)).all())[-TREND_NIGHTS:]
        points = trend(report.clue_frame(c.session, c.user.scope), nights, today)
        title = "趋势"
        columns = ["day", "issued", "closed", "open", "closure_rate"]
        rows = [{"day": p.day.isoformat() if p.label != "今天" else f"{p.day.isoformat()}（今天）", "issued": p.issued,
                 "closed": p.closed, "open": p.open, "closure_rate": p.rate} for p in points]
    elif table in TABLES:
        title, get, columns = TABLES[table]
        rows = _rows(get(report.build(c.session, c.user.scope, today)), columns)
    else:
        raise HTTPException(404)
    labels = LABELS | {"issued": "累计下发" if table == "trend" else "下发",
                       "closed": "累计销号" if table == "trend" else "已销号"}
    tmp = Path(tempfile.mkstemp(suffix=".xlsx")[1])
    write_table(tmp, title, f"{title}　范围：{_scope_name(c)}　生成：{today.isoformat()}", columns, labels, rows,
                report.notes(columns))
    return FileResponse(tmp, filename=f"督导看板_{title}_{_scope_name(c)}_{today.isoformat()}.xlsx",
                        background=BackgroundTask(tmp.unlink))


def write_table(out: Path, sheet: str, heading: str, columns: list[str], labels: dict[str, str],
                rows: list[dict], note: str = "") -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(out), XLSX_OPTIONS)
    ws = wb.add_worksheet(sheet)
    bold, pct = wb.add_format({"bold": True}), wb.add_format({"num_format": "0.0%"})
    ws.write_string(0, 0, neutralise_formula(heading), bold)
    ws.write_row(1, 0, [labels.get(c, c) for c in columns], bold)
    for r, row in enumerate(rows, start=2):
        for i, col in enumerate(columns):
            v = row.get(col)
            if v is None:
                if col in report.DASHED:  # nothing to count from: say so, not a blank cell
                    ws.write_string(r, i, "—")
                continue
            if col.endswith("_rate"):
                ws.write_number(r, i, v, pct)
            elif isinstance(v, int | float) and not isinstance(v, bool):
                ws.write_number(r, i, v)
            else:
                ws.write_string(r, i, neutralise_formula(str(v)))
    if note:  # what the figures count, below them
        ws.write_string(len(rows) + 3, 0, note)
    ws.set_column(0, len(columns), 16)
    ws.freeze_panes(2, 0)
    wb.close()


@router.get("/report.xlsx")
def report_download(c: Ctx = Depends(ctx), three_day: bool = True):  # noqa: B008
    require_role(c.user, "county", "prefecture", "admin")
    today = date.today()
    rep = report.three_days(c.session, c.user.scope, today) if three_day else report.build(c.session, c.user.scope, today)
    tmp = Path(tempfile.mkstemp(suffix=".xlsx")[1])
    report.write_xlsx(rep, tmp)
    name = f"{'三天一报' if three_day else '线索核查进展'}_{_scope_name(c)}_{today.isoformat()}.xlsx"
    return FileResponse(tmp, filename=name, background=BackgroundTask(tmp.unlink))
