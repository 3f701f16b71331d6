"""How every part of supportbot opens a database: one `make_engine` for the assistant's own
store, the ticket queue, the Slack dedup table and the reference billing service.

A URL is any SQLAlchemy URL. SQLite files get their folder created, and their connections are
set up for servers that do database work in worker threads; any other database (Postgres) is
opened as the URL says, with a liveness check so a connection the server dropped is replaced
instead of failing the next request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine, make_url

# Writers queue behind SQLite's single write lock for this long before "database is locked"
# (sqlite3's own default is 5 s, too short when concurrent requests all write).
SQLITE_BUSY_TIMEOUT_SECONDS = 30


def make_engine(db_url: str) -> Engine:
    """A 2.0-style engine for `db_url`; for a SQLite file, also create its parent folder."""
    url = make_url(db_url)
    return create_engine(url, future=True, pool_pre_ping=True, **_sqlite_options(url))


def _sqlite_options(url: URL) -> Dict[str, Any]:
    if not url.drivername.startswith("sqlite"):
        return {}
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # Requests run in worker threads, so a connection may be used by another thread than the
    # one that opened it (SQLAlchemy's pool hands each to one thread at a time).
    return {"connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS}}
