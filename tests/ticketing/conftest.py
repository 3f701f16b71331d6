"""The ticketing adapters under test, each against a real backend or its closest stand-in:
the embedded queue on a temporary SQLite file, a private Request Tracker 5 server (started
once per session, see rt_server.py), and the local fake Zendesk (fake_zendesk.py)."""
from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import rt_server  # noqa: E402
from fake_zendesk import FakeZendesk  # noqa: E402

from supportbot.ticketing import TicketingAdapter  # noqa: E402
from supportbot.ticketing.ledger import KeyLedger  # noqa: E402
from supportbot.ticketing.rt import RtTicketing  # noqa: E402
from supportbot.ticketing.sql import SqlTicketing  # noqa: E402
from supportbot.ticketing.zendesk import ZendeskTicketing  # noqa: E402


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


def make_rt(url: str, db_url: str, **kwargs) -> RtTicketing:
    return RtTicketing(url, rt_server.USER, rt_server.PASSWORD, KeyLedger(db_url), **kwargs)


def make_zendesk(url: str, db_url: str, **kwargs) -> ZendeskTicketing:
    kwargs.setdefault("backoff", 0.01)
    return ZendeskTicketing(url, "agent@example.com", "test-token", KeyLedger(db_url), **kwargs)


@dataclass
class Backend:
    """An adapter, plus what an agent would do in the backend's own UI."""

    adapter: TicketingAdapter
    set_status: Callable[[str, str], None]
    comments: Callable[[str], int]  # how many comments the ticket has, first message not counted


def rt_comments(adapter: RtTicketing, ticket_id: str) -> int:
    history = adapter.api.request("GET", f"/ticket/{ticket_id}/history",
                                  params={"fields": "Type", "per_page": "100"})
    return sum(1 for item in history["items"] if item["Type"] == "Comment")


@pytest.fixture(params=["sqlite", "rt", "zendesk"])
def backend(request: pytest.FixtureRequest, db_url: str) -> Backend:
    if request.param == "sqlite":
        adapter = SqlTicketing(db_url)
        return Backend(adapter, adapter.set_status, lambda tid: len(adapter.comments(tid)))
    if request.param == "rt":
        adapter = make_rt(request.getfixturevalue("rt_url"), db_url)
        return Backend(adapter, adapter.set_status, lambda tid: rt_comments(adapter, tid))
    fake = request.getfixturevalue("fake_zendesk")
    return Backend(make_zendesk(fake.url, db_url), lambda tid, status: fake.set_status(int(tid), status),
                   lambda tid: len(fake.comments[int(tid)]) - 1)


@pytest.fixture
def customer() -> str:
    """A fresh customer email per test, so tests on a shared RT never see each other's tickets."""
    return f"cust-{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture
def key() -> Callable[[], str]:
    return lambda: uuid.uuid4().hex
