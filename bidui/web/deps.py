"""What every page needs: the ledger session, the signed-in user, templates, scoped clue queries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues.models import Clue, Division, User
from bidui.clues.present import brief, outcome_text, signer
from bidui.clues.states import MAX_FINDING, MAX_REASON, MAX_RETURN_DAYS, MAX_SIGNER, STATUS_LABELS
from bidui.clues.users import ROLE_LABELS, people
from bidui.clues.workbook import CATEGORY_LABELS
from bidui.datasets import DATASETS
from bidui.web.security import csrf_token, current_user


def return_window() -> tuple[date, date]:
    """The first and last new due date a return may give (bidui.clues.states.return_problems)."""
    return date.today(), date.today() + timedelta(days=MAX_RETURN_DAYS)


templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals.update(STATUS_LABELS=STATUS_LABELS, CATEGORY_LABELS=CATEGORY_LABELS,
                             DATASET_LABELS={ds.code: ds.title for ds in DATASETS}, ROLE_LABELS=ROLE_LABELS,
                             outcome_text=outcome_text, signer=signer, return_window=return_window,
                             MAX_FINDING=MAX_FINDING, MAX_REASON=MAX_REASON, MAX_SIGNER=MAX_SIGNER)
templates.env.filters["brief"] = brief


def _unnamed_division(code: str) -> str:
    """A division the register names nowhere (the prefecture itself is not among its divisions)."""
    return {"prefecture": "全市", "county": "全县", "township": "本乡镇"}.get(scope.level(code), "") if scope.is_code(code) else ""


def db(request: Request) -> Iterator[Session]:
    with request.app.state.ledger.read() as session:
        yield session


@dataclass
class Ctx:
    request: Request
    session: Session
    user: User

    def render(self, template: str, status_code: int = 200, **values: object):
        # A message left by the redirect that led here (see `flash`) shows once, unless the page has its own.
        shown = self.request.session.pop("flash", None) or {}
        for key in ("message", "error"):
            values[key] = values.get(key) or shown.get(key, "")
        division = self.session.get(Division, self.user.scope)
        return templates.TemplateResponse(self.request, template, {
            "user": self.user, "csrf": csrf_token(self.request), "today": date.today(),
            "division_name": division.name if division else _unnamed_division(self.user.scope), **values},
            status_code=status_code)

    def flash(self, message: str = "", error: str = "") -> None:
        """Say something on the page a redirect leads to. Kept in the session, not the URL: a
        message in a link could be forged into anyone's page, and typed text must stay out of URLs."""
        self.request.session["flash"] = {"message": message, "error": error}

    def people(self, usernames: set[str]) -> dict[str, str]:
        """How the people behind usernames read on a page (`bidui.clues.users.people`)."""
        return people(self.session, usernames)

    def scoped(self, q: Select) -> Select:
        """Clues under the user's division: the one filter every clue query goes through."""
        return q.where(scope.under(Clue.township_code, self.user.scope))

    def clues(self) -> Select:
        return self.scoped(select(Clue))

    def division_names(self) -> dict[str, str]:
        """Every division's name, as the clue page has them: a clue's evidence may name a household
        in another county (一人多户), and a name is reference data, not a clue. What a user may see
        is scoped by the queries that pick the clues, not by the names that word them."""
        return {code: name for code, name in self.session.execute(select(Division.code, Division.name))}


def attachments_for(c: Ctx, ids: list[int]) -> dict[int, list]:
    """Each clue's attachments, from bidui.clues.attachments (the one place that knows them)."""
    try:
        from bidui.clues.attachments import for_clues
    except ImportError:  # a build without attachments: none to show
        return {}
    return for_clues(c.session, ids)


def default_due(c: Ctx) -> date:
    """The new due date a returned clue gets unless the reviewer picks another: today plus the
    days a township has for a new clue (`[clues] due_days`, as the nightly publish reads it)."""
    from bidui import config
    from bidui.clues.publish import DUE_DAYS

    days = int(config.load(c.request.app.state.home.config).get("clues", {}).get("due_days", DUE_DAYS))
    return date.today() + timedelta(days=min(days, MAX_RETURN_DAYS))


def ctx(request: Request, session: Session = Depends(db)) -> Ctx:  # noqa: B008 - FastAPI's dependency idiom
    return Ctx(request, session, current_user(request, session))
