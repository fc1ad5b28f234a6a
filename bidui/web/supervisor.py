"""Supervisor pages (county and prefecture): closure rate, on-time rate, overdue by township and by
rule, the trend over nights, 属实率 per rule, the three-day report; and the task force's admin
page (last runs, rules and parameters, users)."""

from __future__ import annotations

import json
import tempfile
from datetime import date, datetime
from pathlib import Path

import polars as pl
from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from sqlalchemy import select
from starlette.background import BackgroundTask

from bidui import config, scope
from bidui.clues import report
from bidui.clues.models import PublishRun, RunReport, User
from bidui.web.deps import Ctx, ctx
from bidui.web.security import require_role

router = APIRouter()


def trend(frame: pl.DataFrame, nights: list[date]) -> list[dict]:
    """Per published night: clues issued so far, closed so far, and the closure rate then."""
    out = []
    for night in nights:
        issued = frame.filter(pl.col("first_seen") <= night).height
        closed = frame.filter(pl.col("closed_on") <= night).height
        out.append({"night": night, "issued": issued, "closed": closed, "rate": closed / issued if issued else 0.0})
    return out


@router.get("/dashboard")
def dashboard(c: Ctx = Depends(ctx)):  # noqa: B008
    require_role(c.user, "county", "prefecture", "admin")
    today = date.today()
    rep = report.build(c.session, c.user.scope, today)
    nights = sorted(c.session.scalars(select(PublishRun.night)).all())[-30:]
    frame = report.clue_frame(c.session, c.user.scope)
    return c.render("dashboard.html", rep=rep, overall=rep.overall.row(0, named=True) if rep.overall.height else {},
                    townships=rep.by_township.to_dicts(), rules=rep.by_rule.to_dicts(),
                    categories=rep.by_category.to_dicts(), findings=rep.findings.to_dicts(),
                    overdue=rep.overdue.head(100).to_dicts(), trend=trend(frame, nights))


@router.get("/report.xlsx")
def report_download(c: Ctx = Depends(ctx), three_day: bool = True):  # noqa: B008
    require_role(c.user, "county", "prefecture", "admin")
    today = date.today()
    rep = report.three_days(c.session, c.user.scope, today) if three_day else report.build(c.session, c.user.scope, today)
    tmp = Path(tempfile.mkstemp(suffix=".xlsx")[1])
    report.write_xlsx(rep, tmp)
    name = f"{'三天一报' if three_day else '线索核查进展'}_{c.user.scope}_{today.isoformat()}.xlsx"
    return FileResponse(tmp, filename=name, background=BackgroundTask(tmp.unlink))


def _with_defects(report: dict) -> dict:
    from bidui.clues.present import defects_text

    return report | {"defects": defects_text(report.get("quality") or {})}


@router.get("/admin")
def admin(c: Ctx = Depends(ctx)):  # noqa: B008
    require_role(c.user, "admin")
    from bidui.rules.engine import load_rules

    home = c.request.app.state.home
    cfg = config.load(home.config)
    params = cfg.get("rules", {}).get("parameters", {})
    disabled = set(cfg.get("rules", {}).get("disabled", []))
    rules = [{"code": r.code, "title": r.title, "category": r.category, "inputs": ", ".join(r.inputs),
              "parameters": "; ".join(f"{p} = {params.get(p)}" for p in r.parameters), "enabled": r.code not in disabled}
             for r in load_rules(home.root / "rules")[0]]
    runs = [(r.night, r.finished_at, _with_defects(json.loads(r.report))) for r in c.session.scalars(
        select(RunReport).order_by(RunReport.night.desc()).limit(10))]
    publishes = c.session.scalars(select(PublishRun).order_by(PublishRun.night.desc()).limit(10)).all()
    users = c.session.scalars(select(User).where(scope.under(User.scope, c.user.scope))
                              .order_by(User.role, User.username)).all()
    return c.render("admin.html", rules=rules, runs=runs, publishes=publishes, users=users, now=datetime.now())
