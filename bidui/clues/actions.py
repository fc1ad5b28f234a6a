"""What people do to clues: verify and sign, close, return. Each action checks the actor's role
and scope, the transition, and the version the actor saw (optimistic concurrency), then writes
the new state and an event in one transaction."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues.models import Clue, ClueEvent, User
from bidui.clues.states import Finding, TransitionError, next_status


class NotFoundError(LookupError):
    """No such clue, or not in the actor's scope (the two are not told apart)."""


class ConflictError(RuntimeError):
    """Someone changed the clue since the actor saw it."""


def now() -> datetime:
    return datetime.now().replace(microsecond=0)


def get_clue(session: Session, clue_id: int, actor: User) -> Clue:
    clue = session.get(Clue, clue_id)
    if clue is None or not scope.covers(actor.scope, clue.township_code):
        raise NotFoundError(f"线索 {clue_id} 不存在或不在您的管辖范围内")
    return clue


def _apply(session: Session, clue: Clue, expected_version: int, actor: User, kind: str, changes: dict,
           payload: dict) -> Clue:
    if clue.version != expected_version:
        raise ConflictError(f"线索 {clue.id} 已被他人修改（您看到的是第 {expected_version} 版，当前为第 {clue.version} 版），请刷新后重试")
    target = next_status(kind, clue.status, actor.role)
    stamp = now()
    # The WHERE on the version makes the check and the write one step, even between processes.
    result = session.execute(
        update(Clue).where(Clue.id == clue.id, Clue.version == expected_version)
        .values(status=target, version=expected_version + 1, updated_at=stamp, **changes)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise ConflictError(f"线索 {clue.id} 已被他人修改，请刷新后重试")
    session.add(ClueEvent(clue_id=clue.id, at=stamp, actor=actor.username, kind=kind, from_status=clue.status,
                          to_status=target, payload=payload))
    session.flush()
    session.refresh(clue)
    return clue


def verify(session: Session, clue_id: int, expected_version: int, actor: User, finding: Finding,
           today: date | None = None) -> Clue:
    clue = get_clue(session, clue_id, actor)
    problems = finding.problems(today or date.today())
    if problems:
        raise TransitionError("；".join(problems))
    changes = {"outcome": finding.outcome, "action": finding.action or None, "finding": finding.finding.strip(),
               "verifier_name": finding.verifier_name.strip(), "verifier_position": finding.verifier_position.strip(),
               "verified_on": finding.verified_on, "return_reason": None}
    payload = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in changes.items() if k != "return_reason"}
    return _apply(session, clue, expected_version, actor, "verify", changes, payload)


def close(session: Session, clue_id: int, expected_version: int, actor: User, today: date | None = None) -> Clue:
    clue = get_clue(session, clue_id, actor)
    return _apply(session, clue, expected_version, actor, "close", {"closed_on": today or date.today()}, {})


def send_back(session: Session, clue_id: int, expected_version: int, actor: User, reason: str) -> Clue:
    clue = get_clue(session, clue_id, actor)
    if not reason.strip():
        raise TransitionError("退回须说明理由")
    return _apply(session, clue, expected_version, actor, "return", {"return_reason": reason.strip()},
                  {"reason": reason.strip()})

