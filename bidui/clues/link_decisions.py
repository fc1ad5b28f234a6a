"""Verdicts that teach the linker (issue 18, part 3).

A township that finds a clue 不属实 because the record is not the person's (不是本人) says the
linker put a department record on the wrong person: that record↔person pair becomes a
*cannot-link*, and no later night links them again (so the clue cannot come back). A clue on a link
the linker was unsure of (`review`, shown as 待确认) found 属实 confirms the identity: a
*must-link*, linked on later nights without a score. Both are kept in the ledger
(`link_decisions`) with who decided and when; the task force lists them and may revoke one
(audited). Each night the batch copies the active ones into the warehouse before linking
(`bidui.matching.decisions`).

The record is named by what it says — dataset, role, ID number and name as cleaned on ingest —
because its file and row change every night."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bidui.clues.models import AuditEvent, Clue, EvidenceSnapshot, LinkDecision, User
from bidui.datasets import DATASETS

CANNOT, MUST = "cannot", "must"
KIND_LABELS = {CANNOT: "不是本人（不再关联）", MUST: "确认是本人（固定关联）"}
# The register's own datasets: their link is the clue subject's (a member ↔ a hukou person).
SUBJECT_DATASET = "register_members"


@dataclass(frozen=True)
class RecordRef:
    """A department record as it reads, and the person the linker gave it."""

    dataset: str
    role: str
    id_number: str
    name: str
    person_key: str


def _latest_evidence(session: Session, clue: Clue) -> object:
    text = session.scalars(select(EvidenceSnapshot.record).where(EvidenceSnapshot.clue_id == clue.id)
                           .order_by(EvidenceSnapshot.id.desc()).limit(1)).first()
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None


def records_of(session: Session, clue: Clue) -> list[RecordRef]:
    """The linked records a clue stands on: those of its evidence when it comes from a linked
    department dataset, else the register member's own link (the subject). Empty when the clue
    rests on no link (an invalid ID, a register-internal rule): 不是本人 does not apply."""
    by_code = {ds.code: ds for ds in DATASETS}
    ds = by_code.get(clue.evidence_dataset or "")
    if ds is not None and ds.persons and ds.code not in ("hukou", SUBJECT_DATASET, "register_households"):
        evidence = _latest_evidence(session, clue)
        items = evidence if isinstance(evidence, list) else [evidence]
        ref = ds.persons[0]
        out = []
        for item in items:
            if not isinstance(item, dict) or not item.get("person_key") or not item.get("link_method"):
                continue
            number, name = item.get(ref.id_column), item.get(ref.name_column)
            if number and name:
                out.append(RecordRef(ds.code, ref.role, str(number), str(name), str(item["person_key"])))
        return list(dict.fromkeys(out))
    member = by_code[SUBJECT_DATASET].persons[0]
    if clue.subject_person_key and clue.link_method and clue.subject_id_number and clue.subject_name:
        # The link of hukou-based evidence is the subject's own (bidui.sql.rules: DECEASED, …).
        subject_linked = ds is None or ds.code in ("hukou", SUBJECT_DATASET, "register_households")
        if subject_linked:
            return [RecordRef(SUBJECT_DATASET, member.role, clue.subject_id_number, clue.subject_name,
                              clue.subject_person_key)]
    return []


def active(session: Session) -> list[LinkDecision]:
    return list(session.scalars(select(LinkDecision).where(LinkDecision.revoked_at.is_(None))
                                .order_by(LinkDecision.decided_at, LinkDecision.id)))


def decide(session: Session, clue: Clue, kind: str, actor: User, verifier_name: str) -> list[LinkDecision]:
    """Record the clue's records as `kind` pairs (the clue's own identical active decision is kept,
    not repeated); audited. Another clue's identical decision does not stand in for this one: each
    clue's verification may be amended, returned or revoked on its own, and the pair stays decided
    while any clue still says so."""
    made = []
    for ref in records_of(session, clue):
        existing = session.scalars(select(LinkDecision).where(
            LinkDecision.clue_id == clue.id,
            LinkDecision.kind == kind, LinkDecision.dataset == ref.dataset, LinkDecision.role == ref.role,
            LinkDecision.record_id_number == ref.id_number, LinkDecision.record_name == ref.name,
            LinkDecision.person_key == ref.person_key, LinkDecision.revoked_at.is_(None))).first()
        if existing is not None:
            continue
        decision = LinkDecision(kind=kind, dataset=ref.dataset, role=ref.role, record_id_number=ref.id_number,
                                record_name=ref.name, person_key=ref.person_key, clue_id=clue.id,
                                township_code=clue.township_code, decided_by=actor.username,
                                verifier_name=verifier_name, decided_at=datetime.now().replace(microsecond=0))
        session.add(decision)
        session.flush()
        session.add(AuditEvent(at=decision.decided_at, actor=actor.username, kind="link_decision_made",
                               target=f"link_decision:{decision.id}",
                               payload={"kind": kind, "clue_id": clue.id, "dataset": ref.dataset}))
        made.append(decision)
    return made


def revoke(session: Session, decision: LinkDecision, actor: User, reason: str) -> None:
    """Revoke one decision: later nights link as if it had never been made; audited."""
    if decision.revoked_at is not None:
        return
    decision.revoked_at = datetime.now().replace(microsecond=0)
    decision.revoked_by = actor.username
    decision.revoke_reason = reason.strip()
    session.add(AuditEvent(at=decision.revoked_at, actor=actor.username, kind="link_decision_revoked",
                           target=f"link_decision:{decision.id}",
                           payload={"kind": decision.kind, "clue_id": decision.clue_id, "reason": decision.revoke_reason}))
    session.flush()


def revoke_for_clue(session: Session, clue: Clue, kind: str, actor: User, reason: str) -> int:
    """Revoke the clue's active decisions of `kind` (its verification changed); how many."""
    rows = session.scalars(select(LinkDecision).where(LinkDecision.clue_id == clue.id, LinkDecision.kind == kind,
                                                      LinkDecision.revoked_at.is_(None))).all()
    for decision in rows:
        revoke(session, decision, actor, reason)
    return len(rows)


def for_linking(session: Session) -> list[dict]:
    """The active decisions as the batch copies them into the warehouse. Who visited and when are
    the clue's signed verification (a link explanation says 「<verifier>于<date>入户核实」): an
    amended verification that says the same keeps the decision, and its new signature speaks for
    it. A decision whose clue has no signature left gives its own (who, and the day it was recorded)."""
    decisions = active(session)
    ids = sorted({d.clue_id for d in decisions if d.clue_id is not None})
    signed = {i: (name, on) for i, name, on in session.execute(
        select(Clue.id, Clue.verifier_name, Clue.verified_on).where(Clue.id.in_(ids)))} if ids else {}
    out = []
    for d in decisions:
        name, on = signed.get(d.clue_id) or (None, None)
        out.append({"kind": d.kind, "dataset": d.dataset, "role": d.role, "id_number": d.record_id_number,
                    "name": d.record_name, "person_key": d.person_key, "clue_id": d.clue_id,
                    "verifier_name": name or d.verifier_name, "decided_on": on or d.decided_at.date()})
    return out
