"""Shared fixtures: the repository paths, the trained model the end-to-end tests load and the
store databases; the plugins every suite loads. (Where helper modules are imported from is
`pythonpath` in pyproject.toml.)"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy
from postgres_url import POSTGRES_URL
from rabbitmq_url import RABBITMQ_URL
from redis_url import REDIS_URL

# The assistant's stack, one per session for tests/e2e and tests/web; the `slow` mark.
pytest_plugins = ["plugins.stack", "plugins.slow_tests"]

REPO = Path(__file__).resolve().parent.parent
# SUPPORTBOT_TEST_MODEL points the suites at another trained model (e.g. one trained elsewhere).
MODEL = Path(os.environ.get("SUPPORTBOT_TEST_MODEL") or REPO / "models" / "supportbot.tar.gz")

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def model() -> Path:
    if not MODEL.exists():
        pytest.fail(f"No trained model at {MODEL}: run `make train` (make test does it first).")
    return MODEL


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    """Each store test runs on SQLite and on the real Postgres server. A missing Postgres fails
    the test rather than skipping it, so a green run always means both were tested."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    try:
        sqlalchemy.create_engine(POSTGRES_URL).connect().close()
    except sqlalchemy.exc.OperationalError as error:
        pytest.fail(f"Postgres unreachable at {POSTGRES_URL} (set SUPPORTBOT_TEST_POSTGRES_URL): {error}")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis server (tests/redis_url.py); missing, the test fails rather than skips."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis unreachable at {REDIS_URL} (set SUPPORTBOT_TEST_REDIS_URL): {error}")
    return REDIS_URL


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The real RabbitMQ server (tests/rabbitmq_url.py); missing, the test fails rather than skips."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(RABBITMQ_URL)
    try:
        socket.create_connection((parts.hostname, parts.port or 5672), timeout=2).close()
    except OSError as error:
        pytest.fail(f"RabbitMQ unreachable at {parts.hostname}:{parts.port} "
                    f"(set SUPPORTBOT_TEST_RABBITMQ_URL): {error}")
    return RABBITMQ_URL
