"""The clue ledger's tables (SQLAlchemy 2). The schema itself is created by the alembic
migrations in `bidui/clues/migrations`; these classes must stay in step with them (a test checks).

The ledger is the system of record for verification: a clue row holds the current state and a
version (optimistic concurrency); `clue_events` is append-only and says who did what, when."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Division(Base):
    """行政区划: county, township, village (12-digit statistical codes)."""

    __tablename__ = "divisions"
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(20))  # county | township | village | prefecture
    parent_code: Mapped[str | None] = mapped_column(String(12))
    rural: Mapped[bool | None] = mapped_column(Boolean)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(20))  # township | county | prefecture | admin
    scope: Mapped[str] = mapped_column(String(12))  # a division code; the user sees what lies under it
    position: Mapped[str | None] = mapped_column(String(64))
    # The person's real name, as they sign (谁核实谁签字); asked at first sign-in while missing.
    real_name: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(200))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # A password someone else set (an administrator's first password or reset): the next sign-in
    # opens only the page that changes it (bidui.web.security.current_user).
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Clue(Base):
    __tablename__ = "clues"
    __table_args__ = (
        UniqueConstraint("rule_code", "subject_key", "evidence_key", name="uq_clue_identity"),
        Index("ix_clues_township_status", "township_code", "status"),
        Index("ix_clues_village", "village_code"),
        Index("ix_clues_household", "household_code"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    rule_code: Mapped[str] = mapped_column(String(40))
    rule_title: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(30))
    subject_key: Mapped[str] = mapped_column(Text)
    subject_person_key: Mapped[str | None] = mapped_column(String(64))  # ID, or ID~hukou number (一号多人)
    subject_id_number: Mapped[str | None] = mapped_column(String(40))
    subject_name: Mapped[str | None] = mapped_column(String(64))
    household_code: Mapped[str] = mapped_column(String(40), default="")
    hukou_number: Mapped[str] = mapped_column(String(40), default="")
    county_code: Mapped[str] = mapped_column(String(12))
    township_code: Mapped[str] = mapped_column(String(12))
    village_code: Mapped[str | None] = mapped_column(String(12))
    household_status: Mapped[str | None] = mapped_column(String(20))
    registered_year: Mapped[int | None] = mapped_column(Integer)
    evidence_dataset: Mapped[str | None] = mapped_column(String(40))
    evidence_key: Mapped[str] = mapped_column(Text, default="")
    evidence_date: Mapped[date | None] = mapped_column(Date)
    evidence_hash: Mapped[str] = mapped_column(String(64))
    link_method: Mapped[str | None] = mapped_column(String(16))
    link_score: Mapped[float | None] = mapped_column(Float)
    link_explanation: Mapped[str | None] = mapped_column(Text)
    before_registration: Mapped[bool | None] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20))  # dispatched | verified | returned | closed
    outcome: Mapped[str | None] = mapped_column(String(20))
    outcome_detail: Mapped[str | None] = mapped_column(String(20))  # 不属实's reason, when it is 不是本人
    action: Mapped[str | None] = mapped_column(String(40))
    finding: Mapped[str | None] = mapped_column(Text)  # what was found: action taken, exemption or refuting evidence
    verifier_name: Mapped[str | None] = mapped_column(String(64))
    verifier_position: Mapped[str | None] = mapped_column(String(64))
    verified_on: Mapped[date | None] = mapped_column(Date)
    return_reason: Mapped[str | None] = mapped_column(Text)
    evidence_gone: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen: Mapped[date] = mapped_column(Date)
    last_seen: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class ClueEvent(Base):
    """Append-only: never updated or deleted."""

    __tablename__ = "clue_events"
    __table_args__ = (Index("ix_events_clue", "clue_id"), Index("ix_events_at", "at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    clue_id: Mapped[int] = mapped_column(ForeignKey("clues.id"))
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(64))  # a username, or "system" for the nightly run
    kind: Mapped[str] = mapped_column(String(30))  # dispatched | seen | evidence_gone | evidence_back | verified | closed | returned | reraised
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    payload: Mapped[dict | None] = mapped_column(JSON)


class EvidenceSnapshot(Base):
    """The evidence as the department record said it, each time it changed (copied from the
    warehouse at publish: the web app never opens DuckDB)."""

    __tablename__ = "evidence_snapshots"
    __table_args__ = (UniqueConstraint("clue_id", "evidence_hash", name="uq_evidence_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    clue_id: Mapped[int] = mapped_column(ForeignKey("clues.id"))
    night: Mapped[date] = mapped_column(Date)
    evidence_hash: Mapped[str] = mapped_column(String(64))
    record: Mapped[str] = mapped_column(Text)  # JSON of the evidence record(s)


class PublishRun(Base):
    __tablename__ = "publish_runs"
    night: Mapped[date] = mapped_column(Date, primary_key=True)
    published_at: Mapped[datetime] = mapped_column(DateTime)
    hits: Mapped[int] = mapped_column(Integer)
    new: Mapped[int] = mapped_column(Integer)
    seen: Mapped[int] = mapped_column(Integer)
    gone: Mapped[int] = mapped_column(Integer)
    reraised: Mapped[int] = mapped_column(Integer)
    suppressed: Mapped[int] = mapped_column(Integer)
    skipped_rules: Mapped[str | None] = mapped_column(Text)
    # What the register copy was made from and its size, "digest/households:members", if this
    # night wrote it (bidui.clues.publish.register_rows).
    register_digest: Mapped[str | None] = mapped_column(String(100))


class RunReport(Base):
    """A nightly run's report, copied from the warehouse so the web app can show it."""

    __tablename__ = "run_reports"
    night: Mapped[date] = mapped_column(Date, primary_key=True)
    finished_at: Mapped[datetime] = mapped_column(DateTime)
    report: Mapped[str] = mapped_column(Text)  # JSON of bidui.flows.nightly.NightReport


class Attachment(Base):
    """A photo or PDF (影像资料、佐证材料) kept with a clue's verification or with the answer to a
    return. The bytes live content-addressed under the home (`attachments/ab/abcdef…`); the row
    says which clue, which round (the clue's version when it was uploaded), who and when."""

    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_clue", "clue_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    clue_id: Mapped[int] = mapped_column(ForeignKey("clues.id"))
    clue_version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(40))  # image/jpeg | image/png | application/pdf
    size: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(100))  # what the uploader called it (no path)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEvent(Base):
    """What the task force's administrators did (users, held files, rules): append-only, like
    clue_events for clues."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_at", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))  # user_added | user_disabled | password_reset | …
    target: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict | None] = mapped_column(JSON)


class WebSession(Base):
    """A signed-in browser (issue 17). The cookie carries only a random id; the ledger keeps its
    SHA-256, so a copy of the database opens no session, and revoking the row ends the session
    at once whatever cookie a browser still holds (logout, password change, disable, reset, an
    administrator's "end")."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)  # written at most once a minute
    address: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(120))  # cut short: enough to tell a phone from a PC
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_why: Mapped[str | None] = mapped_column(String(40))  # logout | password_changed | … (see security.py)


class LoginThrottle(Base):
    """Failed sign-ins counted per client address, per account, and per (account, address) pair;
    only the pair is ever blocked, so guesses from one place never lock the real user out of
    another. Kept in the ledger (not in memory) so every server worker and `bidui users unlock`
    see the same counts. `username` is the name as typed, known to the ledger or not (unknown
    names are counted and blocked alike: the answers must not tell which names exist)."""

    __tablename__ = "login_throttles"
    __table_args__ = (UniqueConstraint("kind", "username", "address", name="uq_login_throttles"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(10))  # address | account | pair
    username: Mapped[str] = mapped_column(String(64), default="")  # "" for kind address
    address: Mapped[str] = mapped_column(String(64), default="")  # "" for kind account
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure: Mapped[datetime] = mapped_column(DateTime)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime)  # pairs only


class RegisterHousehold(Base):
    """A household of the poor-household register (建档立卡户) as of the latest published night,
    clue or no clue (issue 19: an inspection sample draws from every household of a village).
    Brought to the night's register at each publish (only what changed is written); only what a
    township already reads on a clue."""

    __tablename__ = "register_households"
    __table_args__ = (Index("ix_register_households_village", "village_code"),)
    household_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    county_code: Mapped[str] = mapped_column(String(12))
    township_code: Mapped[str] = mapped_column(String(12))
    village_code: Mapped[str] = mapped_column(String(12))
    head_name: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(20))  # 未脱贫 | 已脱贫, as the register says it
    registered_year: Mapped[int | None] = mapped_column(Integer)
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    night: Mapped[date] = mapped_column(Date)  # the published night the copy is of


class RegisterMember(Base):
    """A member of a register household (家庭成员), keyed to clues by `person_key` (a clue's
    `subject_key`: the linked person, else the member's own row)."""

    __tablename__ = "register_members"
    __table_args__ = (Index("ix_register_members_household", "household_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    household_code: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)  # the member's order in the register's file
    person_key: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(64))
    relation: Mapped[str | None] = mapped_column(String(20))
    sex: Mapped[str | None] = mapped_column(String(4))
    birth_year: Mapped[int | None] = mapped_column(Integer)


class LinkDecision(Base):
    """A township's verdict that teaches the linker (issue 18): `cannot` — the record is not this
    person (a clue refuted as 不是本人), so no later night links them; `must` — the record is this
    person (a clue on a link marked 待确认 found 属实), so later nights link them without a score.
    The record is named by what it says, not by where it sat (a row number changes nightly): its
    dataset, role, ID number and name as cleaned on ingest. Revoking keeps the row (who, when, why)."""

    __tablename__ = "link_decisions"
    __table_args__ = (Index("ix_link_decisions_clue", "clue_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(10))  # cannot | must
    dataset: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(40))
    record_id_number: Mapped[str] = mapped_column(String(40))
    record_name: Mapped[str] = mapped_column(String(64))
    person_key: Mapped[str] = mapped_column(String(64))
    clue_id: Mapped[int] = mapped_column(ForeignKey("clues.id"))
    township_code: Mapped[str] = mapped_column(String(12))  # scope: the clue's township
    decided_by: Mapped[str] = mapped_column(String(64))  # username of the signer's account
    verifier_name: Mapped[str] = mapped_column(String(64))  # who signed the verification
    decided_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoke_reason: Mapped[str | None] = mapped_column(Text)
