"""The learning collector reading Rasa's pika event broker (the production profile's), on the
real RabbitMQ server: messages as Rasa publishes them (a JSON event with its sender_id, on a
durable queue) become turns, each once, and a message that is not an event is skipped."""
from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest
from test_learning_collector import action, user

from supportbot.learning.collector import Collector
from supportbot.learning.store import LearningStore


def publish(url: str, queue: str, bodies) -> None:
    async def main() -> None:
        connection = await aio_pika.connect_robust(url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(queue, durable=True)  # as Rasa's PikaEventBroker declares it
            for body in bodies:
                await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)

    asyncio.run(main())


def delete(url: str, queue: str) -> None:
    async def main() -> None:
        connection = await aio_pika.connect_robust(url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(queue)

    asyncio.run(main())


def test_rasa_events_from_rabbitmq_become_turns_once(rabbitmq_url, tmp_path):
    queue, sender = f"supportbot_test_{uuid.uuid4().hex[:8]}", f"c-{uuid.uuid4().hex}"
    events = [user("hello", "greet", 0.95), user("my thingy is broken", "nlu_fallback", 0.4,
                                                 [("nlu_fallback", 0.4), ("report_bug", 0.35)]),
              action("action_handoff")]
    publish(rabbitmq_url, queue, [json.dumps({"sender_id": sender, **e}).encode() for e in events] + [b"not json"])
    store = LearningStore(f"sqlite:///{tmp_path / 'learning.db'}")
    collector = Collector(store, f"{rabbitmq_url}?queue={queue}", f"sqlite:///{tmp_path / 'feedback.db'}")
    try:
        assert collector.run_once(batch=2) == 4  # two batches, each acknowledged after its commit
        hello, broken = store.turns(sender)
        assert hello.text == "hello" and broken.fell_back
        assert broken.reasons == ["fallback", "handoff_followed", "low_confidence"]
        assert hello.reasons == ["handoff_followed"]
        # A redelivered event (a crash between the commit and the acknowledgement) adds nothing.
        publish(rabbitmq_url, queue, [json.dumps({"sender_id": sender, **events[0]}).encode()])
        assert collector.run_once() == 1 and len(store.turns(sender)) == 2
        assert collector.run_once() == 0
    finally:
        collector.rabbitmq.close()
        delete(rabbitmq_url, queue)


def test_a_rabbitmq_url_needs_its_queue(tmp_path):
    with pytest.raises(ValueError, match=r"\?queue=NAME"):
        Collector(LearningStore(f"sqlite:///{tmp_path / 'l.db'}"), "amqp://guest:guest@127.0.0.1:5672/",
                  f"sqlite:///{tmp_path / 'f.db'}")
