"""Rasa's SQL tracker store, with a cheaper save (docs/benchmarks.md#cost-per-turn).

Rasa 3.6's `SQLTrackerStore.save` reads the conversation twice: once to find the events new to
the event broker (`stream_events` retrieves and rebuilds the whole tracker, replaying every event
since the session started) and once more to count the stored ones. Both answer the same question,
so this store counts once and sends the broker and the table the same new events. With Rasa's SQL
event broker the new events go in one transaction instead of one commit per event.

The rows written, to the tracker table and to the broker, are the ones Rasa writes, in the same
order; the broker gets them after the tracker table has them, not before. Use it in endpoints.yml
as `tracker_store: type: supportbot.tracker_store.SQLTrackerStore`
with the usual SQL options.
"""
from __future__ import annotations

import itertools
import json
from typing import Any, Dict, List

from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import SQLTrackerStore as RasaSQLTrackerStore
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY


class SQLTrackerStore(RasaSQLTrackerStore):
    async def save(self, tracker: DialogueStateTracker) -> None:
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
        # Published once stored (Rasa publishes first): when the database is down the save fails
        # and the broker gets nothing the tracker lacks (docs/benchmarks.md#fault-matrix).
        if self.event_broker is not None:
            self._publish(new_events, tracker.sender_id)

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
