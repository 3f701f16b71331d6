"""The ticketing adapters under test, each against a real backend or its closest stand-in:
the embedded queue on a temporary SQLite file, a private Request Tracker 5 server (started
once per session, see rt_server.py), and the local fake Zendesk (fake_zendesk.py)."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
import rt_server
from fake_zendesk import FakeZendesk
from postgres_url import POSTGRES_URL
from ticket_backends import Backend, make_rt, make_zendesk, rt_comments, rt_reply

from supportbot.ticketing.sql import SqlTicketing


@pytest.fixture(scope="session")
def rt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not rt_server.installed():
        pytest.fail("Request Tracker 5 is not installed: run `make rt` (scripts/install-rt.sh)")
    with rt_server.running_rt(tmp_path_factory.mktemp("rt")) as url:
        yield url


@pytest.fixture
def fake_zendesk() -> Iterator[FakeZendesk]:
    fake = FakeZendesk().start()
    yield fake
    fake.stop()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'supportbot.db'}"


@pytest.fixture(params=["sqlite", "postgres", "rt", "zendesk"])
def backend(request: pytest.FixtureRequest, db_url: str) -> Backend:
    if request.param in ("sqlite", "postgres"):  # the embedded queue, on either database
        adapter = SqlTicketing(db_url if request.param == "sqlite" else POSTGRES_URL)
        return Backend(adapter, adapter.set_status, lambda tid: len(adapter.comments(tid)),
                       lambda tid, text, public: adapter.reply(tid, "Dana", text, public=public,
                                                               idempotency_key=uuid.uuid4().hex), "Dana")
    if request.param == "rt":
        adapter = make_rt(request.getfixturevalue("rt_url"), db_url)
        return Backend(adapter, adapter.set_status, lambda tid: rt_comments(adapter, tid),
                       lambda tid, text, public: rt_reply(adapter, tid, text, public), rt_server.ROOT_NAME)
    fake = request.getfixturevalue("fake_zendesk")
    return Backend(make_zendesk(fake.url, db_url), lambda tid, status: fake.set_status(int(tid), status),
                   lambda tid: len(fake.comments[int(tid)]) - 1,
                   lambda tid, text, public: fake.reply(int(tid), "Dana", text, public), "Dana")


@pytest.fixture
def customer() -> str:
    """A fresh customer email per test, so tests on a shared RT never see each other's tickets."""
    return f"cust-{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture
def key() -> Callable[[], str]:
    return lambda: uuid.uuid4().hex
