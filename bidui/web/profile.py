"""The signed-in person: their real name and position, which every signature uses (谁核实谁签字),
asked at the first sign-in while either is missing and editable later from the header; and their
own password, which anyone may change here (the password policy of bidui.clues.users; the user's
other sessions end, the one in use stays), and must change before anything else opens while it
is one an administrator set (bidui.web.security.PASSWORD_PAGES)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form
from fastapi.responses import RedirectResponse

from bidui.clues import users
from bidui.clues.models import User
from bidui.clues.states import MAX_SIGNER
from bidui.web.deps import Ctx, ctx
from bidui.web.security import back_after_login, check_csrf, check_own_password

router = APIRouter()
# As long as a signature may be (bidui.clues.states.MAX_SIGNER, what the admin pages allow too).
MAX_CHARS = MAX_SIGNER


def needs_profile(user: User) -> bool:
    return not ((user.real_name or "").strip() and (user.position or "").strip())


def _page(c: Ctx, status_code: int = 200, form: dict | None = None, error: str = "", password_error: str = ""):
    return c.render("profile.html", status_code=status_code, error=error, password_error=password_error,
                    form=form or {"real_name": c.user.real_name or "", "position": c.user.position or ""},
                    first=needs_profile(c.user), must_change=c.user.must_change_password)


@router.get("/profile")
def profile(c: Ctx = Depends(ctx)):  # noqa: B008
    return _page(c)


@router.post("/profile/password")
def password_change(c: Ctx = Depends(ctx), csrf_token: str = Form(""), current: str = Form(""),  # noqa: B008
                    new: str = Form(""), again: str = Form("")):
    check_csrf(c.request, csrf_token)
    try:
        if new != again:
            raise users.UserError("两次输入的新密码不一致")
        # The argon2 work (the old password checked, the new one hashed) before the write
        # transaction, which then only stores the hash: a slow hash never holds the write lock.
        refused = check_own_password(c.request, c.user, current)
        if refused:
            raise users.UserError(refused)
        if current == new:
            raise users.UserError("新密码不能与当前密码相同")
        password_hash = users.hash_password(new, c.user.username)
        with c.request.app.state.ledger.write() as s:
            users.change_password(s, c.user.id, password_hash, getattr(c.request.state, "web_session_id", None))
    except users.UserError as e:
        return _page(c, 400, password_error=str(e))
    if c.user.must_change_password:  # the administrator's password replaced: on to the work
        c.flash("密码已设置，请妥善保管。以后请用新密码登录")
        if needs_profile(c.user):  # (then the name and position a signature needs, on this page)
            return RedirectResponse("/profile", status_code=303)
        return RedirectResponse(back_after_login(c.request, c.user) or "/", status_code=303)
    c.flash("密码已修改。您在其他设备上的登录已全部退出")
    return RedirectResponse("/profile", status_code=303)


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
        problems.append(f"姓名不应含数字，且不超过 {MAX_CHARS} 个字")
    if not pos:
        problems.append("请填写您的职务（如 扶贫专干、副镇长）")
    elif len(pos) > MAX_CHARS:
        problems.append(f"职务不超过 {MAX_CHARS} 个字")
    if problems:
        return _page(c, 400, form=form, error="；".join(problems))
    with c.request.app.state.ledger.write() as s:
        user = s.get(User, c.user.id)
        user.real_name, user.position = name, pos
    c.flash("个人信息已保存：今后签字使用此姓名和职务")
    if c.user.must_change_password:  # the password first; the page to go back to is kept for after it
        return RedirectResponse("/profile", status_code=303)
    return RedirectResponse(back_after_login(c.request, c.user) or "/", status_code=303)
