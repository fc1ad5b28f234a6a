"""What every page needs: the ledger session, the signed-in user, templates, scoped clue queries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues.models import Clue, Division, User
from bidui.clues.states import STATUS_LABELS
from bidui.clues.workbook import CATEGORY_LABELS
from bidui.datasets import DATASETS
from bidui.web.security import csrf_token, current_user

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals.update(STATUS_LABELS=STATUS_LABELS, CATEGORY_LABELS=CATEGORY_LABELS,
                             DATASET_LABELS={ds.code: ds.title for ds in DATASETS},
                             ROLE_LABELS={"township": "乡镇核实员", "county": "县级审核员", "prefecture": "市级督导",
                                          "admin": "专班管理员"})


def db(request: Request) -> Iterator[Session]:
    with request.app.state.ledger.read() as session:
        yield session


@dataclass
class Ctx:
    request: Request
    session: Session
    user: User

    def render(self, template: str, status_code: int = 200, **values: object):
        return templates.TemplateResponse(self.request, template, {
            "user": self.user, "csrf": csrf_token(self.request), "today": date.today(), **values},
            status_code=status_code)

    def scoped(self, q: Select) -> Select:
        """Clues under the user's division: the one filter every clue query goes through."""
        return q.where(scope.under(Clue.township_code, self.user.scope))

    def clues(self) -> Select:
        return self.scoped(select(Clue))

    def division_names(self) -> dict[str, str]:
        county = scope.prefix(self.user.scope)[:6].ljust(12, "0")  # names of the county around too
        return {d.code: d.name for d in self.session.scalars(select(Division).where(
            scope.under(Division.code, county) if len(scope.prefix(self.user.scope)) >= 6
            else scope.under(Division.code, self.user.scope)))}


def ctx(request: Request, session: Session = Depends(db)) -> Ctx:  # noqa: B008 - FastAPI's dependency idiom
    return Ctx(request, session, current_user(request, session))
