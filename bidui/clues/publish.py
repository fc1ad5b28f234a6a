"""Publishing a night: the night's rule hits (warehouse) become clues (ledger).

A clue is identified by (rule code, subject, evidence key) across nights (shared/rules.md):
new → created and dispatched to the subject's township with a due date; known → seen again;
an open clue whose rule ran tonight and no longer finds it → `evidence_gone` (it stays open);
a clue closed as 不属实 comes back only if its evidence changed. Only rules that ran tonight can
make evidence "gone": a rule skipped for a missing or held extract says nothing about its clues,
and neither does a row kept without a rejected value (a "doubtful" person of one of the rule's input
datasets: no new clue of that rule for the person tonight, none of theirs retired). Publishing a
night twice changes nothing, and neither does publishing an older night after a newer one; a night
whose run held a file still being written is published again (`again`) once the file is taken."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import polars as pl
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from bidui import collector, scope
from bidui.clues.actions import now
from bidui.clues.db import Ledger, insert_many
from bidui.clues.models import (
    Clue,
    ClueEvent,
    Division,
    EvidenceSnapshot,
    LinkDecision,
    PublishRun,
    RegisterHousehold,
    RegisterMember,
)
from bidui.clues.states import CLOSED, DISPATCHED, NOT_TRUE, OPEN
from bidui.connectors import warehouse as wh
from bidui.evidence import evidence_hash, is_delivery_detail
from bidui.home import Home
from bidui.matching.link_nights import on_night

DUE_DAYS = 15
SYSTEM = "system"
CLUE_FIELDS = ("rule_code", "category", "subject_key", "subject_person_key", "subject_id_number", "subject_name",
               "household_code", "hukou_number", "township_code", "village_code", "household_status",
               "registered_year", "evidence_dataset", "evidence_key", "evidence_date", "link_method", "link_score",
               "link_explanation", "before_registration")


def _digests(hits: pl.DataFrame) -> pl.Series:
    """Each hit's evidence digest: the one the rules step stored with it (`evidence_digest`), else
    computed here."""
    stored = hits.get_column("evidence_digest", default=pl.Series([None] * hits.height, dtype=pl.String))
    return pl.Series([d if d is not None else evidence_hash(r or "")
                      for d, r in zip(stored, hits["evidence_record"], strict=True)], dtype=pl.String)


def _facts(record: str | None) -> object:
    try:
        value = json.loads(record) if record else None
    except json.JSONDecodeError:
        return record
    return {k: v for k, v in value.items() if not is_delivery_detail(k)} if isinstance(value, dict) else value


def _says_more(new: object, old: object) -> bool:
    """Whether `new` says something `old` did not: a value that differs, or a list item (a bill, a
    household) that was not there. A list that lost items says less, not more."""
    if isinstance(new, dict) and isinstance(old, dict):
        return any(_says_more(v, old[k]) for k, v in new.items() if k in old)
    if isinstance(new, list) and isinstance(old, list):
        seen = [json.dumps(x, ensure_ascii=False, sort_keys=True, default=str) for x in old]
        return any(json.dumps(x, ensure_ascii=False, sort_keys=True, default=str) not in seen for x in new)
    return new != old


def says_more(new_record: str | None, old_record: str | None) -> bool:
    """Evidence that changed in substance, not in form. A new version of bidui may show more of the
    same record (fields added for the reader, the clue's own household dropped from a list): that
    must not re-raise a clue a township refuted, nor make its workbooks stale. Fields only one side
    has are a change of form; a field both have with another value, or a new list item, is not."""
    return _says_more(_facts(new_record), _facts(old_record))


@dataclass
class PublishResult:
    night: date
    hits: int = 0
    new: int = 0
    seen: int = 0
    gone: int = 0
    back: int = 0
    changed: int = 0
    reraised: int = 0
    suppressed: int = 0
    withheld: int = 0  # new hits not dispatched: the person's row in an input was kept without a rejected value
    already: bool = False
    superseded: bool = False  # a later night is already published: this older one changes nothing
    register_filled: bool = False  # an already published night still gave the ledger its register copy
    skipped_rules: list[str] = field(default_factory=list)
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    new_by_township: dict[str, int] = field(default_factory=dict)


def night_hits(con: duckdb.DuckDBPyConnection, night: date) -> tuple[pl.DataFrame, dict[str, str]]:
    """The night's hits and each rule's run status; LookupError when rules have not run."""
    from bidui.rules.engine import ensure_hits_tables

    ensure_hits_tables(con)  # (a warehouse whose rules last ran under an earlier version: no digests stored)
    runs = dict(con.execute("SELECT rule_code, status FROM rule_runs WHERE night = ?", [night]).fetchall())
    if not runs:
        raise LookupError(f"no rule run for {night}: run `bidui rules run --date {night}` first")
    hits = wh.query(con, f"SELECT {', '.join(CLUE_FIELDS)}, evidence_record, evidence_digest FROM rule_hits "
                         "WHERE night = ?", [night])
    return hits, runs


def doubtful_by_rule(con: duckdb.DuckDBPyConnection, night: date, inputs: dict[str, list[str]]) -> dict[str, set[str]]:
    """For each rule, the subjects with a doubtful row (a value rejected) in a dataset it reads tonight
    (`inputs`: the datasets each rule reads, `Rule.reads`)."""
    from bidui.rules.engine import HITS_SCHEMA

    con.execute(HITS_SCHEMA)
    by_dataset: dict[str, set[str]] = {}
    for dataset, key in con.execute("SELECT dataset, subject_key FROM doubtful_persons WHERE night = ?", [night]).fetchall():
        by_dataset.setdefault(dataset, set()).add(key)
    return {rule: set().union(*(by_dataset.get(d, set()) for d in ins)) for rule, ins in inputs.items()
            if any(d in by_dataset for d in ins)}


def divisions(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    snap = wh.in_force(con, night).get("divisions")
    if snap is None:
        return pl.DataFrame()
    # In the file's order: a code delivered twice takes its last row's name.
    return wh.query(con, "SELECT code, name, level, parent_code, urban_rural FROM ds_divisions_at(?) "
                         "ORDER BY source_row", [snap])


def _sync_divisions(session: Session, frame: pl.DataFrame) -> None:
    known = {d.code: d for d in session.scalars(select(Division))}
    for row in frame.iter_rows(named=True):
        rural = None if row["urban_rural"] is None else row["urban_rural"] == "乡村"
        d = known.get(row["code"])
        if d is None:
            session.add(Division(code=row["code"], name=row["name"], level=row["level"], parent_code=row["parent_code"],
                                 rural=rural))
        elif (d.name, d.level, d.parent_code, d.rural) != (row["name"], row["level"], row["parent_code"], rural):
            d.name, d.level, d.parent_code, d.rural = row["name"], row["level"], row["parent_code"], rural


@dataclass
class Register:
    """The register's households and members in force on a night, as the ledger keeps them.
    `digest`: what they were made from (`register_rows`); `unchanged`: the same as the ledger's
    copy was made from (the rows are then not read: only the copy's night moves)."""

    households: list[dict]
    members: list[tuple]  # in MEMBER_FIELDS' order
    digest: str | None = None
    unchanged: bool = False


# A register member's row as the ledger's copy holds it (but its id).
MEMBER_FIELDS = tuple(c.name for c in RegisterMember.__table__.columns if c.name != "id")
# A member's person is a clue's subject_key (bidui.rules.views: `ident`, else the member's own row).
_REGISTER_MEMBERS = f"""
SELECT m.household_code, m.source_row AS seq, m.name, m.relation, m.sex,
       year(coalesce(m.birth_date, CASE WHEN m.id_number_status = 'valid'
                                        THEN try_strptime(substr(m.id_number, 7, 8), '%Y%m%d')::DATE END)) AS birth_year,
       coalesce(CASE WHEN l.method <> 'none' THEN l.person_key END,
                CASE WHEN m.id_number_status = 'valid' AND NOT coalesce(l.id_name_conflict, FALSE) THEN m.id_number END,
                'R:' || m.household_code || ':' || m.source_row) AS person_key
FROM ds_register_members_at(?) m
LEFT JOIN links l ON {on_night('?::DATE', 'l.')} AND l.dataset = 'register_members'
     AND l.row_id = m.row_id AND l.role = 'member' AND ?::BOOLEAN
WHERE m.household_code IS NOT NULL
ORDER BY m.household_code, m.source_row"""


# One row per household code: a code delivered twice is the first row's (the register's file order).
_REGISTER_HOUSEHOLDS = """
SELECT household_code, village_code, head_name, status, registered_year FROM (
    SELECT *, row_number() OVER (PARTITION BY household_code ORDER BY source_file, source_row) AS rn
    FROM ds_register_households_at(?) WHERE household_code IS NOT NULL) WHERE rn = 1
  AND village_code IS NOT NULL"""


@functools.cache
def _copy_code() -> str | None:
    """The code that makes the copy from the rows (a copy another version made is compared row by
    row once); None when the source cannot be read (then no copy is taken as unchanged)."""
    try:
        parts = [inspect.getsource(x) for x in (register_rows, _replace_register, scope)]
    except (OSError, TypeError):
        return None
    columns = [c.name for t in (RegisterHousehold.__table__, RegisterMember.__table__) for c in t.columns]
    return "\x1f".join([*parts, _REGISTER_HOUSEHOLDS, _REGISTER_MEMBERS, ",".join(columns)])


def _register_digest(con: duckdb.DuckDBPyConnection, households: list, members: list | None) -> str | None:
    """A digest of the rows the copy is made from (as a multiset: the count and the sum of each
    row's 64-bit hash) and of the code that makes it. DuckDB's hash may differ in another version:
    then the digests differ and the copy is compared row by row once, as before digests were kept.
    (The rows as JSON through SHA-256, in order, cost 1 s at the large size, against 0.3 s; a
    register that collides by chance, one in 2^64 a night, keeps last night's copy a night longer.)"""
    code = _copy_code()
    if code is None:
        return None
    digest = hashlib.sha256(code.encode())
    for sql, args in ((_REGISTER_HOUSEHOLDS, households), (_REGISTER_MEMBERS, members)):
        if args is None:
            digest.update(b"\x1e-")
            continue
        # hash(hash(row)): a row's hash XORs its last column's in, so two rows trading that value
        # could sum alike; hashing the hash again mixes it.
        (n, total), = con.execute(f"SELECT count(*), coalesce(sum(hash(hash(x))::HUGEINT), 0) FROM ({sql}) x",
                                  args).fetchall()
        digest.update(f"\x1e{n}:{total}".encode())
    return digest.hexdigest()


def register_rows(con: duckdb.DuckDBPyConnection, night: date, kept: str | None = None) -> Register | None:
    """The register in force on a night (None when it has none), read for the ledger; not read
    when its digest is `kept`'s, the digest the ledger's copy was made from."""
    from bidui.matching.link import LINKS_SCHEMA

    snaps = wh.in_force(con, night)
    if snaps.get("register_households") is None:
        return None
    member_args = None
    if snaps.get("register_members") is not None:
        con.execute(LINKS_SCHEMA)
        from bidui.matching.carry import unpaired  # (links made on another snapshot's rows are not read)

        member_args = [snaps["register_members"], night, "register_members" not in unpaired(con, night)]
    digest = _register_digest(con, [snaps["register_households"]], member_args)
    if digest is not None and digest == kept:
        return Register([], [], digest, unchanged=True)
    households = wh.query(con, _REGISTER_HOUSEHOLDS, [snaps["register_households"]])
    # Members as tuples, counted in polars: a dict per member was a second of a large first night.
    members, count = [], {}
    if member_args:
        frame = wh.query(con, _REGISTER_MEMBERS, member_args).filter(
            pl.col("household_code").is_in(households["household_code"].implode()))
        members = frame.select(MEMBER_FIELDS).rows()
        count = dict(frame.group_by("household_code").len().iter_rows())
    rows = [{"household_code": h["household_code"], "county_code": scope.county_of(h["village_code"]),
             "township_code": h["village_code"][:9] + "000", "village_code": h["village_code"], "head_name": h["head_name"],
             "status": h["status"], "registered_year": h["registered_year"],
             "member_count": count.get(h["household_code"], 0), "night": night}
            for h in households.to_dicts() if scope.is_code(h["village_code"])]
    return Register(rows, members, digest)


def _copy_size(session: Session) -> str:
    """How many households and members the ledger's copy holds, as kept beside its digest."""
    return ":".join(str(session.scalar(select(func.count()).select_from(t))) for t in (RegisterHousehold, RegisterMember))


def kept_register_digest(session: Session) -> str | None:
    """The digest the ledger's copy of the register was made from; None when there is no copy, it
    was made before digests were kept, or it no longer holds as many rows as it was made with (a
    copy damaged or partly restored is compared row by row again)."""
    kept = session.scalar(select(func.max(RegisterHousehold.night)))
    stored = None if kept is None else session.scalar(select(PublishRun.register_digest).where(PublishRun.night == kept))
    if stored is None:
        return None
    digest, _, size = stored.partition("/")
    return digest if size == _copy_size(session) else None


def _stored_digest(session: Session, register: Register | None) -> str | None:
    """What a publish that wrote the copy keeps of it: the digest and the copy's size."""
    return None if register is None or register.digest is None else f"{register.digest}/{_copy_size(session)}"


def _driver_rows(conn, sql: str) -> list[tuple]:
    """A query's rows through the driver's own cursor, in the session's transaction: tuples as the
    database gives them (SQLAlchemy's Row per row costs more than the comparison they are read for)."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql)
        return [tuple(r) for r in cursor.fetchall()]
    finally:
        cursor.close()


def _replace_register(session: Session, register: Register | None, night: date, again: bool) -> bool:
    """The ledger's copy of the register becomes the night's (a newer night's copy stays); True
    when it was written."""
    if register is None:
        return False
    kept = session.scalar(select(func.max(RegisterHousehold.night)))
    if kept is not None and (kept > night or (kept == night and not again)):
        return False
    households = RegisterHousehold.__table__
    if register.unchanged:
        # The copy is of the same rows: only its night moves. (The digest was read before this
        # transaction; a run holds the home's lock, so nothing wrote the copy since.)
        if kept_register_digest(session) != register.digest:
            raise RuntimeError("the register copy changed while the night was published")
        session.execute(update(households).values(night=night))
        return True
    # Only what changed is written: the register moves by a few households a night, and rewriting
    # its hundred thousand rows was a third of a quiet night's publish.
    conn = session.connection()
    members = RegisterMember.__table__
    fields = [c.name for c in households.columns if c.name != "night"]
    assert fields[0] == "household_code"
    tonight = {h["household_code"]: h for h in register.households}
    kept_rows = {r[0]: r for r in _driver_rows(conn, f"SELECT {', '.join(fields)} FROM {households.name}")}
    gone = [code for code in kept_rows if code not in tonight]
    changed = [h for code, h in tonight.items()
               if code in kept_rows and kept_rows[code] != tuple(h[f] for f in fields)]
    for i in range(0, len(gone), _IN_CHUNK):
        conn.execute(delete(households).where(households.c.household_code.in_(gone[i:i + _IN_CHUNK])))
    if changed:
        conn.execute(update(households).where(households.c.household_code == bindparam("_code"))
                     .values({f: bindparam(f) for f in fields if f != "household_code"}),
                     [{"_code": h["household_code"], **{f: h[f] for f in fields if f != "household_code"}} for h in changed])
    conn.execute(update(households).values(night=night))
    new = [h for code, h in tonight.items() if code not in kept_rows]
    if new:
        insert_many(conn, households, new)
    # Members have no key of their own (a row number moves when a row above it comes or goes):
    # a member row is kept when one exactly like it is delivered tonight, as many times as it is.
    columns = list(MEMBER_FIELDS)
    wanted = Counter(register.members)
    stale = []
    for row in _driver_rows(conn, f"SELECT id, {', '.join(columns)} FROM {members.name}"):
        key = tuple(row[1:])
        if wanted.get(key, 0) > 0:
            wanted[key] -= 1
        else:
            stale.append(row[0])
    for i in range(0, len(stale), _IN_CHUNK):
        conn.execute(delete(members).where(members.c.id.in_(stale[i:i + _IN_CHUNK])))
    added = [key for key, n in wanted.items() for _ in range(n)]
    if added:
        insert_many(conn, members, added, columns)
    return True


def _last_record(session, clue_id: int) -> str | None:
    return session.scalar(select(EvidenceSnapshot.record).where(EvidenceSnapshot.clue_id == clue_id)
                          .order_by(EvidenceSnapshot.night.desc(), EvidenceSnapshot.id.desc()).limit(1))


# The columns of a known clue that publishing compares tonight's hit with.
_KNOWN = (Clue.id, Clue.rule_code, Clue.subject_key, Clue.evidence_key, Clue.evidence_hash, Clue.status, Clue.outcome,
          Clue.version, Clue.evidence_gone, Clue.last_seen)
# …as a frame's columns (`_seen_quietly`).
_KNOWN_TYPES = {"id": pl.Int64, "rule_code": pl.String, "subject_key": pl.String, "evidence_key": pl.String,
                "evidence_hash": pl.String, "status": pl.String, "outcome": pl.String, "version": pl.Int64,
                "evidence_gone": pl.Boolean, "last_seen": pl.Date}
_IN_CHUNK = 500  # ids per `IN (…)`: well under SQLite's and PostgreSQL's limits on parameters


def _apply_updates(session: Session, updates: list[dict]) -> set[int]:
    """Write the clues' changes; the ids of those a person changed meanwhile (not written). A clue
    only seen again (most of them, every night) changes its `last_seen` alone: those are one
    statement per chunk of ids. The rest are grouped by the columns they set (one executemany
    each); one that moves the version is guarded by it: on PostgreSQL a person may act on the clue
    meanwhile, and then their change stands."""
    table = Clue.__table__
    conn = session.connection()
    seen_on: dict[date, list[int]] = {}
    shapes: dict[tuple, list[dict]] = {}
    missed: set[int] = set()
    for u in updates:
        if "version" in u:
            done = session.execute(update(Clue).where(Clue.id == u["id"], Clue.version == u["version"] - 1)
                                   .values({k: v for k, v in u.items() if k != "id"})
                                   .execution_options(synchronize_session=False))
            if done.rowcount != 1:
                missed.add(u["id"])
        elif u.keys() == {"id", "last_seen"}:
            seen_on.setdefault(u["last_seen"], []).append(u["id"])
        else:
            shapes.setdefault(tuple(sorted(u)), []).append(u)
    for day, ids in seen_on.items():
        for i in range(0, len(ids), _IN_CHUNK):
            conn.execute(update(table).where(table.c.id.in_(ids[i:i + _IN_CHUNK])).values(last_seen=day))
    for columns, batch in shapes.items():
        conn.execute(update(table).where(table.c.id == bindparam("_id"))
                     .values({c: bindparam(c) for c in columns if c != "id"}),
                     [{("_id" if k == "id" else k): v for k, v in u.items()} for u in batch])
    return missed


_KEY = ["rule_code", "subject_key", "evidence_key"]


def _seen_quietly(hits: pl.DataFrame, known: list, night: date, seen_ids: set[int], updates: list[dict],
                  count) -> pl.DataFrame:
    """Most of a night's hits are clues seen again as they were: the first hit of a known clue's
    key whose evidence digest is the clue's and whose evidence is not gone. Each is counted (seen,
    or suppressed when refuted), its `last_seen` moved on and its id added to `seen_ids`, as the
    row-by-row comparison does; the other hits are returned for it (a later hit of the same key it
    would skip, as of any clue already seen). A hit that reaches such a clue through a verdict
    (`_answered_as_not_self`) is not one of these, and it changes nothing a quiet one does not:
    its evidence is not compared. Found by one join, not 60,000 rows read one by one in Python
    (a large night 2's publish: 1.55 -> 1.25 s)."""
    if not known or not hits.height:
        return hits
    clues = pl.DataFrame(known, schema={c.key: _KNOWN_TYPES[c.key] for c in _KNOWN}, orient="row")
    first = hits.select(*_KEY, "_digest").unique(_KEY, keep="first", maintain_order=True)
    quiet = first.join(clues.filter(~pl.col("evidence_gone")), on=_KEY, how="inner", nulls_equal=True).filter(
        pl.col("_digest") == pl.col("evidence_hash"))
    quiet = quiet.with_columns(((pl.col("status") == CLOSED) & (pl.col("outcome") == NOT_TRUE)).fill_null(False)
                               .alias("_refuted"))
    if not quiet.height:
        return hits
    for rule, refuted, n in quiet.group_by("rule_code", "_refuted", maintain_order=True).len().iter_rows():
        count(rule, "suppressed" if refuted else "seen", n)
    seen_ids.update(quiet["id"].to_list())
    last_seen = quiet.select("id", pl.max_horizontal("last_seen", pl.lit(night)).alias("_seen"))
    updates.extend({"id": i, "last_seen": d} for i, d in last_seen.iter_rows())
    return hits.join(quiet.select(_KEY), on=_KEY, how="anti", nulls_equal=True, maintain_order="left")


def _answered_as_not_self(session: Session) -> dict[tuple, tuple]:
    """Clues refuted as 不是本人 on the register member's own link, by what else they are about
    (rule, household, evidence, the member's name), to their key. The member is not linked to that
    hukou person from then on, so a rule that still finds the member (an invalid ID, say) finds
    them under another subject key: the same question, already answered (its evidence is compared
    with what was answered, as for any refuted clue), not a new clue for the township."""
    from bidui.clues.link_decisions import CANNOT, SUBJECT_DATASET

    rows = session.execute(
        select(Clue.rule_code, Clue.household_code, Clue.evidence_key, Clue.subject_name, Clue.subject_key)
        .join(LinkDecision, LinkDecision.clue_id == Clue.id)
        .where(LinkDecision.revoked_at.is_(None), LinkDecision.kind == CANNOT, LinkDecision.dataset == SUBJECT_DATASET))
    return {(rule, household or "", evidence or "", name): (rule, subject, evidence)
            for rule, household, evidence, name, subject in rows}


def publish(ledger: Ledger, hits: pl.DataFrame, runs: dict[str, str], night: date, titles: dict[str, str],
            due_days: int = DUE_DAYS, division_rows: pl.DataFrame | None = None,
            doubtful: dict[str, set[str]] | None = None, again: bool = False,
            register: Register | None = None, today: date | None = None) -> PublishResult:
    """Publish the night's hits (`night_hits`); `titles` names each rule (for the clue's reader);
    `doubtful` (`doubtful_by_rule`) the subjects each rule cannot decide on tonight; `again`
    publishes a night already published (its run held a file that a later run took); `today`: the
    day the clues reach the townships (default: today), from which their due date counts."""
    result = PublishResult(night, hits=hits.height, skipped_rules=sorted(c for c, s in runs.items() if s != "ran"))
    ran = {c for c, s in runs.items() if s == "ran"}
    doubtful = doubtful or {}
    stamp = now()
    # A township's days count from the day the clue reaches it: a night published days late (a held
    # file approved later, a backlog caught up) handed out clues already overdue when counted from
    # the night (a supervisor's walk: 631 of 648 overdue the moment they were dispatched).
    due = max(night, today or stamp.date()) + timedelta(days=due_days)
    with ledger.write() as session:
        latest = session.scalar(select(func.max(PublishRun.night)))
        if latest is not None and latest > night:
            # The ledger already reflects a later night: an older one's evidence is history.
            result.superseded = True
            result.already = session.get(PublishRun, night) is not None
            return result
        if session.get(PublishRun, night) is not None and not again:
            result.already = True
            # A ledger upgraded since the night was published gets its register copy now.
            result.register_filled = _replace_register(session, register, night, again)
            if result.register_filled:
                session.get(PublishRun, night).register_digest = _stored_digest(session, register)
            return result
        if division_rows is not None and division_rows.height:
            _sync_divisions(session, division_rows)
        # What the comparison reads of each clue, as plain rows: loading tens of thousands of clues as
        # ORM objects cost more than the rest of a quiet night's publish.
        known = session.execute(select(*_KNOWN)).all()
        existing = {(c.rule_code, c.subject_key, c.evidence_key): c for c in known}
        answered = _answered_as_not_self(session)
        # Sorted, so that when one clue has several evidence rows tonight the same one speaks for
        # it every night (else its evidence would seem to change from night to night).
        hits = hits.with_columns(pl.col("evidence_key").fill_null(""), pl.col("household_code").fill_null(""),
                                 pl.col("hukou_number").fill_null(""), _digests(hits).alias("_digest")).sort(
            ["rule_code", "subject_key", "evidence_key", "household_code", "_digest"], nulls_last=True)
        new_rows, new_evidence, events, updates = [], {}, [], []
        # Clues whose version tonight moves (evidence changed, re-raised): what was said of them.
        moved: dict[int, tuple[str, str, EvidenceSnapshot]] = {}
        seen_ids: set[int] = set()
        reformatted: set[tuple[int, str]] = set()

        def count(rule: str, what: str, n: int = 1) -> None:
            result.by_rule.setdefault(rule, {}).setdefault(what, 0)
            result.by_rule[rule][what] += n
            setattr(result, what, getattr(result, what) + n)

        hits = _seen_quietly(hits, known, night, seen_ids, updates, count)
        for row in hits.iter_rows(named=True):
            key = (row["rule_code"], row["subject_key"], row["evidence_key"])
            digest = row["_digest"]
            clue = existing.get(key)
            answered_here = False
            if clue is None and (was := answered.get((row["rule_code"], row["household_code"], row["evidence_key"],
                                                      row["subject_name"]))) is not None:
                clue = existing.get(was)
                # What changed is the verdict's own doing (the member unlinked): the clue stays as
                # it was answered — its subject, link and evidence — so that its verdict (and the
                # 不是本人 a corrected finding may keep) still reads against the link it refuted.
                answered_here = clue is not None
            if clue is None:
                if key in new_evidence:  # the same clue twice in one night's hits: once
                    continue
                if row["subject_key"] in doubtful.get(row["rule_code"], ()):
                    count(row["rule_code"], "withheld")
                    continue
                township = row["township_code"] or ""
                fields = {k: row[k] for k in CLUE_FIELDS}
                new_rows.append(fields | {
                    "rule_title": titles.get(row["rule_code"], row["rule_code"]), "version": 1, "county_code": scope.county_of(township) if township else "", "township_code": township,
                    "evidence_hash": digest, "status": DISPATCHED, "evidence_gone": False, "first_seen": night,
                    "last_seen": night, "due_date": due, "updated_at": stamp})
                new_evidence[key] = (digest, row["evidence_record"])
                count(row["rule_code"], "new")
                result.new_by_township[township] = result.new_by_township.get(township, 0) + 1
                continue
            if clue.id in seen_ids:
                continue
            seen_ids.add(clue.id)
            changed = digest != clue.evidence_hash and not answered_here
            values: dict = {"last_seen": max(clue.last_seen, night)}
            if changed and not says_more(row["evidence_record"], _last_record(session, clue.id)):
                # The same fact in another form: kept as the clue's evidence from now on, quietly.
                changed = False
                values["evidence_hash"] = digest
                if (clue.id, digest) not in reformatted and session.scalar(select(EvidenceSnapshot.id).where(
                        EvidenceSnapshot.clue_id == clue.id, EvidenceSnapshot.evidence_hash == digest)) is None:
                    reformatted.add((clue.id, digest))
                    session.add(EvidenceSnapshot(clue_id=clue.id, night=night, evidence_hash=digest,
                                                 record=row["evidence_record"] or "null"))
            if clue.status == "closed" and clue.outcome == NOT_TRUE:
                if not changed:
                    count(row["rule_code"], "suppressed")
                    updates.append({"id": clue.id} | values)
                    continue
                # Refuted, and the evidence changed since: the question is a new one.
                values |= {k: row[k] for k in CLUE_FIELDS} | {
                    "status": DISPATCHED, "version": clue.version + 1, "evidence_hash": digest, "evidence_gone": False,
                    "due_date": due, "outcome": None, "outcome_detail": None, "action": None, "finding": None,
                    "verifier_name": None, "verifier_position": None, "verified_on": None, "closed_on": None,
                    "return_reason": None, "updated_at": stamp}
                events.append(ClueEvent(clue_id=clue.id, at=stamp, actor=SYSTEM, kind="reraised", from_status=clue.status,
                                        to_status=DISPATCHED, payload={"night": night.isoformat(), "previous_outcome": clue.outcome,
                                                 "due_date": values["due_date"].isoformat()}))
                moved[clue.id] = ("reraised", row["rule_code"], EvidenceSnapshot(
                    clue_id=clue.id, night=night, evidence_hash=digest, record=row["evidence_record"] or "null"))
                session.add(moved[clue.id][2])
                count(row["rule_code"], "reraised")
            else:
                count(row["rule_code"], "seen")
                if clue.evidence_gone:
                    values |= {"evidence_gone": False}
                    events.append(ClueEvent(clue_id=clue.id, at=stamp, actor=SYSTEM, kind="evidence_back",
                                            payload={"night": night.isoformat()}))
                    result.back += 1
                if changed:
                    values |= {k: row[k] for k in CLUE_FIELDS} | {"evidence_hash": digest, "version": clue.version + 1,
                                                                  "updated_at": stamp}
                    events.append(ClueEvent(clue_id=clue.id, at=stamp, actor=SYSTEM, kind="evidence_changed",
                                            payload={"night": night.isoformat()}))
                    moved[clue.id] = ("changed", row["rule_code"], EvidenceSnapshot(
                        clue_id=clue.id, night=night, evidence_hash=digest, record=row["evidence_record"] or "null"))
                    session.add(moved[clue.id][2])
                    result.changed += 1
            updates.append({"id": clue.id} | values)
        # Gone: open, its rule ran tonight, not found tonight, and nothing tonight leaves it undecided.
        for clue in existing.values():
            if (clue.id not in seen_ids and clue.status in OPEN and clue.rule_code in ran and not clue.evidence_gone
                    and clue.last_seen <= night and clue.subject_key not in doubtful.get(clue.rule_code, ())):
                updates.append({"id": clue.id, "evidence_gone": True})
                events.append(ClueEvent(clue_id=clue.id, at=stamp, actor=SYSTEM, kind="evidence_gone",
                                        payload={"night": night.isoformat(), "last_seen": clue.last_seen.isoformat()}))
                count(clue.rule_code, "gone")
        missed = _apply_updates(session, updates)
        if missed:
            # A person acted on these clues meanwhile (PostgreSQL): their change stands, and nothing
            # is said of tonight's evidence (no event, no snapshot), so the next night finds it changed.
            events = [e for e in events if e.clue_id not in missed]
            for clue_id in missed:
                kind, rule, snapshot = moved[clue_id]
                if snapshot in session.new:
                    session.expunge(snapshot)
                else:
                    session.delete(snapshot)
                setattr(result, kind, getattr(result, kind) - 1)
                if kind == "reraised":
                    result.by_rule[rule]["reraised"] -= 1
        if new_rows:
            # Core executemany on the tables: the ORM bulk path took about twice as long (large night: 11.4 s vs 6.2 s).
            conn = session.connection()
            insert_many(conn, Clue.__table__, new_rows)
            ids = {(r, s, e): i for i, r, s, e in session.execute(
                select(Clue.id, Clue.rule_code, Clue.subject_key, Clue.evidence_key).where(Clue.first_seen == night))}
            insert_many(conn, EvidenceSnapshot.__table__, [
                {"clue_id": ids[k], "night": night, "evidence_hash": d, "record": rec or "null"}
                for k, (d, rec) in new_evidence.items()])
            insert_many(conn, ClueEvent.__table__, [
                {"clue_id": ids[k], "at": stamp, "actor": SYSTEM, "kind": "dispatched", "from_status": None,
                 "to_status": DISPATCHED, "payload": {"night": night.isoformat(), "township": r["township_code"],
                                                      "due_date": r["due_date"].isoformat()}}
                for k, r in zip(new_evidence, new_rows, strict=True)])
        session.add_all(events)
        # (`register_digest` is not set here: a run published again keeps its own unless the copy is written.)
        run = session.merge(PublishRun(night=night, published_at=stamp, hits=result.hits, new=result.new, seen=result.seen,
                                       gone=result.gone, reraised=result.reraised, suppressed=result.suppressed,
                                       skipped_rules=",".join(result.skipped_rules) or None))
        if _replace_register(session, register, night, again):
            run.register_digest = _stored_digest(session, register)
    return result


def publish_night(home: Home, night: date, again: bool = False) -> PublishResult:
    """Publish a night from the home's warehouse into its ledger (the CLI's and the flow's step);
    LookupError when the night's rules have not run."""
    from bidui import config
    from bidui.clues.db import ledger_url, open_ledger
    from bidui.rules.engine import load_rules

    rules = load_rules(home.root / "rules")[0]
    ledger = open_ledger(ledger_url(home.ledger))
    try:
        with collector.paused():  # a tuple per ledger row (bidui.collector)
            # A register the same as the copy's is not read (a third of a quiet large night's publish);
            # asked to publish the night again, it is read and compared row by row (a copy damaged in
            # a way its size does not show is repaired so).
            kept = None
            if not again:
                with ledger.read() as session:
                    kept = kept_register_digest(session)
            con = wh.connect(home.warehouse)
            try:
                hits, runs = night_hits(con, night)
                division_rows = divisions(con, night)
                doubtful = doubtful_by_rule(con, night, {r.code: r.reads for r in rules})
                register = register_rows(con, night, kept)
            finally:
                con.close()
            titles = {r.code: r.title for r in rules}
            due = int(config.load(home.config).get("clues", {}).get("due_days", DUE_DAYS))
            return ledger.retrying(lambda: publish(ledger, hits, runs, night, titles, due, division_rows, doubtful, again,
                                                          register))
    finally:
        ledger.close()
