"""Real billing servers for the tests: one on a temp SQLite file, one on Postgres.

Each server is `python -m supportbot.billing --reset` in a subprocess, so the tests exercise
exactly what a developer runs, with the API keys of `billing_api.API_KEYS`.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from billing_api import ASSISTANT_KEY, billing_process
from postgres_url import POSTGRES_URL as DEFAULT_POSTGRES_URL
from sqlalchemy.engine import Engine

from supportbot import processes
from supportbot.billing.models import make_engine
from supportbot.clients.billing import BillingClient

POSTGRES_URL = os.environ.get("BILLING_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@dataclass(frozen=True)
class BillingServer:
    url: str  # base URL of the running service
    db_url: str  # its database, for tests that check what was stored (e.g. the outbox)
    log: Path  # its log file


def _serve(db_url: str, log_dir: Path) -> Iterator[BillingServer]:
    server = billing_process(db_url, log_dir)
    with processes.running([server], timeout=60):
        yield BillingServer(server.url, db_url, log_dir / "billing.log")


@pytest.fixture(scope="session")
def billing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BillingServer]:
    """A billing service on a fresh SQLite database."""
    tmp = tmp_path_factory.mktemp("billing-sqlite")
    yield from _serve(f"sqlite:///{tmp / 'billing.db'}", tmp)


@pytest.fixture(scope="session")
def billing_url(billing_server: BillingServer) -> str:
    """Base URL of a billing service on a fresh SQLite database."""
    return billing_server.url


@pytest.fixture(scope="session")
def postgres_billing_url(postgres_billing_server: BillingServer) -> str:
    return postgres_billing_server.url


@pytest.fixture(scope="session")
def postgres_billing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BillingServer]:
    """A billing service on Postgres, in a schema of its own dropped afterwards."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(POSTGRES_URL, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"Postgres unreachable at {POSTGRES_URL}: {str(exc).strip()}")
    admin.autocommit = True
    # A fresh schema per run keeps repeated and parallel runs apart.
    schema = f"billing_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    try:
        separator = "&" if "?" in POSTGRES_URL else "?"
        yield from _serve(f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}",
                          tmp_path_factory.mktemp("billing-postgres"))
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_billing_server(request: pytest.FixtureRequest) -> BillingServer:
    """Runs a test once per database backend."""
    name = "billing_server" if request.param == "sqlite" else "postgres_billing_server"
    return request.getfixturevalue(name)


@pytest.fixture
def any_billing_url(any_billing_server: BillingServer) -> str:
    """Runs a test once per database backend."""
    return any_billing_server.url


@pytest.fixture(scope="module")
def client(billing_url: str) -> BillingClient:
    """An assistant's client that fails at once instead of retrying: the tests look at each
    answer."""
    return BillingClient(billing_url, timeout=10, retries=0, api_key=ASSISTANT_KEY)


@pytest.fixture(scope="module")
def engine(billing_server: BillingServer) -> Iterator[Engine]:
    """The SQLite billing server's database, for reading what the service wrote."""
    engine = make_engine(billing_server.db_url)
    yield engine
    engine.dispose()
