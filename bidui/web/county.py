"""County pages: the review queue (close, or return with a reason; several at once) and the
overdue count by township."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Form
from fastapi.responses import RedirectResponse
from sqlalchemy import func, select

from bidui.clues import actions
from bidui.clues.models import Clue
from bidui.clues.states import DISPATCHED, RETURNED, VERIFIED, TransitionError
from bidui.web.deps import Ctx, ctx
from bidui.web.security import check_csrf, require_role

router = APIRouter()


@router.get("/review")
def review(c: Ctx = Depends(ctx), message: str = "", error: str = ""):  # noqa: B008
    require_role(c.user, "county")
    queue = c.session.scalars(c.scoped(select(Clue).where(Clue.status == VERIFIED))
                              .order_by(Clue.township_code, Clue.verified_on, Clue.id).limit(500)).all()
    overdue = c.session.execute(c.scoped(select(Clue.township_code, func.count()).where(
        Clue.status.in_((DISPATCHED, RETURNED)), Clue.due_date < date.today())).group_by(Clue.township_code)
        .order_by(func.count().desc())).all()
    return c.render("review.html", queue=queue, overdue=overdue, names=c.division_names(), message=message, error=error)


@router.post("/review")
async def review_many(c: Ctx = Depends(ctx)):  # noqa: B008
    """Close or return the ticked clues: each at the version the reviewer saw."""
    form = await c.request.form()
    check_csrf(c.request, str(form.get("csrf_token", "")))
    require_role(c.user, "county")
    decision, reason = str(form.get("decision", "")), str(form.get("reason", "")).strip()
    picked = [(int(v.split(":")[0]), int(v.split(":")[1])) for v in form.getlist("clue") if ":" in str(v)]
    done, problems = 0, []
    for clue_id, version in picked:
        try:
            with c.request.app.state.ledger.write() as s:
                if decision == "close":
                    actions.close(s, clue_id, version, c.user)
                elif decision == "return":
                    actions.send_back(s, clue_id, version, c.user, reason)
                else:
                    raise TransitionError("请选择销号或退回")
            done += 1
        except (TransitionError, actions.ConflictError, actions.NotFoundError) as e:
            problems.append(f"线索 {clue_id}：{e}")
    label = "销号" if decision == "close" else "退回"
    return RedirectResponse(f"/review?message=已{label} {done} 条" + (f"&error={'；'.join(problems)}" if problems else ""),
                            status_code=303)


@router.post("/clues/{clue_id}/review")
def review_one(clue_id: int, c: Ctx = Depends(ctx), csrf_token: str = Form(""), version: int = Form(...),  # noqa: B008
               decision: str = Form(""), reason: str = Form("")):
    check_csrf(c.request, csrf_token)
    require_role(c.user, "county")
    try:
        with c.request.app.state.ledger.write() as s:
            if decision == "close":
                actions.close(s, clue_id, version, c.user)
            else:
                actions.send_back(s, clue_id, version, c.user, reason)
    except actions.NotFoundError:
        return RedirectResponse("/review", status_code=303)
    except (TransitionError, actions.ConflictError) as e:
        return RedirectResponse(f"/clues/{clue_id}?error={e}", status_code=303)
    return RedirectResponse(f"/clues/{clue_id}?message={'已销号' if decision == 'close' else '已退回乡镇'}", status_code=303)
