"""阈值推演 page (prefecture and admin): pick a published night and other values for the rules'
parameters; see how many clues each rule and township would have had, added and removed against
the night as published, and how often the affected rules' past clues proved true (属实率).

The web app never opens the DuckDB warehouse: the replay runs as a batch process of its own
(`python -m bidui.rules.whatif`, which opens the warehouse read-only under the home's run lock),
stopped after `[whatif] seconds`. While the nightly run holds the warehouse the page says so."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import select

from bidui import config
from bidui.clues.models import PublishRun
from bidui.clues.present import parameter_value_text, parameter_words
from bidui.rules import engine
from bidui.rules.whatif import BUSY, WhatIfError, parse_settings, rule_parameters
from bidui.web.deps import Ctx, ctx
from bidui.web.security import check_csrf, require_role

router = APIRouter()
NIGHTS = 60  # the published nights offered, latest first
FAILED = "推演没有完成（可能数据量较大或系统繁忙），请稍后再试；多次失败请联系数据专班"
TIMED_OUT = "推演超时，已停止。请稍后再试；多次超时请联系数据专班"


def _parameters(c: Ctx) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(current values, one row per parameter: key, label, unit, current value as read, the rules
    it changes by title)."""
    home = c.request.app.state.home
    cfg = config.load(home.config)
    params = cfg.get("rules", {}).get("parameters", {})
    rules, shared = engine.load_rules(home.root / "rules")
    disabled = set(cfg.get("rules", {}).get("disabled", []))
    reads = rule_parameters([r for r in rules if r.code not in disabled], shared)
    titles = {r.code: r.title for r in rules}
    rows = []
    for name, value in params.items():
        label, unit = parameter_words(name)
        rows.append({"key": name, "label": label, "unit": unit, "current": parameter_value_text(value),
                     "is_list": isinstance(value, list),
                     "rules": "、".join(titles[code] for code, used in reads.items() if name in used) or "（无规则使用）"})
    return params, rows


def _nights(c: Ctx) -> list[str]:
    return [n.isoformat() for n in c.session.scalars(select(PublishRun.night).order_by(PublishRun.night.desc())
                                                         .limit(NIGHTS))]


def _page(c: Ctx, status_code: int = 200, error: str = "", night: str = "", typed: dict[str, str] | None = None,
          result: dict[str, Any] | None = None):
    _, rows = _parameters(c)
    nights = _nights(c)
    return c.render("whatif.html", status_code=status_code, error=error, params=rows, nights=nights,
                    night=night or (nights[0] if nights else ""), typed=typed or {}, result=result)


@router.get("/whatif")
def whatif_form(c: Ctx = Depends(ctx)):  # noqa: B008
    require_role(c.user, "prefecture", "admin")
    return _page(c)


async def run_worker(home_root: str, night: str, scope_code: str, settings: dict[str, str],
                     seconds: float) -> dict[str, Any]:
    """The replay in a process of its own (it dies with the server; killed after `seconds`): its
    JSON answer, or {"error": …} when it failed, timed out or answered nothing."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bidui.rules.whatif", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    request = json.dumps({"home": home_root, "night": night, "scope": scope_code, "set": settings,
                          "parent": os.getpid()}).encode()
    try:
        out, _ = await asyncio.wait_for(proc.communicate(request), seconds)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"error": TIMED_OUT}
    except BaseException:
        if proc.returncode is None:  # the user went away: so does the replay
            proc.kill()
            await proc.wait()
        raise
    try:
        answer = json.loads(out) if proc.returncode == 0 and out else None
    except ValueError:
        answer = None
    return answer if isinstance(answer, dict) else {"error": FAILED}


def _rows_for_page(result: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The worker's answer as the page reads it: changes in words, rules by title (affected first),
    townships by name."""
    changes = []
    for name, value in result.get("changes", {}).items():
        label, unit = parameter_words(name)
        changes.append({"label": label, "unit": unit, "before": parameter_value_text(params.get(name)),
                        "after": parameter_value_text(value)})
    rules = sorted(result.get("by_rule", {}).values(), key=lambda r: (not r["affected"], -r["added"] - r["removed"]))
    towns = sorted(result.get("by_township", {}).values(), key=lambda t: (t.get("county", ""), t["name"]))
    return {"night": result.get("night", ""), "added": result.get("added", 0), "removed": result.get("removed", 0),
            "changes": changes, "rules": rules, "towns": towns, "notes": result.get("notes", []),
            "published": sum(r["published"] for r in rules), "whatif": sum(r["whatif"] for r in rules),
            "show_counties": len({t.get("county", "") for t in towns}) > 1}


@router.post("/whatif")
async def whatif_run(c: Ctx = Depends(ctx)):  # noqa: B008
    form = await c.request.form()
    check_csrf(c.request, str(form.get("csrf_token", "")))
    require_role(c.user, "prefecture", "admin")
    params, _ = _parameters(c)
    night = str(form.get("night", ""))
    # Only a field whose text differs from the current value's is a change: a page sends them all.
    typed = {k: str(form.get(f"p_{k}", "")).strip() for k in params}
    typed = {k: v for k, v in typed.items() if v and v != parameter_value_text(params[k])}
    if night not in _nights(c):
        return _page(c, 400, "请选择一个已发布的比对日期", night, typed)
    try:
        parse_settings([f"{k}={v}" for k, v in typed.items()], params, show_key=False)
    except WhatIfError as e:
        return _page(c, 400, str(e), night, typed)
    home = c.request.app.state.home
    seconds = float(config.load(home.config).get("whatif", {}).get("seconds", 600))
    answer = await run_worker(str(home.root), night, c.user.scope, typed, seconds)
    if "error" in answer:
        status = 503 if answer.get("busy") or answer["error"] in (BUSY, TIMED_OUT, FAILED) else 400
        return _page(c, status, str(answer["error"]), night, typed)
    return _page(c, 200, "", night, typed, _rows_for_page(answer, params))
