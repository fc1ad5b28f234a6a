"""County pages: the review queue (filtered, paged, with each clue's evidence and attachments;
close after a confirmation, or return with a reason and a new due date; several at once) and the
overdue count by township."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form
from fastapi.responses import RedirectResponse
from sqlalchemy import and_, func, or_, select

from bidui.clues import actions
from bidui.clues.models import Clue, ClueEvent, EvidenceSnapshot
from bidui.clues.present import clue_evidence_text
from bidui.clues.states import DISPATCHED, RETURNED, VERIFIED, TransitionError, return_problems
from bidui.web.deps import Ctx, attachments_for, ctx, default_due
from bidui.web.security import check_csrf, require_role

router = APIRouter()
PAGE = 50  # clues per review page
AGES = (3, 7, 15, 30)  # "waiting at least N days since verified" choices
EVIDENCE_CHARS = 120  # the queue's evidence excerpt; the clue page has it whole


def excerpt(text: str, chars: int = EVIDENCE_CHARS) -> str:
    """The evidence cut for the queue at the end of a whole item (after a "；" or "，"), never in
    the middle of one: cut by characters, "自付 15000 元" read "自付 1…" (a reviewer's browser walk,
    2026-12-06)."""
    if len(text) <= chars:
        return text
    cut = max(text.rfind("；", 0, chars + 1), text.rfind("，", 0, chars + 1))
    return (text[:cut] if cut >= chars // 2 else text[:chars]) + "…（详见线索页）"


def _filters(township: str = "", rule: str = "", category: str = "", age: int = 0, page: int = 1) -> dict:
    # Only the waiting times the page offers (a made-up one of a million years is no date).
    return {"township": township, "rule": rule, "category": category, "age": age if age in AGES else 0, "page": page}


def _url(filters: dict, **changes: object) -> str:
    kept = {k: v for k, v in {**filters, **changes}.items() if v not in ("", 0, None) and not (k == "page" and v == 1)}
    return "/review" + ("?" + urlencode(kept) if kept else "")


def _submitted(c: Ctx):
    """When each clue waiting for review was last submitted: its last signing as the ledger recorded
    it (the date typed on the form, 核实日期, may be days earlier, and set back). Only the events of
    the user's clues waiting: over every signing in the prefecture, a page took 0.19 s, not 0.005."""
    waiting = c.scoped(select(Clue.id).where(Clue.status == VERIFIED))
    return (select(ClueEvent.clue_id, func.max(ClueEvent.at).label("at"))
            .where(ClueEvent.kind == "verify", ClueEvent.clue_id.in_(waiting)).group_by(ClueEvent.clue_id).subquery())


def _queue(c: Ctx, filters: dict):
    submitted = _submitted(c)
    query = c.scoped(select(Clue, submitted.c.at).outerjoin(submitted, submitted.c.clue_id == Clue.id)
                     .where(Clue.status == VERIFIED))
    if filters["township"]:
        query = query.where(Clue.township_code == filters["township"])
    if filters["rule"]:
        query = query.where(Clue.rule_code == filters["rule"])
    if filters["category"]:
        query = query.where(Clue.category == filters["category"])
    if filters["age"] > 0:  # waiting that long since submitted (a clue without the event: since its typed date)
        cutoff = date.today() - timedelta(days=filters["age"])
        query = query.where(or_(submitted.c.at < datetime.combine(cutoff + timedelta(days=1), datetime.min.time()),
                                and_(submitted.c.at.is_(None), Clue.verified_on <= cutoff)))
    # The longest waiting first: a township is waiting for the answer.
    return query.order_by(submitted.c.at.is_(None), submitted.c.at, Clue.verified_on, Clue.id)


def _render(c: Ctx, filters: dict, status_code: int = 200, error: str = "", form: dict | None = None):
    query = _queue(c, filters)
    total = c.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    # A page beyond the last shows the last (a page number from an old link, or a made-up one).
    page = min(max(filters["page"], 1), max((total + PAGE - 1) // PAGE, 1))
    rows = c.session.execute(query.offset((page - 1) * PAGE).limit(PAGE)).all()
    queue = [clue for clue, _ in rows]
    ids = [q.id for q in queue]
    submitted = {clue.id: at.date() for clue, at in rows if at is not None}
    returned = set(c.session.scalars(select(ClueEvent.clue_id).where(ClueEvent.kind == "return",
                                                                     ClueEvent.clue_id.in_(ids)).distinct()))
    latest: dict[int, str] = {}
    for snap in c.session.scalars(select(EvidenceSnapshot).where(EvidenceSnapshot.clue_id.in_(ids))
                                  .order_by(EvidenceSnapshot.night.desc(), EvidenceSnapshot.id.desc())):
        latest.setdefault(snap.clue_id, snap.record)
    # A finding the reviewer signed (before their account became a reviewer's) is another's to review:
    # shown without a box to tick, and why (actions._not_own_review refuses it anyway).
    own = {i for i, who in actions.signed_by_each(c.session, ids).items() if who == c.user.username}
    by_id = {q.id: q for q in queue}
    names = c.division_names()
    evidence = {i: excerpt(clue_evidence_text(clue, latest.get(i), names=names)) for i, clue in by_id.items()}
    overdue = c.session.execute(c.scoped(select(Clue.township_code, func.count()).where(
        Clue.status.in_((DISPATCHED, RETURNED)), Clue.due_date < date.today())).group_by(Clue.township_code)
        .order_by(func.count().desc())).all()
    # What can be picked is what waits, with how many (every rule and township was offered with one
    # clue waiting); the one picked stays offered when none of it waits any more.
    waiting = c.scoped(select(Clue.township_code, Clue.rule_code, Clue.rule_title, func.count())
                       .where(Clue.status == VERIFIED).group_by(Clue.township_code, Clue.rule_code, Clue.rule_title))
    townships: dict[str, int] = {}
    by_rule: dict[tuple[str, str], int] = {}
    for township, rule, title, n in c.session.execute(waiting):
        townships[township] = townships.get(township, 0) + n
        by_rule[(rule, title)] = by_rule.get((rule, title), 0) + n
    if filters["township"]:
        townships.setdefault(filters["township"], 0)
    if filters["rule"] and all(code != filters["rule"] for code, _ in by_rule):
        title = c.session.scalar(c.scoped(select(Clue.rule_title).where(Clue.rule_code == filters["rule"])).limit(1))
        by_rule[(filters["rule"], title or "其他疑点")] = 0
    townships = dict(sorted(townships.items()))
    rules = sorted((code, title, n) for (code, title), n in by_rule.items())
    return c.render("review.html", status_code=status_code, queue=queue, total=total, page=page,
                    pages=(total + PAGE - 1) // PAGE, evidence=evidence,
                    attachments=attachments_for(c, ids), overdue=overdue, names=names,
                    submitted=submitted, returned=returned, own=own,
                    townships=townships, rules=rules, ages=AGES, filters=filters,
                    url=lambda **ch: _url(filters, **ch), error=error,
                    form=form or {"reason": "", "due": str(default_due(c)), "picked": set()})


PICKED = re.compile(r"([0-9]{1,18}):([0-9]{1,18})")  # a clue's id and the version the reviewer saw


def _picked(values: list) -> list[tuple[int, int]] | None:
    """The ticked clues as (id, version), or None when any value is not one (a hand-made request)."""
    out = []
    for v in values:
        m = PICKED.fullmatch(v) if isinstance(v, str) else None
        if m is None:
            return None
        out.append((int(m[1]), int(m[2])))
    return out


@router.get("/review")
def review(c: Ctx = Depends(ctx), township: str = "", rule: str = "", category: str = "", age: int = 0,  # noqa: B008
           page: int = 1):
    require_role(c.user, "county")
    return _render(c, _filters(township, rule, category, age, page))


@router.post("/review")
async def review_many(c: Ctx = Depends(ctx)):  # noqa: B008
    """Close or return the ticked clues, each at the version the reviewer saw. Closing asks for a
    confirmation first (a list of what will be closed); returning needs a reason and a due date,
    checked before anything is done, and the page comes back with what was typed if either is wrong."""
    form = await c.request.form()
    check_csrf(c.request, str(form.get("csrf_token", "")))
    require_role(c.user, "county")
    try:
        age = int(str(form.get("age") or 0))
    except ValueError:
        age = 0
    filters = _filters(str(form.get("township", "")), str(form.get("rule", "")), str(form.get("category", "")), age)
    decision, reason = str(form.get("decision", "")), str(form.get("reason", "")).strip()
    due_text = str(form.get("due", "")).strip()
    picked = _picked(form.getlist("clue"))
    if picked is None:  # not what the queue's check boxes send: nothing is done, nothing echoed
        return _render(c, filters, 400, "所选线索的编号不对，请刷新页面后重新勾选：没有处理任何线索")
    typed = {"reason": reason, "due": due_text, "picked": {f"{i}:{v}" for i, v in picked}}
    if not picked:
        return _render(c, filters, 400, "请先勾选要处理的线索", typed)
    due = None
    if decision == "return":
        try:
            due = date.fromisoformat(due_text)
        except ValueError:
            due = None
        problems = return_problems(reason, due, date.today())
        if due is None:
            problems.append("新的截止日期格式不对（如 2026-12-20）")
        if problems:
            return _render(c, filters, 400, "；".join(problems) + "：没有退回任何线索", typed)
    elif decision == "close" and form.get("confirmed") != "yes":
        wanted = dict(picked)
        shown = [q for q in c.session.scalars(c.scoped(select(Clue).where(Clue.id.in_(wanted))).order_by(Clue.id))]
        return c.render("review_confirm.html", clues=shown, versions=wanted, names=c.division_names(),
                        filters=filters, back=_url(filters))
    elif decision != "close":
        return _render(c, filters, 400, "请选择销号或退回", typed)
    done, problems = 0, []
    for clue_id, version in picked:
        try:
            with c.request.app.state.ledger.write() as s:
                if decision == "close":
                    actions.close(s, clue_id, version, c.user)
                else:
                    actions.send_back(s, clue_id, version, c.user, reason, due)
            done += 1
        except actions.ConflictError as e:
            problems.append(f"{e}，请核对后重新勾选")
        except (TransitionError, actions.NotFoundError) as e:
            problems.append(str(e))
    label = "销号" if decision == "close" else "退回"
    # Nothing done is an error alone: never "已退回 0 条" in green beside it.
    if done == 0:
        c.flash(error=f"没有{label}任何线索：" + "；".join(problems))
    else:
        c.flash(message=f"已{label} {done} 条", error=("另有未处理的：" + "；".join(problems)) if problems else "")
    return RedirectResponse(_url(filters), status_code=303)


@router.post("/clues/{clue_id}/review")
def review_one(clue_id: int, c: Ctx = Depends(ctx), csrf_token: str = Form(""), version: int = Form(...),  # noqa: B008
               decision: str = Form(""), reason: str = Form(""), due: str = Form("")):
    from bidui.web.township import _clue_or_404, _clue_page, stale_clue_page

    check_csrf(c.request, csrf_token)
    require_role(c.user, "county")
    clue = _clue_or_404(c, clue_id)
    typed = {"reason": reason, "due": due}
    day = None
    if decision != "close":
        try:
            day = date.fromisoformat(due.strip())
        except ValueError:
            return _clue_page(c, clue, 400, error="新的截止日期格式不对（如 2026-12-20）", review=typed)
    try:
        with c.request.app.state.ledger.write() as s:
            if decision == "close":
                actions.close(s, clue_id, version, c.user)
            else:
                actions.send_back(s, clue_id, version, c.user, reason, day)
    except TransitionError as e:
        return _clue_page(c, clue, 400, error=str(e), review=typed)
    except actions.ConflictError as e:
        return stale_clue_page(c, clue, e, review=typed)
    done = f"线索 {clue_id} " + ("已销号" if decision == "close" else f"已退回乡镇，新的截止日期 {day}")
    # The next in the queue, as a township's clerk gets the next to verify: a reviewer stayed on the
    # clue just closed, with no way on but back to the queue (a walk, 2026-12-06).
    following = c.session.scalar(_queue(c, _filters()).where(Clue.id != clue_id).with_only_columns(Clue.id).limit(1))
    if following is None:
        c.flash(f"{done}。待审核的线索已全部处理完。")
        return RedirectResponse("/review", status_code=303)
    c.flash(f"{done}。这是下一条待审核线索。")
    return RedirectResponse(f"/clues/{following}", status_code=303)
