"""一户一档: a household's printable file — its members (the ledger's copy of the register), every
clue over time with its evidence, the verifications with their signatures, the attachments, and
each clue's history in words; a village's households as one file.

The page (/households/{code}/print, /villages/{code}/households/print) and the command (`bidui
household print`) render the same template from what `build` returns. The command's HTML stands
alone: its style inline and its thumbnails as data: URIs; its PDF is that HTML printed by headless
Chromium."""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues.models import (
    Clue,
    ClueEvent,
    Division,
    EvidenceSnapshot,
    RegisterHousehold,
    RegisterMember,
)
from bidui.clues.present import EVENT_LABELS, clue_view, event_note
from bidui.clues.states import STATUS_LABELS
from bidui.clues.users import people

MAX_CLUES = 500  # of one household: a household with more is a data fault, not a file to print
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


@dataclass
class ClueRecord:
    clue: Clue
    view: dict
    history: list[dict]
    attachments: list


@dataclass
class HouseholdFile:
    code: str
    household: RegisterHousehold | None  # None: a household only hukou or the clues know
    members: list[dict]
    records: list[ClueRecord]
    township_code: str
    village_code: str
    hukou_number: str = ""
    status: str = ""
    registered_year: int | None = None
    states: list[tuple[str, int]] = field(default_factory=list)


def _attachments(session: Session, ids: list[int]) -> dict[int, list]:
    try:
        from bidui.clues.attachments import for_clues
    except ImportError:  # a build without attachments: none to show
        return {}
    return for_clues(session, ids)


def records_of(session: Session, clues: list[Clue], names: dict[str, str]) -> list[ClueRecord]:
    """Each clue with its evidence (newest first), history in words and attachments: a few queries for all."""
    ids = [c.id for c in clues]
    evidence: dict[int, list] = {}
    for e in session.scalars(select(EvidenceSnapshot).where(EvidenceSnapshot.clue_id.in_(ids))
                             .order_by(EvidenceSnapshot.night.desc(), EvidenceSnapshot.id.desc())):
        evidence.setdefault(e.clue_id, []).append(e)
    events: dict[int, list[ClueEvent]] = {}
    for e in session.scalars(select(ClueEvent).where(ClueEvent.clue_id.in_(ids)).order_by(ClueEvent.id)):
        events.setdefault(e.clue_id, []).append(e)
    who = people(session, {e.actor for es in events.values() for e in es})
    files = _attachments(session, ids)
    out = []
    for c in clues:
        labels = {a.id: a.label for a in files.get(c.id, [])}
        history = [{"at": e.at, "who": who.get(e.actor, "已停用的账号"), "what": EVENT_LABELS.get(e.kind, "其他"),
                    "note": event_note(e.kind, e.payload, labels)}
                   for e in events.get(c.id, []) if e.kind != "attachment_viewed"]  # a look is not a step of the case
        out.append(ClueRecord(c, clue_view(c, evidence.get(c.id, []), names), history, files.get(c.id, [])))
    return out


def build(session: Session, code: str, under: str | None, names: dict[str, str]) -> HouseholdFile | None:
    """The file of a household (its 户编号, or the 户号 of a household only hukou knows) as a user
    scoped to `under` may see it (None: the operator's command, everything); None when there is
    nothing of it under that scope."""
    household = session.get(RegisterHousehold, code)
    if household is not None and under is not None and not scope.covers(under, household.township_code):
        household = None
    q = select(Clue).where(or_(Clue.household_code == code, (Clue.household_code == "") & (Clue.hukou_number == code)))
    if under is not None:
        q = q.where(scope.under(Clue.township_code, under))
    clues = list(session.scalars(q.order_by(Clue.first_seen, Clue.id).limit(MAX_CLUES)))
    if household is None and not clues:
        return None
    rows = sorted(session.scalars(select(RegisterMember).where(RegisterMember.household_code == code)),
                  key=head_first) if household is not None else []
    counted: dict[str, int] = {}
    for c in clues:
        counted[c.subject_key] = counted.get(c.subject_key, 0) + 1
    members = [{"name": m.name or "（无姓名）", "relation": m.relation or "", "sex": m.sex or "",
                "birth_year": m.birth_year, "clues": counted.pop(m.person_key, 0)} for m in rows]
    # Clue subjects the register does not list (a hukou-only household, a member since removed).
    for c in clues:
        if c.subject_key in counted:
            members.append({"name": c.subject_name or "（无姓名）", "relation": "", "sex": "", "birth_year": None,
                            "clues": counted.pop(c.subject_key), "outside": True})
    states: dict[str, int] = {}
    for c in clues:
        states[STATUS_LABELS[c.status]] = states.get(STATUS_LABELS[c.status], 0) + 1
    first = clues[0] if clues else None
    return HouseholdFile(
        code, household, members, records_of(session, clues, names),
        household.township_code if household else first.township_code,  # type: ignore[union-attr]
        household.village_code if household else (first.village_code or ""),  # type: ignore[union-attr]
        hukou_number=next((c.hukou_number for c in clues if c.hukou_number), ""),
        status=(household.status if household else first.household_status) or "",  # type: ignore[union-attr]
        registered_year=household.registered_year if household else first.registered_year,  # type: ignore[union-attr]
        states=list(states.items()))


def head_first(m: RegisterMember) -> tuple[bool, int]:
    """The head of the household first, then the register's order."""
    return m.relation != "户主", m.seq


def village_codes(session: Session, village: str, under: str | None) -> list[str]:
    """Every household of a village a user may see: the register's, and those only clues know."""
    if under is not None and not scope.covers(under, village):
        return []
    codes = set(session.scalars(select(RegisterHousehold.household_code).where(RegisterHousehold.village_code == village)))
    q = select(Clue.household_code, Clue.hukou_number).where(Clue.village_code == village)
    if under is not None:
        q = q.where(scope.under(Clue.township_code, under))
    for hh, hukou in session.execute(q.distinct()):
        codes.add(hh or hukou)
    return sorted(c for c in codes if c)


def build_village(session: Session, village: str, under: str | None, names: dict[str, str]) -> list[HouseholdFile]:
    return [f for code in village_codes(session, village, under) if (f := build(session, code, under, names)) is not None]


def all_names(session: Session) -> dict[str, str]:
    return {code: name for code, name in session.execute(select(Division.code, Division.name))}


# ---------------------------------------------------------------- the command's file


def _data_uris(home, files: list[HouseholdFile]) -> dict[int, str]:
    """Each image attachment's thumbnail as a data: URI (the file stands alone)."""
    from bidui.clues import attachments as store

    out: dict[int, str] = {}
    for f in files:
        for r in f.records:
            for a in r.attachments:
                if a.media_type not in (store.JPEG, store.PNG):
                    continue
                try:
                    thumb = store.thumbnail(store.open_bytes(home, a), a.media_type)
                except (store.MissingContentError, OSError, ValueError):
                    continue  # the file says the picture is missing
                out[a.id] = "data:image/jpeg;base64," + base64.b64encode(thumb).decode()
    return out


def render_html(home, files: list[HouseholdFile], names: dict[str, str], title: str, today: date | None = None) -> str:
    """The file as one standalone HTML document (the page's template, style inline)."""
    from bidui.web.deps import templates

    css = (Path(__file__).parent.parent / "web" / "static" / "print.css").read_text(encoding="utf-8")
    page = templates.env.get_template("household_print.html").render(
        files=files, names=names, title=title, today=today or date.today(), standalone=True,
        thumbs=_data_uris(home, files))
    # The style goes in here, not in the template: the web app's templates carry none (CSP).
    return page.replace("</head>", f"<style>{css}</style>\n</head>", 1)


class PdfError(RuntimeError):
    """No Chromium to print with (the message says so in Chinese)."""


def chromium() -> str | None:
    found = next((p for p in CHROMIUM if Path(p).exists()), None)
    return found or shutil.which("chromium") or shutil.which("chromium-browser")


def write_pdf(html: str, out: Path, timeout: int = 300) -> None:
    """Print the HTML to PDF with headless Chromium (A4, the print stylesheet's margins)."""
    browser = chromium()
    if browser is None:
        raise PdfError("本机没有安装 Chromium 浏览器，无法生成 PDF。请改用 .html 输出后用浏览器打印，"
                             "或由管理员安装 Chromium（Debian/Ubuntu：apt-get install chromium）")
    with tempfile.TemporaryDirectory(prefix="bidui-household-") as d:
        page = Path(d) / "file.html"
        page.write_text(html, encoding="utf-8")
        target = Path(d) / "file.pdf"
        try:
            done = subprocess.run(
                [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-pdf-header-footer", "--print-to-pdf-no-header", f"--user-data-dir={Path(d) / 'profile'}",
                 f"--print-to-pdf={target}", page.as_uri()],
                capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise PdfError(f"Chromium 在 {timeout} 秒内没有生成 PDF，请改用 .html 输出") from e
        if not target.exists() or target.stat().st_size == 0:
            raise PdfError(f"Chromium 没有生成 PDF（退出码 {done.returncode}），请改用 .html 输出")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target), out)
