"""The ledger's store: SQLite in `<home>/ledger.sqlite` (WAL, busy timeout) unless
BIDUI_LEDGER_URL names another database (PostgreSQL); the schema is brought up to date by the
alembic migrations on open."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Date, DateTime, Engine, Table, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
RECONNECT_WAITS = (1.0, 2.0, 4.0, 8.0)  # seconds between attempts: a database restart takes a few
T = TypeVar("T")


def ledger_url(ledger_path: Path) -> str:
    return os.environ.get("BIDUI_LEDGER_URL") or f"sqlite:///{ledger_path}"


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's `begin` event start transactions (pysqlite's own BEGIN is deferred and
        # late: two writers would both read, then one fail with "database is locked").
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        # Writers take the write lock at BEGIN (and wait for it up to the busy timeout), so a
        # read-then-update sees the latest committed version; readers stay deferred and concurrent.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("writer") else "BEGIN")


@dataclass
class Ledger:
    engine: Engine
    url: str

    def __post_init__(self) -> None:
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(self.engine.execution_options(writer=True), expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits at the end of the block, or rolls back on any error."""
        with self._writer() as session, session.begin():
            yield session

    def retrying(self, work: Callable[[], T], waits: tuple[float, ...] = RECONNECT_WAITS) -> T:
        """Run a whole transaction, again if the database connection was lost or could not be made
        (a PostgreSQL restart): the failed attempt rolled back, so running it again is safe only for
        work that is one transaction and idempotent, like publishing a night."""
        for wait in (*waits, None):
            try:
                return work()
            except DBAPIError as e:
                if wait is None or not (e.connection_invalidated or isinstance(e, OperationalError)) or _no_wait_helps(e):
                    raise
                self.engine.dispose()  # drop pooled connections to the old server
                time.sleep(wait)
        raise AssertionError("unreachable")

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        self.engine.dispose()


def _no_wait_helps(e: DBAPIError) -> bool:
    """A full disk or a read-only home: SQLite says so with an OperationalError, as it says a lost
    connection, but trying again seconds later only delays the one line that tells the operator (a
    full disk during publish was tried five times, 15 s). (A ledger locked by another process is
    tried again: the other may be done by then.)"""
    from bidui.errors import EXIT_DISK_FULL, EXIT_READ_ONLY, classify

    found = None if e.connection_invalidated else classify(e, Path("."))
    return found is not None and found.code in (EXIT_DISK_FULL, EXIT_READ_ONLY)


def insert_many(conn: Connection, table: Table, rows: Sequence[dict] | Sequence[tuple],
                columns: Sequence[str] | None = None) -> None:
    """`conn.execute(table.insert(), rows)`, with the values turned for the driver column by column
    on SQLite. SQLAlchemy builds each row's parameters one at a time; on a large first night's
    publish (660 k register, clue, evidence and event rows) that was more than the inserting
    itself. Rows are dicts with the first row's keys, or tuples of `columns`; a column they leave
    out takes its scalar default. Elsewhere (PostgreSQL) SQLAlchemy's own path stays: it batches
    rows into multi-row VALUES."""
    if not rows:
        return
    keys = list(columns if columns is not None else rows[0])
    at: dict = {k: i for i, k in enumerate(keys)} if columns is not None else {k: k for k in keys}
    left_out = [c for c in table.columns if c.name not in at and c.default is not None]
    if conn.dialect.paramstyle != "qmark" or any(not c.default.is_scalar for c in left_out):
        conn.execute(table.insert(), rows if columns is None else [dict(zip(keys, r, strict=True)) for r in rows])
        return
    compiled = table.insert().compile(dialect=conn.dialect, column_keys=keys + [c.name for c in left_out])
    values = []
    for name in compiled.positiontup:
        column = table.c[name]
        process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        if name not in at:
            default = column.default.arg if process is None else process(column.default.arg)
            values.append([default] * len(rows))
            continue
        i = at[name]
        if process is not None and isinstance(column.type, Date | DateTime):
            # a night's rows share a few dates: each turned to text once (0.4 s of 400 k at the large size)
            texts: dict = {}
            values.append([texts[v] if v in texts else texts.setdefault(v, process(v)) for v in (r[i] for r in rows)])
        else:
            values.append([r[i] for r in rows] if process is None else [process(r[i]) for r in rows])
    conn.exec_driver_sql(compiled.string, list(zip(*values, strict=True)))


def upgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_ledger(url: str, migrate: bool = True) -> Ledger:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
        _sqlite_pragmas(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if migrate:
        upgrade(engine)
    return Ledger(engine, url)
