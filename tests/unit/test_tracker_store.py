"""supportbot.tracker_store.SQLTrackerStore writes the rows Rasa's SQLTrackerStore writes, to its
table and to the SQL event broker, turn after turn and across a session restart."""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import SQLTrackerStore as RasaSQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered

from supportbot.tracker_store import SQLTrackerStore

DOMAIN = Domain.from_yaml("""
intents: [greet]
slots:
  email: {type: text, mappings: [{type: custom}]}
responses:
  utter_greet: [{text: hi}]
""")


def turn(text: str, at: float) -> list:
    return [UserUttered(text, {"name": "greet", "confidence": 1.0}, timestamp=at),
            SlotSet("email", f"{text}@example.com", timestamp=at + 0.1),
            ActionExecuted("utter_greet", timestamp=at + 0.2), BotUttered("hi", timestamp=at + 0.3),
            ActionExecuted("action_listen", timestamp=at + 0.4)]


async def converse(store_class: type, tmp: Path) -> None:
    broker = SQLEventBroker(db=str(tmp / "events.db"))
    store = store_class(DOMAIN, dialect="sqlite", db=str(tmp / "tracker.db"), event_broker=broker)
    tracker = store.init_tracker("alice")
    tracker.update(ActionExecuted("action_listen", timestamp=999.0))
    await store.save(tracker)
    for index, text in enumerate(["one", "two", "three"]):
        tracker = await store.retrieve("alice")
        for event in turn(text, 1000.0 + index):
            tracker.update(event)
        await store.save(tracker)
    tracker = await store.retrieve("alice")  # a new session: only its events are counted from here
    for event in [ActionExecuted("action_session_start", timestamp=2000.0), SessionStarted(timestamp=2000.1),
                  ActionExecuted("action_listen", timestamp=2000.2), *turn("four", 2001.0)]:
        tracker.update(event)
    await store.save(tracker)
    await store.save(await store.retrieve("alice"))  # nothing new: nothing written


def rows(path: Path, query: str) -> list:
    with sqlite3.connect(path) as connection:
        return connection.execute(query).fetchall()


def test_same_rows_as_rasas_store(tmp_path: Path) -> None:
    (tmp_path / "rasa").mkdir()
    (tmp_path / "ours").mkdir()
    asyncio.run(converse(RasaSQLTrackerStore, tmp_path / "rasa"))
    asyncio.run(converse(SQLTrackerStore, tmp_path / "ours"))
    events = "SELECT sender_id, type_name, timestamp, intent_name, action_name, data FROM events ORDER BY id"
    broker = "SELECT sender_id, data FROM events ORDER BY id"
    expected = rows(tmp_path / "rasa" / "tracker.db", events)
    assert len(expected) == 1 + 3 * 5 + 3 + 5
    assert rows(tmp_path / "ours" / "tracker.db", events) == expected
    assert rows(tmp_path / "ours" / "events.db", broker) == rows(tmp_path / "rasa" / "events.db", broker)


def test_an_outage_is_waited_out_then_reported_and_never_hidden_in_memory(tmp_path: Path) -> None:
    """The database goes away for real: its folder is moved, so SQLite cannot open the file."""
    import time

    import pytest

    from supportbot.tracker_store import FailSafeTrackerStore, TrackerStoreUnavailable

    folder, away = tmp_path / "db", tmp_path / "db-away"
    folder.mkdir()

    async def scenario() -> None:
        store = SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(folder / "tracker.db"), outage_wait_seconds=5)
        tracker = store.init_tracker("alice")
        for event in turn("one", 1000.0):
            tracker.update(event)
        await store.save(tracker)
        wrapped = FailSafeTrackerStore(store)

        # Back within the wait: the read waits for it and returns the whole conversation.
        folder.rename(away)
        asyncio.get_running_loop().call_later(0.5, away.rename, folder)
        kinds = [e.type_name for e in tracker.events]
        assert [e.type_name for e in (await wrapped.retrieve("alice")).events] == kinds

        # Longer than the wait: an error, not Rasa's empty in-memory conversation.
        store.outage_wait = 0.5
        folder.rename(away)
        started = time.monotonic()
        with pytest.raises(TrackerStoreUnavailable):
            await wrapped.retrieve("alice")
        assert time.monotonic() - started >= 0.4  # it waited
        tracker.update(UserUttered("two", {"name": "greet", "confidence": 1.0}, timestamp=1001.0))
        with pytest.raises(TrackerStoreUnavailable):
            await wrapped.save(tracker)  # during the same outage: one try, no second wait
        assert await wrapped.fallback_tracker_store.retrieve("alice") is None  # nothing kept in memory

        away.rename(folder)
        await wrapped.save(tracker)  # the database is back: the save goes through, once
        await wrapped.save(tracker)
        stored = await store.retrieve("alice")
        assert [e.type_name for e in stored.events] == [e.type_name for e in tracker.events] != kinds

    asyncio.run(scenario())
