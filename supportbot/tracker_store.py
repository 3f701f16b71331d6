"""Rasa's SQL tracker store, with a cheaper save (docs/benchmarks.md#cost-per-turn) and a database
outage that ends a turn with a clear message instead of a forgotten conversation
(docs/deploy.md#when-the-database-is-down).

Rasa 3.6's `SQLTrackerStore.save` reads the conversation twice: once to find the events new to
the event broker (`stream_events` retrieves and rebuilds the whole tracker, replaying every event
since the session started) and once more to count the stored ones. Both answer the same question,
so this store counts once and sends the broker and the table the same new events. With Rasa's SQL
event broker the new events go in one transaction instead of one commit per event.

The rows written, to the tracker table and to the broker, are the ones Rasa writes, in the same
order; the broker gets them after the tracker table has them, not before. Use it in endpoints.yml
as `tracker_store: type: supportbot.tracker_store.SQLTrackerStore`
with the usual SQL options, plus `outage_wait_seconds` (default 15).

When the database does not answer (refused, dropped, restarting), a read or save is tried again
with a growing pause for up to `outage_wait_seconds`: a database restart only slows the turns it
meets. After that the store raises `TrackerStoreUnavailable`, and calls during the same outage fail
at their first try, until one succeeds. Rasa wraps every tracker store in its `FailSafeTrackerStore`,
which on any error carries on with an empty in-memory conversation: the customer would be answered
as a stranger and the turn never stored. `install_outage_handling()` (called by
`supportbot.rasa_run`) lets `TrackerStoreUnavailable` through that wrapper, to the channels, which
tell the customer (`supportbot.channels.store_outage_told`).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, TypeVar

from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import FailSafeTrackerStore as RasaFailSafeTrackerStore
from rasa.core.tracker_store import InMemoryTrackerStore, TrackerStore
from rasa.core.tracker_store import SQLTrackerStore as RasaSQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from sqlalchemy.exc import InterfaceError, OperationalError

logger = logging.getLogger(__name__)

T = TypeVar("T")
# What a database that is down, restarting or dropped the connection raises through SQLAlchemy.
UNREACHABLE = (OperationalError, InterfaceError)
FIRST_PAUSE, LONGEST_PAUSE = 0.2, 2.0


class TrackerStoreUnavailable(Exception):
    """The tracker store's database did not answer within the outage wait."""


class SQLTrackerStore(RasaSQLTrackerStore):
    def __init__(self, *args: Any, outage_wait_seconds: float = 15.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outage_wait = float(outage_wait_seconds)
        self._given_up = False  # an outage outlasted the wait: fail fast until the database answers

    async def _reachable(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + (0 if self._given_up else self.outage_wait)
        pause = FIRST_PAUSE
        while True:
            try:
                result = await call()
            except UNREACHABLE as error:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._given_up = True
                    raise TrackerStoreUnavailable(
                        f"{what}: the tracker database has not answered for {self.outage_wait:g} s "
                        f"({type(error.orig or error).__name__})") from error
                logger.warning("Tracker database unreachable (%s); trying again in %.1f s", what,
                               min(pause, remaining))
                await asyncio.sleep(min(pause, remaining))  # the last try is at the deadline
                pause = min(pause * 2, LONGEST_PAUSE)
                continue
            if self._given_up:
                logger.info("Tracker database answers again")
                self._given_up = False
            return result

    async def retrieve(self, sender_id: str) -> Optional[DialogueStateTracker]:
        return await self._reachable("retrieve", lambda: super(SQLTrackerStore, self).retrieve(sender_id))

    async def retrieve_full_tracker(self, conversation_id: str) -> Optional[DialogueStateTracker]:
        return await self._reachable(
            "retrieve", lambda: super(SQLTrackerStore, self).retrieve_full_tracker(conversation_id))

    async def keys(self) -> Iterable[str]:
        return await self._reachable("keys", lambda: super(SQLTrackerStore, self).keys())

    async def save(self, tracker: DialogueStateTracker) -> None:
        # A failed commit stored nothing, so trying again counts the stored events afresh.
        new_events = await self._reachable("save", lambda: self._store_new_events(tracker))
        # Published once stored (Rasa publishes first): when the database is down the save fails
        # and the broker gets nothing the tracker lacks (docs/benchmarks.md#fault-matrix).
        if self.event_broker is not None:
            self._publish(new_events, tracker.sender_id)

    async def _store_new_events(self, tracker: DialogueStateTracker) -> List[Event]:
        with self.session_scope() as session:
            stored = self._event_query(session, tracker.sender_id, fetch_events_from_all_sessions=False).count()
            new_events = list(itertools.islice(tracker.events, stored, len(tracker.events)))
            for event in new_events:
                data = event.as_dict()
                session.add(self.SQLEvent(
                    sender_id=tracker.sender_id, type_name=event.type_name, timestamp=data.get("timestamp"),
                    intent_name=data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
                    action_name=data.get("name"), data=json.dumps(data)))
            session.commit()
        return new_events

    def _publish(self, events: List[Event], sender_id: str) -> None:
        bodies: List[Dict[str, Any]] = [{"sender_id": sender_id, **event.as_dict()} for event in events]
        broker = self.event_broker
        if isinstance(broker, SQLEventBroker):
            with broker.session_scope() as session:
                session.add_all([broker.SQLBrokerEvent(sender_id=sender_id, data=json.dumps(body))
                                 for body in bodies])
                session.commit()
            return
        for body in bodies:
            broker.publish(body)


class FailSafeTrackerStore(RasaFailSafeTrackerStore):
    """Rasa's wrapper, except that an outage (`TrackerStoreUnavailable`) reaches the caller instead
    of an in-memory stand-in; other errors fall back as in Rasa."""

    def on_tracker_store_error(self, error: Exception) -> None:
        if isinstance(error, TrackerStoreUnavailable):
            raise error
        super().on_tracker_store_error(error)

    def on_tracker_store_retrieve_error(self, error: Exception) -> None:
        if isinstance(error, TrackerStoreUnavailable):
            raise error
        super().on_tracker_store_retrieve_error(error)


def _create_tracker_store(store: Optional[TrackerStore], domain: Domain) -> TrackerStore:
    """`rasa.core.agent.Agent._create_tracker_store` with the wrapper above."""
    if store is not None:
        store.domain = domain
        return FailSafeTrackerStore(store)
    return FailSafeTrackerStore(InMemoryTrackerStore(domain))


def install_outage_handling() -> None:
    """Every Agent the Rasa server makes from now on wraps its tracker store in
    `FailSafeTrackerStore` above (Rasa 3.6 has no setting for its wrapper)."""
    from rasa.core.agent import Agent

    Agent._create_tracker_store = staticmethod(_create_tracker_store)
