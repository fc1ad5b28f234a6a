"""A held file the task force's administrator decided to apply (批准入库).

The web app never opens the warehouse, so the decision is recorded in the ledger's audit trail
(`held_file_approved`: night, file, the file's SHA-256 when the web app could read it) and the
next run of that night honours it: the nightly flow runs the night again, stores that file as
`forced`, and records `held_file_applied`. An approval is for those bytes: a file replaced since
is held again and needs a new decision. Until the run applies it, the administrator may withdraw
it (`held_file_withdrawn`): the file stays held."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bidui.clues.models import AuditEvent
from bidui.clues.users import audit
from bidui.home import Home

APPROVED, APPLIED, WITHDRAWN = "held_file_approved", "held_file_applied", "held_file_withdrawn"


def target(night: date | str, file: str) -> str:
    return f"{night}/{file}"[:100]


def file_sha(path: Path) -> str | None:
    try:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def approve(session: Session, actor: str, night: date | str, file: str, dataset: str | None,
            folder: str | None, basis: str = "") -> AuditEvent:
    """`basis`: on what grounds (who at the department confirmed the file, when), kept in the trail."""
    sha = file_sha(Path(folder) / file) if folder else None
    return audit(session, actor, APPROVED, target(night, file),
                 {"night": str(night), "file": file, "dataset": dataset, "sha256": sha, **({"basis": basis} if basis else {})})


def withdraw(session: Session, actor: str, night: date | str, file: str, dataset: str | None) -> AuditEvent:
    return audit(session, actor, WITHDRAWN, target(night, file), {"night": str(night), "file": file, "dataset": dataset})


def approvals_in(session: Session, night: date | str) -> dict[str, AuditEvent]:
    """{file: its approval} for the night, neither applied nor withdrawn since (who approved, when)."""
    out: dict[str, AuditEvent] = {}
    for e in session.scalars(select(AuditEvent).where(AuditEvent.kind.in_([APPROVED, APPLIED, WITHDRAWN]),
                                                      AuditEvent.target.like(f"{night}/%")).order_by(AuditEvent.id)):
        file = (e.payload or {}).get("file")
        if not file:
            continue
        if e.kind == APPROVED:
            out[file] = e
        else:
            out.pop(file, None)
    return out


def pending_in(session: Session, night: date | str) -> dict[str, str | None]:
    """{file: sha256 or None} approved for the night, neither applied nor withdrawn since."""
    return {file: (e.payload or {}).get("sha256") for file, e in approvals_in(session, night).items()}


def _ledger(home: Home):
    import os

    from bidui.clues.db import ledger_url, open_ledger

    if not os.environ.get("BIDUI_LEDGER_URL") and not home.ledger.exists():
        return None  # a fresh home: no one has decided anything yet
    return open_ledger(ledger_url(home.ledger))


def pending(home: Home, night: date) -> dict[str, str | None]:
    ledger = _ledger(home)
    if ledger is None:
        return {}
    try:
        with ledger.read() as s:
            return pending_in(s, night)
    finally:
        ledger.close()


def applied(home: Home, night: date, files: list[dict]) -> None:
    """Record the approved files the run stored (their approval is spent)."""
    if not files:
        return
    ledger = _ledger(home)
    if ledger is None:
        return
    try:
        with ledger.write() as s:
            for f in files:
                audit(s, "系统", APPLIED, target(night, f["file"]), {"night": str(night), "file": f["file"],
                                                                      "dataset": f.get("dataset")})
    finally:
        ledger.close()
