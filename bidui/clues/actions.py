"""What people do to clues: verify and sign, amend one's own finding, close, return. Each action checks the actor's role
and scope, the transition, and the version the actor saw (optimistic concurrency), then writes
the new state and an event in one transaction."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues import attachments, link_decisions
from bidui.clues.models import Clue, ClueEvent, LinkDecision, User
from bidui.clues.present import brief
from bidui.clues.states import (
    CLOSED,
    MAX_REASON,
    NOT_SELF,
    NOT_TRUE,
    TRUE_OUTCOMES,
    VERIFIED,
    Finding,
    TransitionError,
    next_status,
    return_problems,
)
from bidui.clues.states import RETURNED as RETURNED_STATUS
from bidui.text import typed

# 不是本人 names one record↔person pair to keep apart; a clue from the register itself, or one
# summing several records (a household's medical bills), has none. (It said "not from a record
# comparison" of a clue built from linked bills: a township clerk's walk, 2026-12-06.)
NOT_ON_A_LINK = ("这条线索不是由单条记录与本人比对得出（来自名单本身，或汇总了多条记录），不能选“{choice}”；"
                 "证据中有记录不属于本人或本户的，请选“不属实”并在说明中写明是哪一条")
CHANGED = "核实结论已修改"
RETURNED = "核实结论被退回"


class NotFoundError(LookupError):
    """No such clue, or not in the actor's scope (the two are not told apart)."""


class ConflictError(RuntimeError):
    """Someone changed the clue since the actor saw it. The message says what happened, not what to
    do: each surface adds that (a page showing the clue as it is now: check it and submit again)."""


def now() -> datetime:
    return datetime.now().replace(microsecond=0)


def get_clue(session: Session, clue_id: int, actor: User) -> Clue:
    """The clue to act on, its row locked until the caller's transaction ends (PostgreSQL; SQLite
    writers are one at a time already): a second click's request that read the clue while the
    first's was being written got 刚有变动, not the first's result to see as its own (`_repeated`)."""
    clue = session.scalar(select(Clue).where(Clue.id == clue_id).with_for_update()
                          .execution_options(populate_existing=True))
    if clue is None or not scope.covers(actor.scope, clue.township_code):
        raise NotFoundError(f"线索 {clue_id} 不存在或不在您的管辖范围内")
    return clue


def _apply(session: Session, clue: Clue, expected_version: int, actor: User, kind: str, changes: dict,
           payload: dict, event_kind: str | None = None) -> Clue:
    if clue.version != expected_version:
        # (not "by someone else": as often it is the same clerk in another window, or the nightly run)
        raise ConflictError(f"线索 {clue.id} 在您打开后已有变动（可能是他人、您在其他窗口的操作或夜间比对；"
                            f"您看到的是第 {expected_version} 版，当前为第 {clue.version} 版）")
    return _write(session, clue, expected_version, actor, next_status(kind, clue.status, actor.role), changes,
                  payload, event_kind or kind)


def _repeated(session: Session, clue: Clue, expected_version: int, actor: User, event_kind: str,
              payload: dict | None = None) -> bool:
    """The actor's own last action on the clue, sent again (a double click, a form sent twice): the
    clue is one version on from what the actor saw, and that version is this very action of theirs
    (`payload`: what its event must say). Done already, so nothing is written; without this, the
    second click answered 已有变动 and 没有销号任何线索 over a clue the first had closed."""
    if clue.version != expected_version + 1:
        return False
    last = session.scalar(select(ClueEvent).where(ClueEvent.clue_id == clue.id).order_by(ClueEvent.id.desc()).limit(1))
    return (last is not None and last.actor == actor.username and last.kind == event_kind
            and all((last.payload or {}).get(k) == v for k, v in (payload or {}).items()))


def _write(session: Session, clue: Clue, expected_version: int, actor: User, target: str, changes: dict,
           payload: dict, event_kind: str) -> Clue:
    """The clue moved to `target` with `changes` and its event, if still at the version seen."""
    stamp = now()
    # The WHERE on the version makes the check and the write one step, even between processes.
    result = session.execute(
        update(Clue).where(Clue.id == clue.id, Clue.version == expected_version)
        .values(status=target, version=expected_version + 1, updated_at=stamp, **changes)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise ConflictError(f"线索 {clue.id} 刚有变动（他人、您在其他窗口的操作或夜间比对）")
    session.add(ClueEvent(clue_id=clue.id, at=stamp, actor=actor.username, kind=event_kind, from_status=clue.status,
                          to_status=target, payload=payload))
    session.flush()
    session.refresh(clue)
    return clue


def finding_values(finding: Finding) -> dict:
    """A finding as the clue stores it (the one place that says how: trimmed, empty as none)."""
    return {"outcome": finding.outcome, "outcome_detail": finding.detail or None, "action": finding.action or None,
            "finding": typed(finding.finding),
            "verifier_name": typed(finding.verifier_name), "verifier_position": typed(finding.verifier_position),
            "verified_on": finding.verified_on}


def holds(clue: Clue, finding: Finding) -> bool:
    """The clue holds this very finding, signed (a workbook row sent again)."""
    return clue.status in (VERIFIED, CLOSED) and all(getattr(clue, k) == v for k, v in finding_values(finding).items())


def _finding_changes(finding: Finding, today: date, first_seen: date) -> tuple[dict, dict]:
    problems = finding.problems(today, first_seen)
    if problems:
        raise TransitionError("；".join(problems))
    changes = finding_values(finding) | {"return_reason": None}
    payload = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in changes.items() if k != "return_reason"}
    return changes, payload


def _decision_kind(session: Session, clue: Clue, finding: Finding) -> str | None:
    """What the signed finding teaches the linker about the records the clue stands on: 不是本人
    → cannot-link; 属实 on a link the linker was unsure of (review, 待确认) → must-link. Refused
    when 不是本人 is said of a clue that rests on no link (there is no pair to keep apart)."""
    records = link_decisions.records_of(session, clue)
    if finding.outcome == NOT_TRUE and finding.detail == NOT_SELF:
        if not records:
            raise TransitionError(NOT_ON_A_LINK.format(choice=NOT_SELF))
        return link_decisions.CANNOT
    if finding.outcome in TRUE_OUTCOMES and clue.link_method == "review" and records:
        return link_decisions.MUST
    return None


def _outdated(session: Session, clue: Clue, kind: str | None) -> int:
    """How many of the clue's active decisions the new finding no longer supports."""
    rows = session.scalars(select(LinkDecision.kind).where(LinkDecision.clue_id == clue.id,
                                                           LinkDecision.revoked_at.is_(None))).all()
    return sum(k != kind for k in rows)


def _teach(session: Session, clue: Clue, kind: str | None, actor: User, verifier_name: str) -> None:
    """After the finding is written: revoke what it no longer supports (a re-verification after a
    return, an amendment), then record what it says."""
    for other in (link_decisions.CANNOT, link_decisions.MUST):
        if other != kind:
            link_decisions.revoke_for_clue(session, clue, other, actor, CHANGED)
    if kind is not None:
        link_decisions.decide(session, clue, kind, actor, verifier_name)


def _signed_finding(session: Session, clue: Clue, expected_version: int, actor: User, finding: Finding, today: date,
                    kind: str, payload_extra: dict | None = None) -> Clue:
    changes, payload = _finding_changes(finding, today, clue.first_seen)
    if holds(clue, finding) and _repeated(session, clue, expected_version, actor, "amended" if kind == "amend" else kind):
        return clue
    decision = _decision_kind(session, clue, finding)
    if decision:
        payload["link_decision"] = decision
    outdated = _outdated(session, clue, decision)
    if outdated:
        payload["link_revoked"] = outdated
    payload.update(payload_extra or {})
    clue = _apply(session, clue, expected_version, actor, kind, changes, payload,
                  event_kind="amended" if kind == "amend" else None)
    _teach(session, clue, decision, actor, finding.verifier_name.strip())
    return clue


def verify(session: Session, clue_id: int, expected_version: int, actor: User, finding: Finding,
           today: date | None = None, required_attachments: Collection[str] = (), via: str | None = None) -> Clue:
    """`required_attachments`: the rule codes whose verification needs a photo or PDF (the home's
    [rules.attachments] required, config.attachment_settings); `via`: "workbook" when it came in a
    township workbook (its 核实人 was typed there, not the account's own name)."""
    clue = get_clue(session, clue_id, actor)
    attachments.check_required(session, clue, required_attachments)
    return _signed_finding(session, clue, expected_version, actor, finding, today or date.today(), "verify",
                           {"via": via} if via else None)


def signed_by(session: Session, clue: Clue) -> str | None:
    """The username of whoever signed the clue's current finding (its last verify or amend)."""
    return signed_by_each(session, [clue.id]).get(clue.id)


def signed_by_each(session: Session, clue_ids: list[int]) -> dict[int, str]:
    """`signed_by` for many clues at once (a page of the review queue): clue id → username."""
    last = (select(func.max(ClueEvent.id)).where(ClueEvent.clue_id.in_(clue_ids), ClueEvent.kind.in_(("verify", "amended")))
            .group_by(ClueEvent.clue_id))
    return dict(session.execute(select(ClueEvent.clue_id, ClueEvent.actor).where(ClueEvent.id.in_(last))).all())


def can_amend(session: Session, clue: Clue, actor: User) -> bool:
    """A township verifier may correct their own finding while the county has not acted on it
    (the clue is still verified: closing or returning it ends the window)."""
    return (actor.role == "township" and clue.status == VERIFIED and scope.covers(actor.scope, clue.township_code)
            and signed_by(session, clue) == actor.username)


def amend(session: Session, clue_id: int, expected_version: int, actor: User, finding: Finding,
          today: date | None = None) -> Clue:
    """Replace one's own signed finding before the county reviews it; the event keeps both."""
    clue = get_clue(session, clue_id, actor)
    if clue.status == VERIFIED and signed_by(session, clue) != actor.username:
        raise TransitionError("只能修改本人签字的核实结论")
    before = {"outcome": clue.outcome, "outcome_detail": clue.outcome_detail, "action": clue.action,
              "finding": clue.finding}
    return _signed_finding(session, clue, expected_version, actor, finding, today or date.today(), "amend",
                           {"before": before})


def _not_own_review(session: Session, clue: Clue, actor: User) -> None:
    """A finding is reviewed by someone other than who signed it (谁核实谁签字; the county's review
    is a second pair of eyes): a clerk whose account became a county reviewer's closed the clue she
    had signed herself (a walk, 2026-12-06)."""
    if signed_by(session, clue) == actor.username:
        raise TransitionError(f"线索 {clue.id} 的核实结论是您本人签字的，不能由您本人销号或退回，请由县级其他审核人员审核")


def close(session: Session, clue_id: int, expected_version: int, actor: User, today: date | None = None) -> Clue:
    clue = get_clue(session, clue_id, actor)
    _not_own_review(session, clue, actor)
    if _repeated(session, clue, expected_version, actor, "close"):
        return clue
    return _apply(session, clue, expected_version, actor, "close", {"closed_on": today or date.today()}, {})


def send_back(session: Session, clue_id: int, expected_version: int, actor: User, reason: str,
              due: date | None = None, today: date | None = None) -> Clue:
    """Return a verified clue to its township with a reason and a new due date (the old one has
    usually passed by the time the county reviews)."""
    clue = get_clue(session, clue_id, actor)
    _not_own_review(session, clue, actor)
    problems = return_problems(reason, due, today or date.today())
    if problems:
        raise TransitionError("；".join(problems))
    reason = typed(reason)
    changes: dict = {"return_reason": reason}
    payload: dict = {"reason": reason}
    if due is not None:
        changes["due_date"], payload["due_date"] = due, due.isoformat()
    if _repeated(session, clue, expected_version, actor, "return", payload):
        return clue
    # A returned finding is not accepted: what its signature taught the linker stops applying until
    # the township signs again (else a township alone could make a clue's record fall off its person).
    withdrawn = _outdated(session, clue, None)
    if withdrawn:
        payload["link_revoked"] = withdrawn
    clue = _apply(session, clue, expected_version, actor, "return", changes, payload)
    for kind in (link_decisions.CANNOT, link_decisions.MUST):
        link_decisions.revoke_for_clue(session, clue, kind, actor, RETURNED)
    return clue


def decision_revoked(session: Session, decision: LinkDecision, actor: User, due: date) -> Clue | None:
    """The clue whose finding made `decision`, after the task force revoked it
    (`link_decisions.revoke`; inside the caller's transaction). A finding still awaiting the
    county's review rests on what was overturned: it goes back to the township to be verified
    again by `due` (what a county's return gives by default: else the county could close it on a
    verdict no longer held, and nothing on the clue said so). A clue in another state keeps it; its
    history says what was revoked and why. None when the decision has no clue; ConflictError when
    someone changed the clue meanwhile."""
    clue = session.scalar(select(Clue).where(Clue.id == decision.clue_id).with_for_update()) \
        if decision.clue_id is not None else None
    if clue is None:
        return None
    why = decision.revoke_reason or ""
    if clue.status != VERIFIED:
        session.add(ClueEvent(clue_id=clue.id, at=now(), actor=actor.username, kind="decision_revoked",
                              from_status=clue.status, to_status=clue.status,
                              payload={"decision": decision.kind, "reason": why}))
        session.flush()
        return clue
    # As any return: what the finding taught the linker stops applying until the township signs again.
    others = sum(link_decisions.revoke_for_clue(session, clue, kind, actor, RETURNED)
                 for kind in (link_decisions.CANNOT, link_decisions.MUST))
    said = f"“{link_decisions.KIND_LABELS[decision.kind]}”的认定已被撤销（理由：），请重新核实"
    # Within a return reason's limit, as the county's are (the revocation's own reason may fill it).
    reason = said.replace("（理由：）", f"（理由：{brief(typed(why), MAX_REASON - len(said) - 1)}）")
    payload = {"reason": reason, "due_date": due.isoformat(), "decision_revoked": decision.kind}
    if others:
        payload["link_revoked"] = others
    return _write(session, clue, clue.version, actor, RETURNED_STATUS, {"return_reason": reason, "due_date": due},
                  payload, "return")


def returned_for_revoked_decision(session: Session, clue: Clue) -> bool:
    """Was the clue last sent back because the task force revoked what its finding taught the
    linker (`decision_revoked`)?"""
    payload = session.scalar(select(ClueEvent.payload).where(ClueEvent.clue_id == clue.id, ClueEvent.kind == "return")
                             .order_by(ClueEvent.id.desc()).limit(1))
    return bool(payload and payload.get("decision_revoked"))
