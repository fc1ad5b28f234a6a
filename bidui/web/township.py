"""Township pages: the inbox grouped by village and household, a clue with its evidence, link
explanation and history, the verify-and-sign form, the workbook out and back."""

from __future__ import annotations

import tempfile
import time
from datetime import date
from pathlib import Path

from fastapi import APIRouter, Depends, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy import func, or_, select
from starlette.background import BackgroundTask

from bidui import scope
from bidui.clues import actions
from bidui.clues.models import Clue, ClueEvent, EvidenceSnapshot
from bidui.clues.present import clue_view
from bidui.clues.states import ACTIONS, DISPATCHED, OPEN, OUTCOMES, RETURNED, Finding, TransitionError
from bidui.clues.workbook import WorkbookError, import_workbook, write_workbook
from bidui.web.deps import Ctx, ctx
from bidui.web.security import check_csrf, require_role

router = APIRouter()
INBOX_COLUMNS = (Clue.id, Clue.subject_name, Clue.rule_title, Clue.category, Clue.status, Clue.due_date,
                 Clue.evidence_gone, Clue.village_code, Clue.household_code, Clue.hukou_number, Clue.household_status)
CHOICES_SECONDS = 60  # the filter lists change only when a night is published
_choices: dict[str, tuple[float, list, list]] = {}


def filter_choices(c: Ctx) -> tuple[list, list]:
    """The rules and villages a user's clues have (for the filter lists), cached for a minute."""
    hit = _choices.get(c.user.scope)
    if hit and time.monotonic() - hit[0] < CHOICES_SECONDS:
        return hit[1], hit[2]
    rules = c.session.execute(c.scoped(select(Clue.rule_code, Clue.rule_title)).distinct().order_by(Clue.rule_code)).all()
    villages = c.session.scalars(c.scoped(select(Clue.village_code)).distinct().order_by(Clue.village_code)).all()
    _choices[c.user.scope] = (time.monotonic(), list(rules), list(villages))
    return list(rules), list(villages)


PAGE = 100  # clues per inbox page (a phone screen scrolls through a hundred, not a thousand)


@router.get("/inbox")
def inbox(c: Ctx = Depends(ctx), rule: str = "", category: str = "", status: str = "open",  # noqa: B008
          overdue: bool = False, village: str = "", q: str = "", page: int = 1):
    query = c.clues()
    if rule:
        query = query.where(Clue.rule_code == rule)
    if category:
        query = query.where(Clue.category == category)
    if status == "open":
        query = query.where(Clue.status.in_(OPEN))
    elif status:
        query = query.where(Clue.status == status)
    if overdue:
        query = query.where(Clue.status.in_((DISPATCHED, RETURNED)), Clue.due_date < date.today())
    if village:
        query = query.where(Clue.village_code == village)
    if q.strip():
        term = q.strip()
        query = query.where(or_(Clue.subject_name.contains(term, autoescape=True),
                                Clue.subject_id_number.contains(term.upper(), autoescape=True),
                                Clue.household_code == term))
    total = c.session.scalar(select(func.count()).select_from(query.subquery()))
    # Only the columns the list shows: the evidence and explanations stay in the database.
    rows = c.session.execute(query.with_only_columns(*INBOX_COLUMNS).order_by(
        Clue.village_code, Clue.household_code, Clue.hukou_number, Clue.id).offset((max(page, 1) - 1) * PAGE)
        .limit(PAGE)).all()
    names = c.division_names()
    groups: dict[str, dict[str, list]] = {}
    for clue in rows:
        groups.setdefault(clue.village_code or "", {}).setdefault(clue.household_code or clue.hukou_number, []).append(clue)
    rules, villages = filter_choices(c)
    return c.render("inbox.html", groups=groups, names=names, total=total, page=page, pages=(total + PAGE - 1) // PAGE,
                    rules=rules, villages=villages, filters={"rule": rule, "category": category, "status": status,
                                                             "overdue": overdue, "village": village, "q": q})


def _clue_or_404(c: Ctx, clue_id: int) -> Clue:
    clue = c.session.scalar(c.scoped(select(Clue).where(Clue.id == clue_id)))
    if clue is None:
        raise HTTPException(404)
    return clue


@router.get("/clues/{clue_id}")
def clue_page(clue_id: int, c: Ctx = Depends(ctx), message: str = "", error: str = ""):  # noqa: B008
    clue = _clue_or_404(c, clue_id)
    evidence = c.session.scalars(select(EvidenceSnapshot).where(EvidenceSnapshot.clue_id == clue.id)
                                 .order_by(EvidenceSnapshot.night.desc(), EvidenceSnapshot.id.desc())).all()
    events = c.session.scalars(select(ClueEvent).where(ClueEvent.clue_id == clue.id).order_by(ClueEvent.id)).all()
    household = c.session.scalars(c.scoped(select(Clue).where(
        Clue.household_code == clue.household_code, Clue.hukou_number == clue.hukou_number, Clue.id != clue.id))
        .order_by(Clue.id).limit(50)).all()
    return c.render("clue.html", clue=clue, names=c.division_names(),
                    view=clue_view(clue, evidence), events=events, attachments=[],
                    household=household, outcomes=OUTCOMES, actions=ACTIONS,
                    can_verify=c.user.role == "township" and clue.status in (DISPATCHED, RETURNED),
                    can_review=c.user.role == "county" and clue.status == "verified", message=message, error=error)


@router.post("/clues/{clue_id}/verify")
def verify(clue_id: int, c: Ctx = Depends(ctx), csrf_token: str = Form(""), version: int = Form(...),  # noqa: B008
           outcome: str = Form(""), action: str = Form(""), finding: str = Form(""), verifier_name: str = Form(""),
           verifier_position: str = Form(""), verified_on: str = Form("")):
    check_csrf(c.request, csrf_token)
    require_role(c.user, "township")
    _clue_or_404(c, clue_id)
    try:
        day = date.fromisoformat(verified_on)
    except ValueError:
        return RedirectResponse(f"/clues/{clue_id}?error=核实日期格式不对（如 2026-11-25）", status_code=303)
    try:
        with c.request.app.state.ledger.write() as s:
            actions.verify(s, clue_id, version, c.user, Finding(outcome, action or None, finding, verifier_name,
                                                                verifier_position, day))
    except (TransitionError, actions.ConflictError) as e:
        return RedirectResponse(f"/clues/{clue_id}?error={e}", status_code=303)
    return RedirectResponse(f"/clues/{clue_id}?message=已核实并签字", status_code=303)


@router.get("/workbook")
def workbook(c: Ctx = Depends(ctx), township: str = ""):  # noqa: B008
    township = township or c.user.scope
    if not scope.is_code(township) or scope.level(township) != "township" or not scope.covers(c.user.scope, township):
        raise HTTPException(404)
    tmp = Path(tempfile.mkstemp(suffix=".xlsx")[1])
    write_workbook(c.session, township, tmp, c.request.app.state.secret, c.user.username)
    return FileResponse(tmp, filename=f"核实工作簿_{township}_{date.today().isoformat()}.xlsx",
                        background=BackgroundTask(tmp.unlink))


@router.post("/workbook")
async def workbook_upload(file: UploadFile, c: Ctx = Depends(ctx), csrf_token: str = Form("")):  # noqa: B008
    check_csrf(c.request, csrf_token)
    require_role(c.user, "township")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "upload.xlsx"
        path.write_bytes(await file.read())
        try:
            with c.request.app.state.ledger.write() as s:
                result = import_workbook(s, path, c.user, c.request.app.state.secret)
        except WorkbookError as e:
            return c.render("upload.html", problems=[str(e).splitlines()[0], *e.problems], applied=None, status_code=400)
    return c.render("upload.html", problems=[], applied=result)
