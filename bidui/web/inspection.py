"""迎检抽样 (the inspection sample) for county and prefecture users, and 一户一档 (the household
file) for everyone: a household's, and a village's at once. What is drawn and printed is
bidui.clues.inspection's and bidui.clues.household_file's; here only who may see which county,
township or household (a user's scope), and the page, its print and its Excel file."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from bidui import scope
from bidui.clues import household_file, inspection
from bidui.web.deps import Ctx, ctx
from bidui.web.security import require_role

router = APIRouter()
MAX_SEED = 10**9


def _county(c: Ctx, county: str) -> tuple[str, list[tuple[str, str]]]:
    """The county a user draws from (a county user: their own, whatever the URL says) and the
    counties they may choose among; 404 for one outside their scope."""
    require_role(c.user, "county", "prefecture")
    if c.user.role == "county":
        own = scope.county_of(c.user.scope)
        return own, [(own, c.division_names().get(own, ""))]
    choices = inspection.counties(c.session, c.user.scope)
    if county and not (scope.is_code(county) and scope.level(county) == "county" and scope.covers(c.user.scope, county)):
        raise HTTPException(404)
    return county or (choices[0][0] if choices else ""), choices


def _seed(seed: int) -> int:
    return min(max(seed, 0), MAX_SEED)


def _sample_or_404(c: Ctx, county: str, seed: int) -> inspection.Sample:
    """The sample a print or a download is made of. Unlike the page, which shows an empty form,
    these have nothing to show without a county, hence 404."""
    code, _ = _county(c, county)
    if not code:
        raise HTTPException(404)
    return inspection.draw(c.session, code, _seed(seed))


@router.get("/inspection")
def inspection_page(c: Ctx = Depends(ctx), county: str = "", seed: int = 1):  # noqa: B008
    """The sample on screen; a GET form chooses the county and the seed (nothing personal in the URL)."""
    code, choices = _county(c, county)
    seed = _seed(seed)
    sample = inspection.draw(c.session, code, seed) if code else None
    return c.render("inspection.html", sample=sample, county=code, seed=seed, choices=choices,
                    measure=inspection.MEASURE, summary=inspection.summary(sample) if sample else {},
                    rate=inspection.rate, sample_title=inspection.title(sample) if sample else "")


@router.get("/inspection/print")
def inspection_print(c: Ctx = Depends(ctx), county: str = "", seed: int = 1):  # noqa: B008
    sample = _sample_or_404(c, county, seed)
    return c.render("inspection_print.html", sample=sample, measure=inspection.MEASURE,
                    summary=inspection.summary(sample), rate=inspection.rate, sample_title=inspection.title(sample))


@router.get("/inspection.xlsx")
def inspection_download(c: Ctx = Depends(ctx), county: str = "", seed: int = 1):  # noqa: B008
    sample = _sample_or_404(c, county, seed)
    tmp = Path(tempfile.mkstemp(suffix=".xlsx")[1])
    inspection.write_xlsx(sample, tmp)
    return FileResponse(tmp, filename=inspection.filename(sample), background=BackgroundTask(tmp.unlink))


@router.get("/households/{code}/print")
def household_print(code: str, c: Ctx = Depends(ctx)):  # noqa: B008
    """A household's file (一户一档). `code` is the register's 户编号, or the 户号 of a household
    only hukou knows; both are division-coded, never a person's ID."""
    names = household_file.all_names(c.session)
    found = household_file.build(c.session, code, c.user.scope, names)
    if found is None:
        raise HTTPException(404)
    village = found.village_code if scope.is_code(found.village_code) else ""
    return c.render("household_print.html", files=[found], names=names, standalone=False,
                    title=f"户疑点线索核实档案 {found.code}",
                    village_link=f"/villages/{village}/households/print" if village else "")


@router.get("/villages/{village}/households/print")
def village_print(village: str, c: Ctx = Depends(ctx)):  # noqa: B008
    """Every household of a village, one file after another, to print at once."""
    if not scope.is_code(village) or scope.level(village) != "village":
        raise HTTPException(404)
    names = household_file.all_names(c.session)
    files = household_file.build_village(c.session, village, c.user.scope, names)
    if not files:
        raise HTTPException(404)
    return c.render("household_print.html", files=files, names=names, standalone=False,
                    title=f"{names.get(village, '')}一户一档（{len(files)} 户）", village_link="")
