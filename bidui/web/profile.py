"""The signed-in person: their real name and position, which every signature uses (谁核实谁签字).
Asked at the first sign-in while either is missing; editable later from the header."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form
from fastapi.responses import RedirectResponse

from bidui.clues.models import User
from bidui.web.deps import Ctx, ctx
from bidui.web.security import check_csrf

router = APIRouter()
MAX_CHARS = 30


def needs_profile(user: User) -> bool:
    return not ((user.real_name or "").strip() and (user.position or "").strip())


@router.get("/profile")
def profile(c: Ctx = Depends(ctx)):  # noqa: B008
    return c.render("profile.html", form={"real_name": c.user.real_name or "", "position": c.user.position or ""},
                    first=needs_profile(c.user))


@router.post("/profile")
def profile_save(c: Ctx = Depends(ctx), csrf_token: str = Form(""), real_name: str = Form(""),  # noqa: B008
                 position: str = Form("")):
    check_csrf(c.request, csrf_token)
    form = {"real_name": real_name, "position": position}
    name, pos = real_name.strip(), position.strip()
    problems = []
    if not name:
        problems.append("请填写您的真实姓名（签字用）")
    elif len(name) > MAX_CHARS or any(ch.isdigit() for ch in name):
        problems.append("姓名不应含数字，且不超过 30 个字")
    if not pos:
        problems.append("请填写您的职务（如 扶贫专干、副镇长）")
    elif len(pos) > MAX_CHARS:
        problems.append("职务不超过 30 个字")
    if problems:
        return c.render("profile.html", status_code=400, form=form, first=needs_profile(c.user), error="；".join(problems))
    with c.request.app.state.ledger.write() as s:
        user = s.get(User, c.user.id)
        user.real_name, user.position = name, pos
    c.flash("个人信息已保存：今后签字使用此姓名和职务")
    return RedirectResponse("/", status_code=303)
