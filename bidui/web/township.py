"""Township pages: the inbox (one table, most urgent first), a clue with its evidence, link
explanation and history, the verify-and-sign form (and amending one's own finding until the county
acts), the printable record, the workbook out and back. The inbox also serves the county and
prefecture (with a township filter)."""

from __future__ import annotations

import logging
import re
import secrets
import tempfile
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy import and_, case, func, or_, select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from bidui import config, scope, uploads
from bidui.clues import actions, link_decisions
from bidui.clues.models import Clue, ClueEvent, EvidenceSnapshot, LinkDecision, PublishRun
from bidui.clues.present import (
    CATEGORY_LABELS,
    DECISION_NOTES,
    EVENT_LABELS,
    NOT_SELF_CHOICE,
    clue_view,
    decision_sentence,
    event_note,
    outcome_text,
    signer,
)
from bidui.clues.states import (
    ACTIONS,
    DISPATCHED,
    NOT_SELF,
    NOT_TRUE,
    OPEN,
    OUTCOMES,
    RETURNED,
    STATUS_LABELS,
    TRUE_FIXED,
    VERIFIED,
    Finding,
    TransitionError,
)
from bidui.clues.workbook import WorkbookError, apply_workbook, workbook_filename, write_workbook
from bidui.clues.workbook_check import NOT_OURS, Filled, capped
from bidui.config import UploadSettings
from bidui.ids import IdStatus, normalise_id
from bidui.web.deps import Ctx, attachments_for, ctx, default_due
from bidui.web.security import check_csrf, require_role

router = APIRouter()
log = logging.getLogger("bidui.web")
INBOX_COLUMNS = (Clue.id, Clue.subject_name, Clue.rule_title, Clue.category, Clue.status, Clue.due_date,
                 Clue.evidence_gone, Clue.village_code, Clue.township_code, Clue.household_code, Clue.hukou_number,
                 Clue.household_status, Clue.return_reason, Clue.first_seen)
CHOICES_SECONDS = 60  # the filter lists change only when a night is published
_choices: dict[str, tuple[float, list, list]] = {}


def filter_choices(c: Ctx) -> tuple[list, list]:
    """The rules and villages a user's clues have (for the filter lists), cached for a minute."""
    # Per ledger and scope: two apps in one process (tests) must not show each other's lists.
    key = f"{c.request.app.state.ledger.url}:{c.user.scope}"
    hit = _choices.get(key)
    if hit and time.monotonic() - hit[0] < CHOICES_SECONDS:
        return hit[1], hit[2]
    rules = c.session.execute(c.scoped(select(Clue.rule_code, Clue.rule_title)).distinct().order_by(Clue.rule_code)).all()
    villages = c.session.scalars(c.scoped(select(Clue.village_code)).distinct().order_by(Clue.village_code)).all()
    _choices[key] = (time.monotonic(), list(rules), [v for v in villages if v])
    return list(rules), [v for v in villages if v]


def villages_by_township(villages: list[str]) -> dict[str, list[str]]:
    """The village list grouped under its township (a village code's first 9 digits)."""
    out: dict[str, list[str]] = {}
    for v in villages:
        out.setdefault(v[:9] + "000", []).append(v)
    return out


PAGE = 100  # clues per inbox page (a phone screen scrolls through a hundred, not a thousand)


def urgency(today: date):
    """The inbox order: returned first (the county is waiting), then overdue, then the rest to
    verify; what waits on the county, then what is closed, last."""
    return case((Clue.status == RETURNED, 0), (and_(Clue.status == DISPATCHED, Clue.due_date < today), 1),
                (Clue.status == DISPATCHED, 2), (Clue.status == VERIFIED, 3), else_=4)


# Column sorts (a header click): the column, then the inbox order within it.
SORTS = {"village": (Clue.village_code, Clue.household_code), "household": (Clue.household_code, Clue.hukou_number),
         "subject": (Clue.subject_name,), "rule": (Clue.rule_title,), "status": (Clue.status,), "due": (Clue.due_date,)}


def ordered(query, sort: str, today: date):
    key = sort.lstrip("-")
    if key not in SORTS:
        return query.order_by(urgency(today), Clue.due_date, Clue.id)
    cols = [col.desc() if sort.startswith("-") else col for col in SORTS[key]]
    return query.order_by(*cols, urgency(today), Clue.due_date, Clue.id)


def search_condition(term: str):
    """Name, ID number (18 digits, lower-case x, the old 15-digit form, with spaces), household
    code (户编号, 16 digits) or hukou number (户号, 19 digits); a beginning is enough."""
    term = term.strip()
    cleaned, status = normalise_id(term)  # the one ID normalisation: NFKC, no spaces, X, 15 → 18
    conditions = [Clue.subject_name.contains(term, autoescape=True)]
    if cleaned and re.fullmatch(r"\d+X?", cleaned):
        conditions += [Clue.subject_id_number.startswith(cleaned, autoescape=True),
                       Clue.household_code.startswith(cleaned, autoescape=True),
                       Clue.hukou_number.startswith(cleaned, autoescape=True)]
        if status is IdStatus.VALID and len(re.sub(r"\D", "", term)) == 15:
            # An old 15-digit number was widened to 18; its own digits may begin a code too.
            raw = cleaned[:6] + cleaned[8:17]
            conditions += [Clue.subject_id_number.startswith(raw), Clue.household_code.startswith(raw),
                           Clue.hukou_number.startswith(raw)]
    return or_(*conditions)


# The search term never goes into a URL (an ID number would reach browser history, proxies and
# the access logs of everything in between). The form posts it; it is kept in the user's session
# (a signed cookie, the user's own browser) under a random token, and the inbox's URL carries the
# token only. A token per search, not one term per session, so that paging, sorting, the back
# button and a second tab each keep their own search. The last few are kept.
SEARCHES_KEPT = 8
MAX_TERM = 40


def _filters(rule: str = "", category: str = "", status: str = "open", overdue: bool = False, village: str = "",
             township: str = "", sort: str = "", s: str = "", page: int = 1, county: str = "") -> dict:
    return {"rule": rule, "category": category, "status": status, "overdue": overdue, "county": county,
            "village": village, "township": township, "sort": sort, "s": s, "page": page}


def _inbox_url(filters: dict, **changes: object) -> str:
    values = {**filters, **changes}
    kept = {k: ("true" if v is True else v) for k, v in values.items()
            if v not in ("", None, False) and not (k == "page" and v == 1) and not (k == "status" and v == "open")}
    if values.get("status") == "":
        kept["status"] = ""  # 全部 is an explicit choice: the default is 未销号
    return "/inbox" + ("?" + urlencode(kept) if kept else "")


def _inbox_query(c: Ctx, filters: dict, term: str):
    """The clues the inbox lists for these filters and search (scoped)."""
    query = c.clues()
    if filters["rule"]:
        query = query.where(Clue.rule_code == filters["rule"])
    if filters["category"]:
        query = query.where(Clue.category == filters["category"])
    if filters["status"] == "open":
        query = query.where(Clue.status.in_(OPEN))
    elif filters["status"]:
        query = query.where(Clue.status == filters["status"])
    if filters["overdue"]:
        query = query.where(Clue.status.in_((DISPATCHED, RETURNED)), Clue.due_date < date.today())
    if filters["county"]:  # a supervisor's figure for a county, opened as its list
        query = query.where(Clue.county_code == filters["county"])
    if filters["township"]:
        query = query.where(Clue.township_code == filters["township"])
    if filters["village"]:
        query = query.where(Clue.village_code == filters["village"])
    if term.strip():
        query = query.where(search_condition(term))
    return query


def _work(c: Ctx) -> dict[str, int]:
    """What waits on the user's division, at a glance (a clerk saw only 共 80 条, signed ones too):
    to verify, returned, overdue among them, signed and waiting for the county."""
    today = date.today()
    counts = {status: (n, late or 0) for status, n, late in c.session.execute(c.scoped(
        select(Clue.status, func.count(), func.sum(case((Clue.due_date < today, 1), else_=0)))
        .where(Clue.status.in_((DISPATCHED, RETURNED, VERIFIED)))).group_by(Clue.status))}
    new, returned, verified = (counts.get(s, (0, 0)) for s in (DISPATCHED, RETURNED, VERIFIED))
    return {"dispatched": new[0], "returned": returned[0], "overdue": new[1] + returned[1], "verified": verified[0]}


def _render_inbox(c: Ctx, filters: dict, term: str, status_code: int = 200, error: str = "", typed: str = ""):
    query = _inbox_query(c, filters, term)
    total = c.session.scalar(select(func.count()).select_from(query.subquery()))
    # A page beyond the last shows the last (a page number from an old link, or a made-up one).
    page = min(max(filters["page"], 1), max((total + PAGE - 1) // PAGE, 1))
    # Only the columns the list shows: the evidence and explanations stay in the database.
    rows = c.session.execute(ordered(query.with_only_columns(*INBOX_COLUMNS), filters["sort"], date.today())
                             .offset((page - 1) * PAGE).limit(PAGE)).all()
    rules, villages = filter_choices(c)
    grouped = villages_by_township(villages)
    # Nothing found under a status (the default is 未销号): say whether other statuses hold some,
    # else a closed clue looked as if it did not exist (a clerk's browser walk, 2026-12-06).
    elsewhere = 0
    if total == 0 and filters["status"] != "":
        anywhere = _inbox_query(c, filters | {"status": ""}, term)
        elsewhere = c.session.scalar(select(func.count()).select_from(anywhere.subquery()))
    # The latest published night's new clues are marked 新: a clerk could not tell last night's
    # from the rest. (That night's, not the township's latest: a quiet night marks nothing.)
    newest = c.session.scalar(select(func.max(PublishRun.night)))
    return c.render("inbox.html", status_code=status_code, rows=rows, names=c.division_names(), total=total, page=page,
                    elsewhere=elsewhere, newest=newest, work=_work(c) if c.user.role == "township" else None,
                    pages=(total + PAGE - 1) // PAGE, rules=rules, villages=grouped, townships=list(grouped),
                    counties=sorted({t[:6] + "000000" for t in grouped}),
                    filters=filters, term=term, typed=typed or term, max_term=MAX_TERM, url=lambda **ch: _inbox_url(filters, **ch), error=error,
                    download=_inbox_url(filters, page=1).replace("/inbox", "/inbox.xlsx", 1))


EXPORT_ROWS = 50_000  # a list downloaded whole; more is what `bidui clues export` is for


@router.get("/inbox.xlsx")
def inbox_download(c: Ctx = Depends(ctx), rule: str = "", category: str = "", status: str = "open",  # noqa: B008
                   overdue: bool = False, village: str = "", township: str = "", sort: str = "", s: str = "",
                   county: str = ""):
    """The list as it is filtered and sorted, as Excel (names and words, text cells neutralised)."""
    import xlsxwriter

    from bidui.text import XLSX_OPTIONS, neutralise_formula

    filters = _filters(rule, category, status, overdue, village, township, sort, s, 1, county)
    term = c.request.session.get("searches", {}).get(s, "") if s else ""
    rows = c.session.execute(ordered(_inbox_query(c, filters, term).with_only_columns(
        *INBOX_COLUMNS, Clue.county_code, Clue.outcome, Clue.outcome_detail, Clue.action,
        Clue.finding, Clue.verifier_name, Clue.verifier_position, Clue.verified_on),
        filters["sort"], date.today()).limit(EXPORT_ROWS)).all()
    names = c.division_names()
    counties = scope.level(c.user.scope) == "prefecture"  # a prefecture's list: which county each clue is in
    tmp = Path(tempfile.mkstemp(suffix=".xlsx")[1])
    wb = xlsxwriter.Workbook(str(tmp), XLSX_OPTIONS)
    ws = wb.add_worksheet("线索")
    head = [*(["县（区）"] if counties else []), "线索编号", "乡镇", "村", "户编号", "户号", "对象", "疑点", "类别", "状态",
            "截止日期", "核实结论", "整改措施", "核实情况", "核实人", "核实日期", "退回理由"]
    ws.write_row(0, 0, head, wb.add_format({"bold": True}))
    for r, row in enumerate(rows, start=1):
        values = [*([names.get(row.county_code, "")] if counties else []), row.id, names.get(row.township_code, ""),
                  names.get(row.village_code or "", ""), row.household_code or "", row.hukou_number or "",
                  row.subject_name or "", row.rule_title, CATEGORY_LABELS.get(row.category, ""), STATUS_LABELS[row.status],
                  row.due_date.isoformat(), outcome_text(row.outcome, row.outcome_detail) if row.outcome else "",
                  row.action or "", row.finding or "", signer(row.verifier_name, row.verifier_position), row.verified_on.isoformat() if row.verified_on else "",
                  row.return_reason or ""]
        for col, v in enumerate(values):
            if isinstance(v, int):
                ws.write_number(r, col, v)  # the clue's number
            else:  # names, findings and evidence come from people and departments
                ws.write_string(r, col, neutralise_formula(str(v)))
    ws.set_column(0, len(head) - 1, 14)
    wb.close()
    place = names.get(c.user.scope) or "全市"
    return FileResponse(tmp, filename=f"线索清单_{place}_{date.today().isoformat()}.xlsx",
                        background=BackgroundTask(tmp.unlink))


@router.get("/inbox")
def inbox(c: Ctx = Depends(ctx), rule: str = "", category: str = "", status: str = "open",  # noqa: B008
          overdue: bool = False, village: str = "", township: str = "", sort: str = "", s: str = "", page: int = 1,
          county: str = ""):
    filters = _filters(rule, category, status, overdue, village, township, sort, s, page, county)
    term, error = "", ""
    if s:
        term = c.request.session.get("searches", {}).get(s, "")
        if not term:
            error, filters["s"] = "这次搜索已过期，请重新输入要找的姓名或号码", ""
    return _render_inbox(c, filters, term, error=error)


@router.post("/inbox/search")
def inbox_search(c: Ctx = Depends(ctx), csrf_token: str = Form(""), q: str = Form(""), rule: str = Form(""),  # noqa: B008
                 category: str = Form(""), status: str = Form("open"), overdue: bool = Form(False),
                 village: str = Form(""), township: str = Form(""), sort: str = Form(""), county: str = Form("")):
    check_csrf(c.request, csrf_token)
    filters = _filters(rule, category, status, overdue, village, township, sort, county=county)
    term = q.strip()
    if len(term) > MAX_TERM:
        return _render_inbox(c, filters, "", status_code=400, error=f"要找的内容太长（最多 {MAX_TERM} 个字）", typed=q)
    if term:
        searches = dict(c.request.session.get("searches", {}))
        token = secrets.token_urlsafe(6)
        searches[token] = term
        c.request.session["searches"] = dict(list(searches.items())[-SEARCHES_KEPT:])
        filters["s"] = token
    return RedirectResponse(_inbox_url(filters), status_code=303)
def _clue_or_404(c: Ctx, clue_id: int) -> Clue:
    clue = c.session.scalar(c.scoped(select(Clue).where(Clue.id == clue_id)))
    if clue is None:
        raise HTTPException(404)
    return clue


def clue_decisions(c: Ctx, clue: Clue) -> list[dict]:
    """The record↔person decisions the clue's verifications made, as its page says them."""
    rows = c.session.scalars(select(LinkDecision).where(LinkDecision.clue_id == clue.id).order_by(LinkDecision.id))
    return [{"kind": d.kind, "active": d.revoked_at is None,
             "sentence": decision_sentence(d.kind, d.dataset, None if d.revoked_at is None else d.revoke_reason or "")}
            for d in rows]


def clue_record(c: Ctx, clue: Clue, page_names: dict[str, str] | None = None,
                all_names: dict[str, str] | None = None) -> dict:
    """What the clue page and its printed record both show. A page of many clues (a household's
    record) passes the division names it read once: the page's, and every division's (evidence)."""
    evidence = c.session.scalars(select(EvidenceSnapshot).where(EvidenceSnapshot.clue_id == clue.id)
                                 .order_by(EvidenceSnapshot.night.desc(), EvidenceSnapshot.id.desc())).all()
    events = c.session.scalars(select(ClueEvent).where(ClueEvent.clue_id == clue.id).order_by(ClueEvent.id)).all()
    people = c.people({e.actor for e in events})
    files = attachments_for(c, [clue.id]).get(clue.id, [])
    labels = {a.id: a.label for a in files}
    history = [{"at": e.at, "who": people.get(e.actor, "已停用的账号"), "what": EVENT_LABELS.get(e.kind, "其他"),
                "note": event_note(e.kind, e.payload, labels)} for e in events]
    return {"clue": clue, "names": c.division_names() if page_names is None else page_names,
            "view": clue_view(clue, evidence, all_names), "history": history, "attachments": files,
            "outcome_shown": outcome_text(clue.outcome, clue.outcome_detail), "decisions": clue_decisions(c, clue),
            # which signing the page's form is for (a signing or an amendment moves it on): what was
            # typed for it is kept apart (app.js)
            "sign_round": sum(1 for e in events if e.kind in ("verify", "amended"))}


# After a conflict the page shows the clue as it is now, with what was typed: the form carries the
# current version, so the same button works. "Refresh and try again" sent the browser back to the
# POST it had just made, which was refused again (a county reviewer's walk, 2026-12-06).
STALE_ADVICE = "。下面显示的是线索现在的内容：请核对后再提交（您填写的内容已保留）"


def stale_clue_page(c: Ctx, clue: Clue, e: Exception, form: dict | None = None, review: dict | None = None):
    c.session.refresh(clue)
    return _clue_page(c, clue, 409, form, f"{e}{STALE_ADVICE}", review=review)


def _clue_page(c: Ctx, clue: Clue, status_code: int = 200, form: dict | None = None, error: str = "",
               review: dict | None = None):
    amendable = actions.can_amend(c.session, clue, c.user)
    if form is None and amendable:  # the signed finding, ready to correct
        form = {"outcome": clue.outcome, "action": clue.action or "", "finding": clue.finding or "",
                "verified_on": str(clue.verified_on or date.today()), "detail": clue.outcome_detail or ""}
    elif form is None and clue.status == RETURNED and clue.outcome and c.user.role == "township":
        # Returned for more: the finding as signed, to add what the county asked for (retyping it
        # all was the clerk's lot), dated today. Only its text when its verdict was overturned (the
        # task force revoked what it taught the linker): the conclusion is to be drawn again.
        overturned = actions.returned_for_revoked_decision(c.session, clue)
        form = {"outcome": "" if overturned else clue.outcome, "action": "" if overturned else clue.action or "",
                "finding": clue.finding or "", "verified_on": str(date.today()),
                "detail": "" if overturned else clue.outcome_detail or ""}
    household = c.session.scalars(c.scoped(select(Clue).where(
        Clue.household_code == clue.household_code, Clue.hukou_number == clue.hukou_number, Clue.id != clue.id))
        .order_by(Clue.id).limit(50)).all()
    can_verify = c.user.role == "township" and clue.status in (DISPATCHED, RETURNED)
    # 不是本人 is offered only where the clue stands on a linked record (a pair to keep apart).
    not_self = (can_verify or amendable) and bool(link_decisions.records_of(c.session, clue))
    return c.render("clue.html", status_code=status_code, **clue_record(c, clue), household=household,
                    outcomes=OUTCOMES, actions=ACTIONS, form=form or {"verified_on": str(date.today())},
                    can_verify=can_verify, can_amend=amendable,
                    can_review=c.user.role == "county" and clue.status == VERIFIED,
                    review=review or {"due": str(default_due(c))}, error=error, not_self=not_self,
                    NOT_SELF=NOT_SELF, NOT_TRUE=NOT_TRUE, TRUE_FIXED=TRUE_FIXED, not_self_choice=NOT_SELF_CHOICE,
                    decisions_listed=c.user.role in ("admin", "prefecture", "county"))


@router.get("/clues/{clue_id}")
def clue_page(clue_id: int, c: Ctx = Depends(ctx)):  # noqa: B008
    return _clue_page(c, _clue_or_404(c, clue_id))


@router.get("/clues/{clue_id}/print")
def clue_print(clue_id: int, c: Ctx = Depends(ctx)):  # noqa: B008
    """The clue as a paper record (the verification file kept with the household's archive)."""
    return c.render("clue_print.html", **clue_record(c, _clue_or_404(c, clue_id)))


# The household's printed file (一户一档) and a village's: bidui.web.inspection.


def next_clue(c: Ctx, after: int) -> int | None:
    """The next clue the township has to act on, in the inbox's order."""
    return c.session.scalar(c.scoped(select(Clue.id).where(Clue.status.in_((DISPATCHED, RETURNED)), Clue.id != after))
                            .order_by(urgency(date.today()), Clue.due_date, Clue.id).limit(1))


def _signed(c: Ctx, clue: Clue, kind: str, version: int, outcome: str, action: str, finding: str, verified_on: str,
            detail: str = ""):
    """Verify or amend: the signature is the signer's stored real name and position (谁核实谁签字),
    never a typed one. On a refusal the page comes back with what was typed and the reason; on
    success, what the signature taught the linker (a sentence for the flash, or "")."""
    form = {"outcome": outcome, "action": action, "finding": finding, "verified_on": verified_on, "detail": detail}
    if not (c.user.real_name and c.user.position):
        return _clue_page(c, clue, 400, form, "签字需要您的真实姓名和职务：请先在“个人信息”中填写"), ""
    try:
        day = date.fromisoformat(verified_on)
    except ValueError:
        return _clue_page(c, clue, 400, form, "核实日期格式不对（如 2026-11-25）"), ""
    # The reason belongs to 不属实: the box stays ticked (hidden) when another outcome is chosen after it.
    reason = detail.strip() or None if outcome == NOT_TRUE else None
    # And the measure to 属实·已整改: a signed finding changed to another outcome kept it selected, and
    # the page refused it until the clerk found the list and set it back to — (a walk, 2026-12-06).
    action = action if outcome == TRUE_FIXED else ""
    signed = Finding(outcome, action or None, finding, c.user.real_name, c.user.position, day, reason)
    try:
        with c.request.app.state.ledger.write() as s:
            if kind == "verify":  # a rule may be configured to need a photo or PDF ([rules.attachments])
                actions.verify(s, clue.id, version, c.user, signed, required_attachments=config.attachment_settings(
                    c.request.app.state.home.config).required_rules)
            else:
                actions.amend(s, clue.id, version, c.user, signed)
            made = s.scalars(select(LinkDecision.kind).where(LinkDecision.clue_id == clue.id,
                                                             LinkDecision.revoked_at.is_(None))).first()
    except TransitionError as e:
        return _clue_page(c, clue, 400, form, str(e)), ""
    except actions.ConflictError as e:
        return stale_clue_page(c, clue, e, form=form), ""
    return None, (f"（{DECISION_NOTES[made]}）" if made else "")


@router.post("/clues/{clue_id}/verify")
def verify(clue_id: int, c: Ctx = Depends(ctx), csrf_token: str = Form(""), version: int = Form(...),  # noqa: B008
           outcome: str = Form(""), action: str = Form(""), finding: str = Form(""), verified_on: str = Form(""),
           detail: str = Form("")):
    check_csrf(c.request, csrf_token)
    require_role(c.user, "township")
    clue = _clue_or_404(c, clue_id)
    refused, taught = _signed(c, clue, "verify", version, outcome, action, finding, verified_on, detail)
    if refused is not None:
        return refused
    following = next_clue(c, clue_id)
    if following is None:
        c.flash(f"线索 {clue_id} 已核实并签字{taught}。待核实的线索已全部处理完。")
        return RedirectResponse("/inbox", status_code=303)
    c.flash(f"线索 {clue_id} 已核实并签字{taught}。这是下一条待核实线索。")
    return RedirectResponse(f"/clues/{following}", status_code=303)


@router.post("/clues/{clue_id}/amend")
def amend(clue_id: int, c: Ctx = Depends(ctx), csrf_token: str = Form(""), version: int = Form(...),  # noqa: B008
          outcome: str = Form(""), action: str = Form(""), finding: str = Form(""), verified_on: str = Form(""),
          detail: str = Form("")):
    check_csrf(c.request, csrf_token)
    require_role(c.user, "township")
    clue = _clue_or_404(c, clue_id)
    refused, taught = _signed(c, clue, "amend", version, outcome, action, finding, verified_on, detail)
    if refused is not None:
        return refused
    c.flash(f"核实结论已修改并重新签字{taught}")
    return RedirectResponse(f"/clues/{clue_id}", status_code=303)


@router.get("/workbook")
def workbook(c: Ctx = Depends(ctx), township: str = ""):  # noqa: B008
    township = township or c.user.scope
    if not scope.is_code(township) or scope.level(township) != "township" or not scope.covers(c.user.scope, township):
        raise HTTPException(404)
    tmp = Path(tempfile.mkstemp(suffix=".xlsx")[1])
    write_workbook(c.session, township, tmp, c.request.app.state.secret, c.user.username)
    return FileResponse(tmp, filename=workbook_filename(c.session, township),
                        background=BackgroundTask(tmp.unlink))


def workbook_form(settings: UploadSettings) -> uploads.FormLimits:
    """The upload form of a township's workbook: one file, refused while it streams in past the limit."""
    mb = settings.max_workbook_bytes // (1024 * 1024)
    return uploads.FormLimits(
        max_file_bytes=settings.max_workbook_bytes, max_files=1,
        too_big=lambda name: f"{name}: 文件超过 {mb} MB，不是本系统导出的核实工作簿（一个乡镇的工作簿只有几 MB）。"
                             "请在“下载核实工作簿”重新下载，填写后再上传",
        too_much=f"上传的文件超过 {mb} MB，不是本系统导出的核实工作簿。请在“下载核实工作簿”重新下载，填写后再上传",
        too_many="每次只能上传一份工作簿", wrong_form="上传格式不对，请在“未销号线索”页面选择工作簿后上传",
        incomplete="上传的内容不完整（可能没有传完），请重新选择工作簿上传")


@router.post("/workbook")
async def workbook_upload(c: Ctx = Depends(ctx)):  # noqa: B008
    """A filled-in workbook back (bidui.uploads guards it): read as it streams in, the CSRF token
    checked before the file; the zip's declared sizes checked here, then the file read in a worker
    process (sizes as really expanded, the token before the data, the row cap); only the rows it
    returns are checked against the ledger and applied here, all or none."""
    require_role(c.user, "township")
    settings = config.upload_settings(c.request.app.state.home.config)
    csrf_seen: list[str] = []

    def on_field(name: str, value: str) -> None:
        if name == "csrf_token":
            check_csrf(c.request, value)  # before any of the file is read
            csrf_seen.append(value)

    def refused(message: str, status: int = 400, problems: list[str] | None = None):
        return c.render("upload.html", problems=[message, *(problems or [])], applied=None, status_code=status)

    try:
        received = await uploads.read_form(c.request.headers, c.request.stream(), workbook_form(settings), on_field)
    except uploads.UploadRefused as e:
        return refused(str(e), e.status)
    try:
        if not csrf_seen:
            check_csrf(c.request, None)
        if not received:
            return refused("请先选择要上传的工作簿")
        # The user's own file name in messages (its last part only, never a path of ours).
        shown = uploads.shown_name(received[0].filename, "上传的文件")
        zip_limits = uploads.workbook_zip_limits(settings.max_expanded_bytes, settings.max_ratio,
                                                 settings.max_members, settings.max_rows)
        with tempfile.TemporaryDirectory() as d:
            path = received[0].save(Path(d) / "upload.xlsx")
            try:
                # The directory only (no member expanded): a zip bomb with honest headers stops here.
                await run_in_threadpool(uploads.check_zip, path, zip_limits, False, False)
                read = await uploads.in_worker("workbook", {
                    "path": str(path), "key": c.request.app.state.secret, "name": shown, "user_scope": c.user.scope,
                    "user_role": c.user.role, "max_rows": settings.max_rows, "max_expanded": settings.max_expanded_bytes,
                    "max_ratio": settings.max_ratio, "max_members": settings.max_members},
                    settings.worker_memory_bytes, settings.worker_seconds, settings.workers)
            except uploads.ZipRefused as e:
                return refused(uploads.zip_message(e, shown, zip_limits, NOT_OURS))
            except uploads.WorkerFailed as e:
                log.info("workbook upload: worker %s", e.kind)  # never the file's name: it may name a person
                return refused(uploads.worker_message(e, shown), 503 if e.kind == "busy" else 400)
    finally:
        for f in received:
            f.close()
    if "error" in read:
        return refused(read["error"], 400, capped(read["problems"], settings.max_problems))
    filled = Filled.from_json(read["filled"])
    required = config.attachment_settings(c.request.app.state.home.config).required_rules

    def apply():
        with c.request.app.state.ledger.write() as s:
            return apply_workbook(s, filled, c.user, shown, required_attachments=required,
                                  max_problems=settings.max_problems)

    try:
        result = await run_in_threadpool(apply)
    except WorkbookError as e:
        return refused(str(e).splitlines()[0], 400, e.problems)
    return c.render("upload.html", problems=[], applied=result)
