"""Sure links carried from the night before (issue 18, part 2): a night re-links only what
could have changed.

A sure link (exact, former_name, household, excel_cut) depends on what the record says (its number,
its status and its name's keys) and on the hukou rows that share its number, its number's first 15
digits or its holder's hukou household, and on the townships' verdicts that name it — never on the
model, its row or the other rows of its file. So a record keeps last night's sure link unless hukou
changed under it (a row with its number, its 15 digits or its holder's household came, went or
changed, or a number's person changed: 一号多人, 一人多号) or a verdict names it, tonight or last night:
- in a dataset whose snapshot is the one linked the night before (`Carry.whole`);
- in a dataset delivered anew (`Carry.by_row`), by the record's identity (`row_id`,
  bidui.connectors.warehouse.ROW_ID): a row delivered again with the values it was delivered with
  keeps it, whatever its place in tonight's file or the file's form, and so its link. Only the rows
  that are new or changed (new records) are linked again; one that says the same in other text (a
  date written another way) is a new record, linked again to the same outcome.
A link kept is not written again: it holds on tonight too (`keep_in_place`, bidui.matching.link_nights),
in place or moved, since a link names its record by its identity, not its row.
Everything else — scored, unlinked and confirmed records, and records new tonight — is staged
again, with every record of the datasets that came anew with no snapshot to compare. Of the scored
and unlinked records, those that were records the night before, that nothing above reached
and that no changed hukou person pairs with in a block keep the model's outcome of the night
before (`may_hold`, `bidui.matching.link.hold_scored`: the model, its share of matches and its
name frequencies are fixed between nights); the rest are scored again, blocking against the whole
spine, so the outcome equals linking everything (`tests/test_carry.py` and
`tests/test_incremental.py` compare the two night after night).

Nothing is carried when the model is trained tonight (training draws from every record), when the
night before was linked by other SQL (`CODE`), or when there is no night before."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date

import duckdb

from bidui.connectors import warehouse as wh
from bidui.connectors.changes import COMPARED_COLUMNS, changed_rows
from bidui.datasets import BY_CODE
from bidui.matching import link_nights, spine_store
from bidui.matching import records as rec_sql
from bidui.matching.decisions import DECISIONS_DDL, named_by_decision
from bidui.matching.relinks import previous_linked_night

SURE = ("exact", "former_name", "household", "excel_cut")
SCORED = ("fuzzy", "review", "none")  # what the model gives (bidui.matching.link.hold_scored)
USED_DDL = ("CREATE TABLE IF NOT EXISTS link_decisions_used (night DATE NOT NULL, dataset VARCHAR NOT NULL, "
            "role VARCHAR NOT NULL, id_number VARCHAR NOT NULL)")
# The snapshot (its load) of each dataset a night was linked with. The snapshots in force on that
# night, worked out again later, may be others: a held file applied when an older night is run
# again, or a night folder that came late, stores a snapshot dated on or before a night already
# linked. Links made on another snapshot are not carried onto these (`plan`, `unpaired`).
LOADS_DDL = ("CREATE TABLE IF NOT EXISTS link_loads (night DATE NOT NULL, dataset VARCHAR NOT NULL, "
             "snapshot_date DATE NOT NULL, load_id BIGINT NOT NULL)")


def code_digest(*texts: str) -> str:
    """What linked a night, as a digest of its SQL: links made by other SQL are not carried."""
    return hashlib.sha256("\x1f".join((*texts, rec_sql.SPINE_SQL, rec_sql.IDENTITY_SQL, repr(rec_sql.CONTEXT))
                                      ).encode()).hexdigest()[:16]


@dataclass
class Carry:
    """What tonight takes from the night before: `datasets` whose sure links are carried (but for
    the records in the temp table `link_restage`) — every one when the snapshot is the one the night
    before was linked with, those of the records delivered again (`by_row`: tonight's snapshot date
    and the one linked the night before) when it came anew."""

    before: date | None = None
    datasets: list[str] = field(default_factory=list)
    by_row: dict[str, tuple[date, date]] = field(default_factory=dict)
    methods: tuple[str, ...] = SURE  # the sure links carried (`plan`: fewer when the name history was read again)

    @property
    def whole(self) -> list[str]:
        return [d for d in self.datasets if d not in self.by_row]


def _touched(con: duckdb.DuckDBPyConnection, then: date, now: date) -> None:
    """`carry_touched` (id_number): the numbers hukou changed under between two snapshots — rows
    that came, went or changed; numbers whose person changed; every number of a household one of
    whose rows changed (a household link reads all of its members)."""
    changed = f"SELECT * FROM {changed_rows(con, BY_CODE['hukou'], then, now, COMPARED_COLUMNS['hukou'])}"
    person = """SELECT h.id_number, i.person_key, i.is_primary FROM ds_hukou_at(DATE '{}') h
                JOIN hukou_identity i ON i.snapshot_date = h.snapshot_date AND i.source_row = h.source_row"""
    a, b = person.format(then.isoformat()), person.format(now.isoformat())
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE carry_touched AS
        WITH changed AS ({changed}),
        households AS (SELECT DISTINCT hukou_number FROM changed WHERE hukou_number IS NOT NULL),
        persons AS ((({a}) EXCEPT ({b})) UNION (({b}) EXCEPT ({a})))
        SELECT id_number FROM changed WHERE id_number IS NOT NULL
        UNION SELECT id_number FROM persons
        UNION SELECT h.id_number FROM (SELECT id_number, hukou_number FROM ds_hukou_at(DATE '{then.isoformat()}')
                                       UNION ALL SELECT id_number, hukou_number FROM ds_hukou_at(DATE '{now.isoformat()}')) h
              SEMI JOIN households x ON x.hukou_number = h.hukou_number WHERE h.id_number IS NOT NULL""")


def plan(con: duckdb.DuckDBPyConnection, night: date, code: str) -> Carry:
    """What can be carried into the night (temp table `link_restage`); nothing
    when there is no night before, it was linked by other SQL, or no dataset kept its snapshot."""
    con.execute(USED_DDL)
    before = previous_linked_night(con, night)
    if before is None:
        return Carry()
    code_before, epoch_before = con.execute("SELECT code, names_epoch FROM link_runs WHERE night = ?", [before]).fetchone()
    if code_before != code:
        return Carry()
    # Former-name and household links read the hukou name history (a household link, its members'
    # former names). Read again from the first since the night before was linked (a night folder
    # that came late, an older hukou file loaded again), it may give other former names to numbers
    # whose rows did not change: those links are made again. Tonight's reading: `prepare_spine` ran.
    methods = SURE if epoch_before == rec_sql.names_epoch(con) else tuple(m for m in SURE if m in ("exact", "excel_cut"))
    # (date, load) of each dataset's snapshot in force tonight and the night before, and of those
    # the night before was linked with.
    now, then, linked = wh.in_force_loads(con, night), wh.in_force_loads(con, before), linked_loads(con, before)
    # Carried by row: a dataset whose snapshot tonight is the very one the night before was linked
    # with. By what its rows say: one delivered anew since, while the snapshot the night before was
    # linked with is still stored as it was (a night stored again by another load replaced it).
    stored = {(d, snap): int(load) for d, snap, load in
              con.execute("SELECT dataset, snapshot_date, load_id FROM snapshots").fetchall()}
    whole = [d for d in rec_sql.linked_datasets() if d in now and now[d] == linked.get(d)]
    by_row = {d: (now[d][0], linked[d][0]) for d in rec_sql.linked_datasets()
              if d in now and d in linked and now[d] != linked[d] and stored.get((d, linked[d][0])) == linked[d][1]
              and now[d][0] != linked[d][0]}
    datasets = whole + list(by_row)
    # Hukou's changes are counted from the snapshot in force the night before: it must still be the
    # one that night was linked with.
    if not datasets or "hukou" not in now or "hukou" not in then or then["hukou"] != linked.get("hukou"):
        return Carry()
    if now["hukou"] == then["hukou"]:
        con.execute("CREATE OR REPLACE TEMP TABLE carry_touched (id_number VARCHAR)")
    else:
        _touched(con, then["hukou"][0], now["hukou"][0])
    # Tonight's verdicts (the warehouse's copy, refreshed before linking) and those of the night before.
    con.execute(DECISIONS_DDL)
    con.execute("""CREATE OR REPLACE TEMP TABLE carry_decided AS
                   SELECT dataset, role, id_number FROM link_decisions
                   UNION SELECT dataset, role, id_number FROM link_decisions_used WHERE night = ?""", [before])
    sure = ", ".join(f"'{m}'" for m in methods)
    carried = ", ".join(f"'{d}'" for d in whole) or "NULL"
    # Linked again: what was not surely linked (one scan of the night before's links)…
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE link_restage AS
        SELECT dataset, role, row_id FROM links
        WHERE {link_nights.on_night(link_nights.literal(before))} AND dataset IN ({carried}) AND method NOT IN ({sure})""")
    # …of a dataset delivered anew, every record but those surely linked the night before…
    _restage_new(con, before, by_row, methods)
    # …and what hukou or a verdict changed under (a scan of each snapshot's numbers, when any):
    # `carry_fresh`, records whose outcome of the night before tells nothing.
    con.execute("CREATE OR REPLACE TEMP TABLE carry_fresh (dataset VARCHAR, role VARCHAR, row_id BIGINT)")
    touched, decided_any = con.execute("SELECT (SELECT count(*) FROM carry_touched), (SELECT count(*) FROM carry_decided)"
                                       ).fetchone()
    if touched or decided_any:
        for code_ in datasets:
            snap = now[code_][0].isoformat()
            for ref in BY_CODE[code_].persons:
                # Three semi joins, not one scan testing three conditions: the conditions OR'd were
                # each a mark join over the whole snapshot (0.76 s over the datasets on a large night).
                rows = f"SELECT m.row_id FROM ds_{code_}_at(DATE '{snap}') m"
                decided = f"(SELECT id_number FROM carry_decided WHERE dataset = '{code_}' AND role = '{ref.role}')"
                con.execute(f"""
                    INSERT INTO carry_fresh
                    SELECT DISTINCT '{code_}', '{ref.role}', row_id FROM (
                        {rows} SEMI JOIN carry_touched t ON t.id_number = m.{ref.id_column}
                        UNION ALL
                        {rows} SEMI JOIN (SELECT DISTINCT substr(id_number, 1, 15) AS n15 FROM carry_touched) t
                            ON t.n15 = substr(m.{ref.id_column}, 1, 15)
                        WHERE m.{ref.id_column}_status = 'excel_mangled'
                        {f"UNION ALL {rows} WHERE {named_by_decision(ref, 'm', decided)}" if decided_any else ""})""")
        con.execute("INSERT INTO link_restage SELECT * FROM carry_fresh")
    return Carry(before, datasets, by_row, methods)


def _restage_new(con: duckdb.DuckDBPyConnection, before: date, by_row: dict[str, tuple[date, date]],
                 methods: tuple[str, ...]) -> None:
    """Into `link_restage`, each record of a dataset delivered anew that the night before did not
    surely link, for each of its person references: one new tonight (a row new or changed is a new
    record, `warehouse.new_row_id`), or one linked otherwise. A record delivered again keeps its
    identity and so says what it said: its sure link holds (`keep_in_place`)."""
    sure = ", ".join(f"'{m}'" for m in methods)
    for code, (snap, _then) in by_row.items():
        table = f"ds_{code}_at(DATE '{snap.isoformat()}')"
        for ref in BY_CODE[code].persons:
            con.execute(f"""
                INSERT INTO link_restage
                SELECT '{code}', '{ref.role}', n.row_id FROM {table} n
                ANTI JOIN (SELECT row_id FROM links
                           WHERE {link_nights.on_night(link_nights.literal(before))} AND dataset = '{code}'
                                 AND role = '{ref.role}' AND method IN ({sure})) l ON l.row_id = n.row_id""")


def keep_in_place(con: duckdb.DuckDBPyConnection, plan: Carry, night: date) -> int:
    """The night before's links that tonight keeps made to hold on `night` too, in place (inside the
    caller's transaction, after `link_nights.forget`); how many. They are the sure links not to be
    linked again of the datasets whose snapshot did not change (`plan.whole`), and of those
    delivered anew (`plan.by_row`) those of the records delivered again, wherever they stand in
    tonight's file. A link names its record by its identity, not its file or row
    (bidui.matching.link_nights): a department that sends its file under a new name every night,
    with its rows in another order, keeps its links where they lie."""
    if not plan.datasets:
        return 0
    sure = ", ".join(f"'{m}'" for m in plan.methods)
    n = 0
    for where in _kept(plan, sure):
        if plan.before is None or (night - plan.before).days != 1:
            # Nights not linked lie between (a folder that has not come): a range would hold on them
            # too. Copied at tonight's date instead, as before links were kept in place.
            (m,), = con.execute(f"""
                INSERT INTO links (night, {link_nights.LINK_COLUMNS}, carried)
                SELECT {link_nights.literal(night)}, {link_nights.LINK_COLUMNS}, TRUE FROM links
                WHERE {where}""").fetchall()
        else:
            (m,), = con.execute(f"UPDATE links SET last_night = {link_nights.literal(night)} WHERE {where}").fetchall()
        n += int(m)
    return n


def _kept(plan: Carry, sure: str) -> list[str]:
    """SQL conditions: the links of the night before that `keep_in_place` keeps — those of the
    datasets kept whole, then, per dataset delivered anew, those of its records in tonight's
    snapshot (a record that went keeps none)."""
    assert plan.before is not None
    restaged = """
              AND NOT EXISTS (SELECT 1 FROM link_restage r WHERE r.dataset = links.dataset AND r.role = links.role
                                                              AND r.row_id = links.row_id)"""
    night_before = link_nights.on_night(link_nights.literal(plan.before))
    out = []
    if plan.whole:
        out.append(f"{night_before} AND dataset IN ({', '.join(f'{d!r}' for d in plan.whole)}) "
                   f"AND method IN ({sure}){restaged}")
    # (The records restaged taken out inside the subquery: tested beside it, by NOT EXISTS, the
    # vehicles' UPDATE took 1.25 s of a large night 2 instead of about 0.1.)
    for code, (snap, _then) in plan.by_row.items():
        for ref in BY_CODE[code].persons:
            out.append(f"""{night_before} AND dataset = '{code}' AND role = '{ref.role}' AND method IN ({sure})
                AND row_id IN (SELECT d.row_id FROM ds_{code}_at(DATE '{snap.isoformat()}') d
                               ANTI JOIN (SELECT row_id FROM link_restage WHERE dataset = '{code}' AND role = '{ref.role}') r
                                    ON r.row_id = d.row_id)""")
    return out


def may_hold(con: duckdb.DuckDBPyConnection, plan: Carry, night: date, version: int, scored_code: str) -> bool:
    """`link_may_hold` (rec, person_key, method, score, explanation): the staged records that may
    keep the outcome the model gave them the night before (`link.hold_scored` says which do) —
    records of a dataset carried that were records the night before (the same identity: they say
    what they said), that no change of hukou under their number or verdict reached
    (`carry_fresh`), scored or left unlinked that night by the same version of the model and the
    same scoring (`scored_code`); False when none may (the spine was built whole, so what changed
    in hukou is not known, or another model or scoring linked the night before)."""
    if plan.before is None or not plan.datasets:
        return False
    row = con.execute("SELECT model_version, scored_code FROM link_runs WHERE night = ?", [plan.before]).fetchone()
    if row is None or tuple(row) != (version, scored_code):
        return False
    since = con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?",
                        [spine_store.SINCE]).fetchone()[0]
    linked = linked_loads(con, plan.before)
    if not since or "hukou" not in linked or \
            con.execute(f"SELECT snapshot_date FROM {spine_store.SINCE}").fetchone()[0] != linked["hukou"][0]:
        return False
    # A record that reads another dataset (a member's village is its household's): only while that
    # dataset's snapshot is the one the night before was linked with.
    now = wh.in_force_loads(con, night)
    datasets = [d for d in plan.datasets
                if not rec_sql.reads_households(d) or now.get("register_households") == linked.get("register_households")]
    if not datasets:
        return False
    def listed(codes: list[str]) -> str:
        return ", ".join(f"'{d}'" for d in codes) or "NULL"

    # The night before's outcomes, then the staged records that were records then (by identity).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE link_may_hold AS
        WITH before AS (
            SELECT dataset, role, row_id, person_key, method, score, explanation FROM links
            WHERE {link_nights.on_night(link_nights.literal(plan.before))} AND dataset IN ({listed(datasets)})
                  AND method IN ({", ".join(f"'{m}'" for m in SCORED)})),
        said AS (
            SELECT r.rec, r.dataset, r.role, r.row_id, b.person_key, b.method, b.score, b.explanation
            FROM link_recs r JOIN before b ON b.dataset = r.dataset AND b.role = r.role AND b.row_id = r.row_id)
        SELECT s.rec, s.person_key, s.method, s.score, s.explanation FROM said s
        ANTI JOIN carry_fresh f ON f.dataset = s.dataset AND f.role = s.role AND f.row_id = s.row_id""")
    return True


def release_held(con: duckdb.DuckDBPyConnection, plan: Carry) -> None:
    """The records `link.hold_scored` kept (`link_kept_scored`) are carried as the sure links are
    (`keep_in_place`): out of `link_restage` and `link_recs` (not stored again)."""
    con.execute("""
        DELETE FROM link_restage WHERE EXISTS (
            SELECT 1 FROM link_recs r JOIN link_kept_scored k ON k.rec = r.rec
            WHERE r.dataset = link_restage.dataset AND r.role = link_restage.role AND r.row_id = link_restage.row_id)""")
    con.execute("DELETE FROM link_recs WHERE rec IN (SELECT rec FROM link_kept_scored)")
    plan.methods = (*plan.methods, *(m for m in SCORED if m not in plan.methods))


def linked_loads(con: duckdb.DuckDBPyConnection, night: date) -> dict[str, tuple[date, int]]:
    """The loads a night was linked with (`remember_loads`); none for a night linked before they
    were kept, so that nothing is carried from it. (Read without DDL: the what-if reads a
    read-only warehouse.)"""
    try:
        rows = con.execute("SELECT dataset, snapshot_date, load_id FROM link_loads WHERE night = ?", [night]).fetchall()
    except duckdb.CatalogException:
        return {}
    return {d: (snap, int(load)) for d, snap, load in rows}


def remember_loads(con: duckdb.DuckDBPyConnection, night: date) -> None:
    """The snapshots (loads) the night is being linked with (inside the caller's transaction)."""
    con.execute(LOADS_DDL)
    con.execute("DELETE FROM link_loads WHERE night = ?", [night])
    for dataset, (snap, load) in wh.in_force_loads(con, night).items():
        con.execute("INSERT INTO link_loads VALUES (?, ?, ?, ?)", [night, dataset, snap, load])


def remember_decisions(con: duckdb.DuckDBPyConnection, night: date) -> None:
    """The verdicts the night was linked with (the next night re-links what they named)."""
    con.execute(USED_DDL)
    con.execute(DECISIONS_DDL)
    con.execute("DELETE FROM link_decisions_used WHERE night = ?", [night])
    con.execute("INSERT INTO link_decisions_used SELECT DISTINCT ?, dataset, role, id_number FROM link_decisions", [night])


def drop(con: duckdb.DuckDBPyConnection) -> None:
    for table in ("link_restage", "carry_touched", "carry_decided", "carry_fresh", "link_may_hold",
                  "link_kept_scored", spine_store.CHANGED, spine_store.WAS, spine_store.SINCE):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def unpaired(con: duckdb.DuckDBPyConnection, night: date) -> set[str]:
    """The datasets whose links of `night` were made on another snapshot than the one in force on
    it now: a night folder that came late, or a held file applied, stored a snapshot dated on or
    before the night after it was linked. A link names its record, not its file
    (bidui.matching.link_nights), and the snapshot stored since was linked by no night: a reader
    that pairs a night's links with the rows in force leaves these unpaired — their records read
    unlinked until the night is linked again — as a home that had that snapshot when it linked the
    night would read them. Empty for a night not linked, or linked before the loads were kept."""
    linked = linked_loads(con, night)
    if not linked:
        return set()
    now = wh.in_force_loads(con, night)
    return {d for d, load in linked.items() if d in now and now[d] != load}
