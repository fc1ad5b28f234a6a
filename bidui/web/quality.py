"""数据质量通报 for the task force (prefecture and admin): each department's figures on the latest
night (or a chosen one), the change since the previous and the first night, the trend of its
problem records, each dataset's counts, and the summary as Excel.

Read from the nightly run reports the ledger keeps (bidui.flows.nightly.NightReport.bulletin): the
web app never opens the warehouse. The problem rows themselves (personal values) are sent to a
department by `bidui quality report --department`, not offered here."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from markupsafe import Markup, escape
from sqlalchemy import select
from starlette.background import BackgroundTask

from bidui.clues.load_messages import file_message
from bidui.clues.models import RunReport
from bidui.clues.present import QUALITY_TOTAL_LABELS
from bidui.flows.nightly import NightReport
from bidui.quality.report import NOT_TAKEN, Bulletin, build, signed, write_xlsx
from bidui.web.charts import gridlines, nice_max
from bidui.web.deps import Ctx, ctx
from bidui.web.security import require_role

router = APIRouter()
TREND_NIGHTS = 30  # the chart's nights; the first night is read as well, for the change since it
ROLES = ("prefecture", "admin")


def _bulletins(c: Ctx, up_to: date | None) -> dict[date, dict]:
    """The bulletins of the last TREND_NIGHTS nights up to `up_to` (all when None) and of the first
    night, from the ledger's run reports (a night run before the bulletin existed has none)."""
    q = select(RunReport.night)
    if up_to is not None:
        q = q.where(RunReport.night <= up_to)
    nights = sorted(c.session.scalars(q).all())
    wanted = set(nights[-TREND_NIGHTS:]) | set(nights[:1])
    out: dict[date, dict] = {}
    for night, text in c.session.execute(select(RunReport.night, RunReport.report).where(RunReport.night.in_(wanted))):
        bulletin = NightReport.from_json(text).bulletin
        if bulletin:
            out[night] = bulletin
    return out


def _chosen(c: Ctx, night: str | None) -> tuple[Bulletin | None, dict[date, dict]]:
    try:
        day = date.fromisoformat(night) if night else None
    except ValueError:
        day = None
    nights = _bulletins(c, day)
    if not nights:
        return None, nights
    latest = max(nights) if day is None or day not in nights else day
    return build(nights, latest), nights


def trend_chart(points: list[tuple[date, int]], width: int = 320, height: int = 150, font: int = 12) -> Markup:
    """A department's problem records per night as a line with its axis, drawn on the server in the
    dashboard's house style (bidui.web.supervisor.trend_svg)."""
    left, right, top, bottom = font * 3.6, font * 1.2, font * 1.2, font * 2.4
    w, h = width - left - right, height - top - bottom
    n = len(points)
    top_value = nice_max(max((v for _, v in points), default=0))
    slot = w / max(n, 1)
    x = lambda i: left + slot * (i + 0.5)  # noqa: E731
    y = lambda v: top + h * (1 - v / top_value)  # noqa: E731
    colour = "#b91c1c"
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="问题记录的趋势" font-size="{font}" '
             f'font-family="inherit">']
    parts += gridlines(left, top, w, h, font, 2, lambda frac: f"{round(top_value * frac):,}", "#616e7c")
    for i, (day, _) in enumerate(points):  # the first and last dates: the rest read from the points' titles
        if i in (0, n - 1):
            anchor = "start" if i == 0 and n > 1 else ("end" if n > 1 else "middle")
            parts.append(f'<text x="{x(i):.1f}" y="{top + h + font * 1.3:.1f}" text-anchor="{anchor}" fill="#616e7c">'
                         f'{day.strftime("%m-%d")}</text>')
    if n > 1:
        path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(points))
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
    for i, (day, v) in enumerate(points):
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="{font * .3:.1f}" fill="{colour}">'
                     f'<title>{escape(day.isoformat())}：问题记录 {v:,} 条</title></circle>')
    if points:
        parts.append(f'<text x="{x(n - 1):.1f}" y="{y(points[-1][1]) - font * .6:.1f}" text-anchor="end" '
                     f'fill="{colour}" font-weight="600">{points[-1][1]:,}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


@router.get("/quality")
def quality_page(c: Ctx = Depends(ctx), night: str | None = None):  # noqa: B008
    require_role(c.user, *ROLES)
    bulletin, nights = _chosen(c, night)
    departments = []
    if bulletin:
        for d in bulletin.departments:
            departments.append({"view": d, "chart": trend_chart(d.trend),
                                "since_previous": signed(d.change("problem_rows", "previous")),
                                "since_first": signed(d.change("problem_rows", "first"))})
    # Why each file not taken tonight was not (the run report's words for it), then which data stay
    # in use, unless those words say so already (a missing file's: 继续使用 … 的数据).
    reasons: dict[str, str] = {}
    if bulletin:
        said = {code: file_message(entry.get("file"), entry["status"], entry.get("message"))
                for code, entry in nights.get(bulletin.night, {}).items() if entry.get("status") in NOT_TAKEN}
        for d in bulletin.departments:
            for x in d.not_taken:
                reason = said.get(x["code"], "")
                kept = "" if x["snapshot"] and x["snapshot"] in reason else x["in_force"]
                reasons[x["code"]] = "；".join(t for t in (reason, kept) if t)
    return c.render("quality.html", bulletin=bulletin, departments=departments, labels=QUALITY_TOTAL_LABELS,
                    reasons=reasons, nights=sorted(nights, reverse=True))


@router.get("/quality/summary.xlsx")
def quality_download(c: Ctx = Depends(ctx), night: str | None = None):  # noqa: B008
    """The bulletin's summary and details as Excel (no personal value: the problem rows are the
    command's, for a department)."""
    require_role(c.user, *ROLES)
    bulletin, _ = _chosen(c, night)
    tmp = Path(tempfile.mkstemp(suffix=".xlsx")[1])
    if bulletin is None:
        bulletin = Bulletin(date.today(), None, None, [])
    write_xlsx(bulletin, tmp)
    return FileResponse(tmp, filename=f"数据质量通报_{bulletin.night.isoformat()}.xlsx",
                        background=BackgroundTask(tmp.unlink))
