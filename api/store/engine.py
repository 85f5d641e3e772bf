"""The store's database: an engine for DATABASE_URL (or the embedded SQLite file) with migrations applied."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

log = logging.getLogger("api.store")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_FILE = "modelo.sqlite3"
_MIGRATION_LOCK = 0x6D6F64656C6F  # PostgreSQL advisory lock: replicas starting together migrate one at a time


def database_url(url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy URL: postgresql:// means psycopg 3; no URL means the SQLite file in DATA_DIR."""
    if not url:
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(data_dir / SQLITE_FILE).resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def describe(url: str) -> str:
    """The URL without its password or directory, safe to log.

    A SQLite URL names a file on the host; logs and errors carry its name only, as they do for
    model artifacts, so the deployment's directory layout never leaves the process.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return f"{parsed.drivername}:///{Path(parsed.database).name}"
    return parsed.render_as_string(hide_password=True)


def open_engine(url: str) -> Engine:
    """An engine that fails fast when the database is unreachable (the writer retries)."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        options["connect_args"] = {"check_same_thread": False, "timeout": 15}
    elif url.startswith("postgresql"):
        options["connect_args"] = {"connect_timeout": 3}
        options.update(pool_size=4, max_overflow=4, pool_timeout=5)
    engine = create_engine(url, **options)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """Processes sharing one SQLite file (workers, replicas on one volume) migrate one at a time.

    SQLite's own locking does not cover Alembic's check-then-create: two starts could both see an
    empty file and the second would fail creating what the first just made.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL: readers (feedback, audit, monitoring) never wait for the writer; NORMAL is durable across a
    # process crash (an OS crash may lose the last commits, as documented).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (concurrent starts take turns, on PostgreSQL and SQLite)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _sqlite_migration_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
