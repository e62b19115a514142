"""Database engine and sessions: SQLite (WAL, one file) by default, PostgreSQL through psycopg 3."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from erp.settings import Settings, get_settings

_engine: Engine | None = None
_read_engine: Engine | None = None
_write_engine: Engine | None = None
_sessions: sessionmaker[Session] | None = None


def build_engine(settings: Settings) -> Engine:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
            hide_parameters=True,  # a failed statement's log names no value (emails, logins, hashes)
        )
        _configure_sqlite(engine)
        return engine
    # pool_pre_ping: a database restart must not cost a 500. The hot reads (services/staff_reads.py)
    # use their own connections, so the extra round trip falls on writes only.
    # No overflow: an overflow connection is closed when it comes back, so under steady load every
    # request past pool_size paid a new connection (a backend fork). Waiting for a pooled one is cheaper.
    # Few connections: one process on a couple of cores is bound by Python CPU, and more threads in
    # transactions at once only add GIL hand-offs (measured with the ORM write path: 20 -> ~190,
    # 8 -> ~215, 4 -> ~240 POST/s; with the Core path, 2, 4 and 8 all give 440-520 POST/s).
    return create_engine(
        url, pool_size=4, max_overflow=0, pool_pre_ping=True, pool_recycle=1800, hide_parameters=True
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Autocommit at the driver level so that SQLAlchemy's "begin" below decides the lock mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # Writers take the lock up front: a deferred read-then-write transaction can fail with
        # SQLITE_BUSY at once instead of waiting, which would turn a race into a 500.
        immediate = conn.get_execution_options().get("erp_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def get_engine() -> Engine:
    global _engine, _sessions
    if _engine is None:
        _engine = build_engine(get_settings())
        _sessions = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def read_engine() -> Engine:
    """For single-statement reads: autocommit on PostgreSQL (no BEGIN/ROLLBACK round trips)."""
    global _read_engine
    if _read_engine is None:
        engine = get_engine()
        is_sqlite = engine.dialect.name == "sqlite"
        _read_engine = engine if is_sqlite else engine.execution_options(isolation_level="AUTOCOMMIT")
    return _read_engine


def _writer() -> Engine:
    global _write_engine
    if _write_engine is None:
        _write_engine = get_engine().execution_options(erp_write=True)
    return _write_engine


def reset_engine() -> None:
    """Forget the engine (tests and CLI commands that change settings)."""
    global _engine, _sessions, _read_engine, _write_engine
    _read_engine = _write_engine = None
    if _engine is not None:
        _engine.dispose()
    _engine = None
    _sessions = None


def _factory() -> sessionmaker[Session]:
    if _sessions is None:
        get_engine()
    return _sessions  # type: ignore[return-value]


@contextmanager
def read_session() -> Iterator[Session]:
    with _factory()() as session:
        yield session


# SQLite has one writer at a time; threads of this process queue here (woken in turn) rather than
# in SQLite's busy handler, which polls with sleeps of up to 100 ms and gives long latency tails.
# Other processes (the CLI) are still covered by busy_timeout.
_sqlite_writer = threading.Lock()


@contextmanager
def write_session() -> Iterator[Session]:
    """A transaction that intends to write: committed on success, rolled back on any exception."""
    factory = _factory()
    engine = _writer()
    lock = _sqlite_writer if engine.dialect.name == "sqlite" else nullcontext()
    with lock, factory(bind=engine) as session, session.begin():
        yield session


@contextmanager
def write_connection() -> Iterator[Connection]:
    """write_session without the ORM, for the hot write path (registration): Core statements only,
    no unit of work, identity map or attribute instrumentation, which cost most of its CPU time."""
    engine = _writer()
    lock = _sqlite_writer if engine.dialect.name == "sqlite" else nullcontext()
    with lock, engine.begin() as conn:
        yield conn
