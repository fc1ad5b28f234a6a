"""The views a rule's SQL reads, for one run date: snapshots in force, joined to the night's links.

A dataset that several rules read is materialised once per run (a temporary table): joining it to
the links again for each rule made the run several times slower. One read by a single rule is a
view: materialising it would only add a copy.

- `members`: register members in force, with their household, their link to hukou and the
  linked hukou record, their age on the run date, and `ident` — the person (hukou ID when linked,
  else the member's own valid ID) that department records are matched on.
- `subjects`: one row per person in the register, naming the lowest household code.
- `hukou`: the hukou snapshot in force, with `ident` (the person: its ID number, or ID~hukou number
  when two persons share the number, 一号多人) and `is_primary` (false for a cancelled second number
  of a person who has a living record under another, 一人多号: that row is not a second person).
- `hukou_person`: `hukou` with one row per person and number (a person listed twice under one
  number: the row the spine chose).
- `<dataset>_linked` for every other dataset in force: its rows with `ident`, link method, score
  and explanation.
"""

from __future__ import annotations

from datetime import date

import duckdb

from bidui.connectors import snapshot_rows
from bidui.connectors import warehouse as wh
from bidui.datasets import BY_CODE, DATASETS, Dataset
from bidui.matching import carry
from bidui.matching.link import LINKS_SCHEMA
from bidui.matching.link_nights import on_night
from bidui.matching.records import IDENTITY_DDL, PERSON_ROW_KEY, ensure_identity

# The person a record is about: its link; unlinked, its own valid ID number (an outsider's records
# still meet each other), unless that number is a hukou person's whose name the record does not
# bear (an ID–name conflict the linker refused: falling back to the number would give the record
# to that person after all — a ghost member under someone's number would share that person's
# insurance and look like a duplicate of them).
IDENT = ("coalesce(CASE WHEN l.method <> 'none' THEN l.person_key END, "
         "CASE WHEN d.{id}_status = 'valid' AND NOT coalesce(l.id_name_conflict, FALSE) THEN d.{id} END)")


HASHES = ", ".join(wh.ROW_COLUMNS)  # what a row is, not what it says: no rule reads them
ALWAYS_TABLES = {"register_members", "register_households"}  # read by the views below
# The spine is never linked (its records are the persons): its view only adds `ident`, so reading
# the snapshot again is cheaper than copying four million rows.
ALWAYS_VIEWS = {"hukou", "divisions"}


# A member's birth date: from the person's number when linked, else from the member's own valid one.
BIRTH_SQL = ("coalesce(try_strptime(substr(m.person_key, 7, 8), '%Y%m%d'), CASE WHEN m.id_number_status = 'valid' "
             "THEN try_strptime(substr(m.id_number, 7, 8), '%Y%m%d') END)::DATE")


def age_sql(birth: str, on: str) -> str:
    """SQL: the age on `on` (an SQL date) of a person born on `birth` (the one formula of the
    members' view and of what changed for the rules)."""
    return (f"date_diff('year', {birth}, {on}) - CASE WHEN strftime({birth}, '%m%d') > strftime({on}, '%m%d') "
            "THEN 1 ELSE 0 END")


def linked_select(ds: Dataset, night: date, snap: date | None, where: str = "", rows: str | None = None,
                  paired: bool = True) -> str:
    """The SELECT of `<ds>_linked` on a night: the snapshot's rows (those matching `where`, an SQL
    condition on the row `d`, when given; those of the table `rows`, when given) with `ident`, the
    link's method, score and explanation. The one place that says which person a row of a dataset
    is about, for the rules' views, the persons with a doubtful row and what changed for the rules
    since their last night (bidui.rules.changed). Not `paired` (`carry.unpaired`: the night's links
    of the dataset were made on another snapshot), every row reads unlinked."""
    rows = rows or snapshot_rows.at(ds.code, f"DATE '{snap}'" if snap else "NULL::DATE")
    rows = f"(SELECT * FROM {rows} d WHERE {where})" if where else rows
    if not ds.persons:
        return f"SELECT d.* EXCLUDE ({HASHES}) FROM {rows} d"
    if ds.code == "hukou":
        # The spine is not linked: each record's person is its identity (bidui.matching.records).
        return f"""
            SELECT d.* EXCLUDE ({HASHES}), coalesce(i.person_key, CASE WHEN d.id_number_status = 'valid' THEN d.id_number END) AS ident,
                   NULL::VARCHAR AS link_method, NULL::DOUBLE AS link_score, NULL::VARCHAR AS link_explanation,
                   coalesce(i.person_key, CASE WHEN d.id_number_status = 'valid' THEN d.id_number END) AS person_key,
                   coalesce(i.is_primary, TRUE) AS is_primary
            FROM {rows} d LEFT JOIN hukou_identity i ON i.snapshot_date = d.snapshot_date AND i.source_row = d.source_row"""
    ref = ds.persons[0]
    return f"""
        SELECT d.* EXCLUDE ({HASHES}), {IDENT.format(id=ref.id_column)} AS ident,
               CASE WHEN l.method <> 'none' THEN l.method END AS link_method,
               CASE WHEN l.method <> 'none' THEN l.score END AS link_score,
               -- unlinked, the reason is kept when it is a township's verdict (不是本人): a clue
               -- on the record then says why it is no longer tied to that person
               CASE WHEN l.method <> 'none' OR contains(l.explanation, '"rule":"barred"') THEN l.explanation
               END AS link_explanation,
               CASE WHEN l.method <> 'none' THEN l.person_key END AS person_key
        FROM {rows} d
        LEFT JOIN links l ON {on_night(f"DATE '{night}'", 'l.')} AND l.dataset = '{ds.code}' AND {str(paired).upper()}
             AND l.row_id = d.row_id AND l.role = '{ref.role}'"""


# In a night evaluated only where something changed (bidui.rules.changed), the rows each dataset
# keeps: those of the persons, register households and hukou households in scope (temp tables
# rules_persons, rules_households and rules_hukou). A row is about a person in scope only if its
# link or, unlinked, its own ID names one: rows are first narrowed by those two (cheap), then
# joined to their links. The rows are found by their source rows (outside hukou and the register,
# their identities, which their links name), each way by a semi join, and then read once: one scan
# testing the ways OR'd made each a mark join over the whole snapshot (1.36 against 0.97 s over the
# datasets of a large night 2).
def _rows_in_scope(ds: Dataset, at: str, snap: date) -> str:
    """SQL: the rows of dataset `ds`'s snapshot `at` (of `snap`) in scope."""
    if ds.code in ("register_members", "register_households"):
        return f"SELECT * FROM {at} d WHERE d.household_code IN (SELECT household_code FROM rules_households)"
    if ds.code == "hukou":
        ways = [f"SELECT d.source_row FROM {at} d SEMI JOIN rules_hukou h ON h.hukou_number = d.hukou_number",
                f"SELECT d.source_row FROM {at} d SEMI JOIN rules_persons p ON p.ident = d.id_number",
                f"SELECT i.source_row FROM hukou_identity i SEMI JOIN rules_persons p ON p.ident = i.person_key "
                f"WHERE i.snapshot_date = DATE '{snap}'"]
    else:
        ref = ds.persons[0]
        ways = [f"SELECT d.row_id FROM {at} d SEMI JOIN rules_persons p ON p.ident = d.{ref.id_column}",
                f"SELECT l.row_id FROM rules_scope_links l WHERE l.dataset = '{ds.code}' AND l.role = '{ref.role}'"]
        if ds.code == "businesses":  # an investor's clue reads the enterprise's row, by its credit code
            ways.append(f"SELECT d.row_id FROM {at} d SEMI JOIN rules_credit c ON c.credit_code = d.credit_code")
        return f"SELECT * FROM {at} d SEMI JOIN ({' UNION '.join(ways)}) k USING (row_id)"
    return f"SELECT * FROM {at} d SEMI JOIN ({' UNION '.join(ways)}) k USING (source_row)"


def create_lazy(con: duckdb.DuckDBPyConnection, night: date) -> dict[str, date]:
    """`<ds>_linked` for every dataset as views over the whole snapshots in force (nothing is joined
    until read: what a rule's run condition reads); the snapshot date in force per dataset."""
    in_force = wh.in_force(con, night)
    con.execute(LINKS_SCHEMA)
    con.execute(IDENTITY_DDL)
    unpaired = carry.unpaired(con, night)
    for ds in DATASETS:
        snap = in_force.get(ds.code)
        if ds.code == "hukou" and snap:
            ensure_identity(con, snap)
        wh.drop_temp(con, f"{ds.code}_linked")
        con.execute(f"CREATE TEMP VIEW {ds.code}_linked AS {linked_select(ds, night, snap, paired=ds.code not in unpaired)}")
    return in_force


def create(con: duckdb.DuckDBPyConnection, night: date, readers: list[str] | None = None,
           scoped: bool = False) -> dict[str, date]:
    """Create the views for a night; return the snapshot date in force per dataset. `readers` are
    the SQL texts that will read them: a dataset read by one of them is a view (the one reader
    pays for the join once), by several a table (joined once for all). `scoped`: only the rows in
    the scope of tonight's changes (`_rows_in_scope`), each a table."""
    uses = {ds.code: sum(f"{ds.code}_linked" in text for text in readers) if readers is not None else 2
            for ds in DATASETS}
    in_force = wh.in_force(con, night)
    con.execute(LINKS_SCHEMA)
    con.execute(IDENTITY_DDL)
    unpaired = carry.unpaired(con, night)
    if scoped:  # the links of tonight to the persons in scope, for `_rows_in_scope` (one scan of the links)
        holds = on_night(f"DATE '{night}'", "l.")
        con.execute(f"CREATE OR REPLACE TEMP TABLE rules_scope_links AS SELECT dataset, role, row_id "
                    f"FROM links l WHERE {holds} AND l.person_key IN (SELECT ident FROM rules_persons)")
    for ds in DATASETS:
        snap = in_force.get(ds.code)
        if ds.code == "hukou" and snap:
            ensure_identity(con, snap)
        kind = "VIEW" if ds.code in ALWAYS_VIEWS else "TABLE" if ds.code in ALWAYS_TABLES or uses[ds.code] >= 2 else "VIEW"
        wh.drop_temp(con, f"{ds.code}_linked")
        if scoped and snap and ds.persons:
            # The rows in scope first, then joined to their links: joined at once, the links of the
            # whole snapshot were the join's table (4 million for medical insurance).
            at = snapshot_rows.at(ds.code, f"DATE '{snap}'")
            con.execute(f"CREATE OR REPLACE TEMP TABLE rules_rows AS {_rows_in_scope(ds, at, snap)}")
            con.execute(f"CREATE TEMP TABLE {ds.code}_linked AS "
                        f"{linked_select(ds, night, snap, rows='rules_rows', paired=ds.code not in unpaired)}")
            wh.drop_temp(con, "rules_rows")
            continue
        con.execute(f"CREATE TEMP {kind} {ds.code}_linked AS {linked_select(ds, night, snap, paired=ds.code not in unpaired)}")
    # Who is registered, over the whole register whatever the views were narrowed to: a hukou
    # household with a member on the register is not a missed one, and a household split off one
    # that is registered is no clue (their clues read other households than their own).
    members = "rules_register" if scoped else "register_members_linked"  # (bidui.rules.changed: the whole register)
    hukou = f"({linked_select(BY_CODE['hukou'], night, in_force.get('hukou'))})" if scoped else "hukou_linked"
    con.execute(f"CREATE OR REPLACE TEMP TABLE registered_persons AS SELECT DISTINCT ident, person_key FROM {members} "
                "WHERE ident IS NOT NULL")
    con.execute(f"CREATE OR REPLACE TEMP TABLE registered_hukou AS SELECT DISTINCT hukou_number FROM {hukou} "
                "WHERE status = '正常' AND ident IN (SELECT person_key FROM registered_persons)")
    con.execute("CREATE OR REPLACE TEMP VIEW hukou AS SELECT * FROM hukou_linked")
    # One hukou row per person and number: a person listed twice under one number (in two
    # households, a public-security defect) made every member row of theirs two, and a rule
    # counting a member's rows saw the member twice (a false DUPLICATE_MEMBER). The row chosen is
    # the one the spine chose. Only the persons listed twice are sorted, and only the rows of a
    # number listed twice are grouped by person (one column grouped over the four million rows,
    # not two: 0.93 → 0.47 s at the large size).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hukou_not_first AS
        WITH listed AS (
            SELECT * FROM hukou_linked
            SEMI JOIN (SELECT id_number FROM hukou_linked WHERE ident IS NOT NULL
                       GROUP BY id_number HAVING count(*) > 1) d USING (id_number)
            WHERE ident IS NOT NULL),
        twice AS (
            SELECT ident, id_number, arg_min(source_row, {PERSON_ROW_KEY.format(village="address_code")}) AS first
            FROM listed GROUP BY ALL HAVING count(*) > 1)
        SELECT h.source_row FROM listed h JOIN twice t USING (ident, id_number) WHERE h.source_row <> t.first""")
    con.execute("CREATE OR REPLACE TEMP VIEW hukou_person AS SELECT * FROM hukou WHERE ident IS NOT NULL "
                "AND source_row NOT IN (SELECT source_row FROM hukou_not_first)")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW members AS
        SELECT m.household_code, m.source_file, m.source_row, m.name, m.name_raw, m.id_number, m.id_number_raw,
               m.id_number_status, m.relation, m.ident, m.person_key, m.link_method, m.link_score, m.link_explanation,
               h.village_code, substr(h.village_code, 1, 9) || '000' AS township_code, h.status AS household_status,
               h.registered_year, h.head_id_number,
               k.name AS hukou_name, k.status AS hukou_status, k.status_date AS hukou_status_date, k.hukou_type,
               k.hukou_number,
               {BIRTH_SQL} AS birth,
               CASE WHEN m.id_number_status = 'valid' THEN m.id_number ELSE trim(m.id_number_raw) END AS subject_id_number
        FROM register_members_linked m
        LEFT JOIN register_households_linked h ON h.household_code = m.household_code
        -- (the members' persons alone: joined whole, the four million hukou rows were the join's
        -- table, 0.6 s against 0.45 s at the large size)
        LEFT JOIN (SELECT * FROM hukou_person WHERE is_primary AND ident IN (SELECT person_key FROM register_members_linked)) k
             ON k.ident = m.person_key
    """)
    age = age_sql("birth", f"DATE '{night}'")
    con.execute(f"CREATE OR REPLACE TEMP VIEW members_aged AS SELECT *, {age} AS age FROM members")
    # Every member row as a clue subject, and one row per person (the lowest household code).
    con.execute("""
        CREATE OR REPLACE TEMP TABLE member_subjects AS
        SELECT coalesce(ident, 'R:' || household_code || ':' || source_row) AS subject_key, ident, age, birth, relation,
               person_key AS subject_person_key, subject_id_number, id_number_raw AS subject_id_number_raw,
               id_number_status AS subject_id_status, name AS subject_name, household_code,
               coalesce(hukou_number, '') AS hukou_number, township_code, village_code, household_status,
               registered_year, link_method AS subject_link_method, link_score AS subject_link_score,
               link_explanation AS subject_link_explanation, hukou_name, hukou_status, hukou_status_date, hukou_type,
               source_row
        FROM members_aged
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE subjects AS
        SELECT * EXCLUDE (rn) FROM (
            SELECT *, row_number() OVER (PARTITION BY subject_key ORDER BY household_code, source_row) AS rn
            FROM member_subjects) WHERE rn = 1
    """)
    return in_force
