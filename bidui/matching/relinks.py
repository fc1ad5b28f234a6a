"""What changed in the links since the night linked before (issue 18, part 5): records linked to
another person than the night before, newly linked or no longer linked, each with why; and the
hukou identities that split or merged.

A record is followed from one night to the next by what it says (`row_hash`, with its role), not by
its file and row, which change with every delivery; a record that is new tonight is not re-linked,
it is new. Why, in this order: a township's verdict names it (不是本人 / 确认是本人); hukou changed
under it (a row with its number, or its person's, or the person it was linked to, came, went or
changed); the two nights were linked with different versions of the model and the link is scored; else its candidates changed
(`other`)."""

from __future__ import annotations

from datetime import date

import duckdb

from bidui.connectors import warehouse as wh
from bidui.connectors.changes import COMPARED_COLUMNS, changed_rows
from bidui.datasets import BY_CODE, DATASETS
from bidui.matching.decisions import DECISIONS_DDL
from bidui.matching.link_nights import literal, on_night

WHY = ("verdict", "hukou", "model", "other")
KINDS = ("other_person", "linked", "unlinked")


def previous_linked_night(con: duckdb.DuckDBPyConnection, night: date) -> date | None:
    row = con.execute("SELECT max(night) FROM link_runs WHERE night < ?", [night]).fetchone()
    return row[0] if row else None


def _touched_ids_sql(con: duckdb.DuckDBPyConnection, before: date, after: date) -> str:
    """The ID numbers of hukou rows that came, went or changed between two snapshots (the rows the
    carry plan compared, when it did: `changed_rows`)."""
    rows = changed_rows(con, BY_CODE["hukou"], before, after, COMPARED_COLUMNS["hukou"])
    return f"SELECT DISTINCT id_number FROM {rows} WHERE id_number IS NOT NULL"


def _fingerprint(ds_code: str) -> str:
    """What a stored row says, as SQL: its fingerprint (computed for rows stored before it was kept)."""
    return f"coalesce(row_hash, {wh.row_hash_sql(BY_CODE[ds_code])})"


def _records_sql(ds_code: str, id_column: str, role: str, night: date, snap: date, made: bool = False,
                 said: str | None = None) -> str:
    """A night's links of one dataset and role, by what the record says: (h, id, person_key, method);
    rows that say the same are one (their links are the same). `made`: only the links made that
    night (not carried); `said`: only the rows whose fingerprint this query gives."""
    when = f"l.night = {literal(night)} AND l.carried IS NOT TRUE" if made else on_night(literal(night), "l.")
    return f"""
        SELECT d.h, any_value(d.id) AS id, min(l.person_key) AS person_key, min(l.method) AS method
        FROM links l JOIN (SELECT {_fingerprint(ds_code)} AS h, "{id_column}" AS id, row_id
                           FROM ds_{ds_code}_at({literal(snap)})
                           {f"WHERE {_fingerprint(ds_code)} IN ({said})" if said else ""}) d
             ON d.row_id = l.row_id
        WHERE {when} AND l.dataset = '{ds_code}' AND l.role = '{role}'
        GROUP BY d.h"""


def _moved_sql(ds_code: str, id_column: str, role: str, night: date, before: date, snap: date, then: date,
               every: bool = False) -> str:
    """The records of one dataset and role whose person differs between the two nights: (id,
    person_key, method, was, was_method). A snapshot carried from one night to the next holds the
    same rows in the same places: they are followed by their row, and only the moved ones are read
    from the snapshot (for their number); a new snapshot's rows are followed by what they say.
    `every`: every link of both nights compared, none taken as unmoved (what the shortcuts must
    equal; tests compare the two)."""
    if snap == then and not every:
        def links_of(n: date, carried: bool = True) -> str:
            # Made that night and not carried (a link kept from a night before was made then):
            # `relink_made`; the night before's at their rows, `relink_then` (`night_relinks`:
            # one scan of the links for every dataset, not two per dataset and role).
            return (f"SELECT row_id, person_key, method FROM {'relink_then' if carried else 'relink_made'} "
                    f"WHERE dataset = '{ds_code}' AND role = '{role}'")

        # Both nights' links are of that one snapshot: the record's identity is enough to join on.
        # Tonight's links copied from the night before (`carried`) are that night's: only the others
        # can have moved (the same dataset's 0.64 s → 0.1 s).
        # Rows that say the same are one record, as below (a row a department sent twice is one).
        return f"""
            SELECT any_value(d.id) AS id, min(m.person_key) AS person_key, min(m.method) AS method,
                   min(m.was) AS was, min(m.was_method) AS was_method
            FROM (SELECT a.*, b.person_key AS was, b.method AS was_method
                  FROM ({links_of(night, carried=False)}) a JOIN ({links_of(before)}) b USING (row_id)
                  WHERE a.person_key IS DISTINCT FROM b.person_key) m
            JOIN (SELECT row_id, "{id_column}" AS id, {_fingerprint(ds_code)} AS h
                  FROM ds_{ds_code}_at({literal(snap)})) d
                 ON d.row_id = m.row_id
            GROUP BY d.h"""
    if every:
        return f"""
            SELECT a.id, a.person_key, a.method, b.person_key AS was, b.method AS was_method
            FROM ({_records_sql(ds_code, id_column, role, night, snap)}) a
            JOIN ({_records_sql(ds_code, id_column, role, before, then)}) b ON a.h = b.h
            WHERE a.person_key IS DISTINCT FROM b.person_key"""
    # A link carried to a row of a snapshot delivered anew is the link of a row that said the same
    # the night before (bidui.matching.carry): it cannot have moved. Only the links made tonight
    # are followed, and the night before's rows read are those that say what they say (the
    # hukou changes' and vehicles' every link of both nights, joined by fingerprint, cost 2.8 s of
    # a large night's 3.1).
    return f"""
        WITH a AS ({_records_sql(ds_code, id_column, role, night, snap, made=True)})
        SELECT a.id, a.person_key, a.method, b.person_key AS was, b.method AS was_method
        FROM a JOIN ({_records_sql(ds_code, id_column, role, before, then, said="SELECT h FROM a")}) b ON a.h = b.h
        WHERE a.person_key IS DISTINCT FROM b.person_key"""


def _compared_snapshots(con: duckdb.DuckDBPyConnection, night: date, before: date
                        ) -> tuple[dict[str, date], dict[str, date], list[str]]:
    """The snapshot dates each night was linked with (`link_loads`; for a night linked before they
    were kept, those in force now), and the datasets whose snapshot of either night is no longer
    stored as it was linked with (`gone`: a snapshot of that date stored again, by another load),
    left out of both. Worked out now from the snapshots table instead, a night folder that came late
    would set the night before's links beside rows they were never made on."""
    from bidui.matching.carry import linked_loads  # (carry reads this module's previous_linked_night)

    stored = {(d, snap): int(load) for d, snap, load in
              con.execute("SELECT dataset, snapshot_date, load_id FROM snapshots").fetchall()}
    nights = [linked_loads(con, n) or wh.in_force_loads(con, n) for n in (night, before)]
    gone = sorted({d for loads in nights for d, (snap, load) in loads.items() if stored.get((d, snap)) != load})
    now, then = ({d: snap for d, (snap, _) in loads.items() if d not in gone} for loads in nights)
    return now, then, gone


def night_relinks(con: duckdb.DuckDBPyConnection, night: date, every: bool = False) -> dict:
    """{"since": the night before, "datasets": {dataset: {"other_person", "linked", "unlinked",
    "why": {verdict, hukou, model, other}}}, "identities": {split, merged, second_found, second_gone},
    "not_compared": [datasets whose snapshot of either night was stored again since]} — empty when
    no night was linked before this one. `every`: see `_moved_sql`."""
    before = previous_linked_night(con, night)
    if before is None:
        return {}
    now_force, then_force, gone = _compared_snapshots(con, night, before)
    gone = sorted(d for d in gone if d in BY_CODE and BY_CODE[d].persons)
    if "hukou" in gone:
        # Why a link moved is told by hukou's changes: without the snapshot the night before was
        # linked with, nothing is compared (said as hukou alone: the others were not stored again).
        return {"since": before.isoformat(), "datasets": {}, "not_compared": ["hukou"]}
    # Scored links moved by the model: the nights were linked with different versions of it.
    versions = dict(con.execute("SELECT night, model_version FROM link_runs WHERE night IN (?, ?)",
                                [night, before]).fetchall())
    trained = None not in (versions.get(night), versions.get(before)) and versions[night] != versions[before]
    spine_now, spine_then = now_force.get("hukou"), then_force.get("hukou")
    touched = (_touched_ids_sql(con, spine_then, spine_now) if spine_now and spine_then and spine_now != spine_then
               else "SELECT NULL::VARCHAR AS id_number WHERE FALSE")
    con.execute(f"CREATE OR REPLACE TEMP TABLE relink_touched AS {touched}")
    con.execute(DECISIONS_DDL)
    con.execute("ALTER TABLE links ADD COLUMN IF NOT EXISTS carried BOOLEAN")  # links stored by an earlier version
    # The links made tonight (not carried), and the night before's at the same rows (`_moved_sql`).
    con.execute(f"""CREATE OR REPLACE TEMP TABLE relink_made AS
                    SELECT dataset, role, row_id, person_key, method FROM links
                    WHERE night = {literal(night)} AND carried IS NOT TRUE""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE relink_then AS
                    SELECT l.dataset, l.role, l.row_id, l.person_key, l.method FROM links l
                    SEMI JOIN relink_made m ON m.dataset = l.dataset AND m.role = l.role AND m.row_id = l.row_id
                    WHERE {on_night(literal(before), "l.")}""")
    datasets: dict[str, dict] = {}
    made = {d for (d,) in con.execute("SELECT DISTINCT dataset FROM relink_made").fetchall()}
    try:
        for ds in DATASETS:
            if not ds.persons or ds.code == "hukou" or ds.code not in now_force or ds.code not in then_force:
                continue
            if now_force[ds.code] == then_force[ds.code] and ds.code not in made and not every:
                continue  # one snapshot both nights and no link made tonight: every link was carried
            counts = dict.fromkeys(KINDS, 0) | {"why": dict.fromkeys(WHY, 0)}
            for ref in ds.persons:
                # Scored tonight or last night, by another version of the model.
                model = "(a.method IN ('fuzzy', 'review') OR a.was_method IN ('fuzzy', 'review'))" if trained else "FALSE"
                moved = _moved_sql(ds.code, ref.id_column, ref.role, night, before, now_force[ds.code],
                                   then_force[ds.code], every)
                rows = con.execute(f"""
                    SELECT CASE WHEN a.person_key IS NULL THEN 'unlinked' WHEN a.was IS NULL THEN 'linked'
                                ELSE 'other_person' END AS kind, CASE
                        WHEN a.id IN (SELECT id_number FROM link_decisions WHERE dataset = '{ds.code}'
                                      AND role = '{ref.role}') THEN 'verdict'
                        WHEN a.id IN (SELECT id_number FROM relink_touched)
                             OR split_part(a.person_key, '~', 1) IN (SELECT id_number FROM relink_touched)
                             OR split_part(a.was, '~', 1) IN (SELECT id_number FROM relink_touched) THEN 'hukou'
                        WHEN {model} THEN 'model'
                        ELSE 'other' END AS why, count(*)
                    FROM ({moved}) a GROUP BY ALL""").fetchall()
                for kind, why, n in rows:
                    counts[kind] += n
                    counts["why"][why] += n
            if any(counts[k] for k in KINDS):
                datasets[ds.code] = counts
    finally:
        for table in ("relink_touched", "relink_made", "relink_then"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
    result: dict = {"since": before.isoformat(), "datasets": datasets}
    if gone:
        result["not_compared"] = gone
    if spine_now and spine_then and spine_now != spine_then:
        result["identities"] = identity_events(con, spine_then, spine_now)
    return result


def identity_events(con: duckdb.DuckDBPyConnection, before: date, after: date) -> dict[str, int]:
    """Hukou identities that split or merged between two snapshots (`hukou_identity`):
    `split`: a number two persons now share (一号多人) that one person held before; `merged`: the
    reverse; `second_found`: a cancelled second number now taken as another number's person
    (一人多号); `second_gone`: the reverse."""
    shared = """SELECT DISTINCT split_part(person_key, '~', 1) AS id_number FROM hukou_identity
                WHERE snapshot_date = ? AND contains(person_key, '~')"""
    second = """SELECT DISTINCT h.id_number FROM ds_hukou_at(?) h
                JOIN hukou_identity i ON i.snapshot_date = h.snapshot_date AND i.source_row = h.source_row
                WHERE NOT i.is_primary"""
    # Each snapshot's numbers read once (a pass over its four million hukou rows for the second
    # numbers), then compared both ways.
    sets: dict[tuple[str, date], str] = {}
    for name, sql in (("shared", shared), ("second", second)):
        for d in (before, after):
            table = sets[(name, d)] = f"relink_{name}_{len(sets)}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {sql}", [d])
    counts: dict[str, int] = {}
    try:
        for name, kind, a, b in (("split", "shared", after, before), ("merged", "shared", before, after),
                                 ("second_found", "second", after, before), ("second_gone", "second", before, after)):
            (counts[name],), = con.execute(f"SELECT count(*) FROM {sets[(kind, a)]} ANTI JOIN {sets[(kind, b)]} "
                                           "USING (id_number)").fetchall()
    finally:
        wh.drop_temp(con, *sets.values())
    return counts
