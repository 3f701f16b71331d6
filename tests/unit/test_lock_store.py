"""The conversation lock across Rasa instances, on the real Redis server (tests/redis_url.py).

Rasa 3.6's RedisLockStore issues tickets by get, modify, set (RasaHQ/rasa #9213): the first
test forces the two instances' steps to interleave and shows both holding the lock. The
others prove supportbot.lock_store.AtomicRedisLockStore: processes contending for one
conversation never hold it at once and are served in the order their tickets were issued."""
from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
import uuid
from typing import Any, Dict, List

import pytest
import redis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LockError, LockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

from supportbot.lock_store import AtomicRedisLockStore, _connection_kwargs


def _rasa_store(redis_url: str) -> Dict[str, Any]:
    return _connection_kwargs(None, {"url": redis_url})


class InterleavedRedisLockStore(RedisLockStore):
    """Rasa's store, whose first read waits until the other instance has read too: the
    schedule two instances hit when their messages arrive at the same moment."""

    def __init__(self, barrier: threading.Barrier, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.barrier = barrier

    def get_lock(self, conversation_id: str) -> TicketLock:
        lock = super().get_lock(conversation_id)
        if self.barrier is not None:
            barrier, self.barrier = self.barrier, None
            barrier.wait(timeout=10)
        return lock


def test_rasa_redis_lock_store_lets_two_instances_hold_one_conversation(redis_url: str) -> None:
    conversation = f"race-{uuid.uuid4().hex}"
    barrier = threading.Barrier(2)
    stores = [InterleavedRedisLockStore(barrier, **_rasa_store(redis_url)) for _ in range(2)]
    tickets: List[int] = [-1, -1]

    def issue(i: int) -> None:
        tickets[i] = stores[i].issue_ticket(conversation)

    threads = [threading.Thread(target=issue, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)

    # Both read the empty queue, both took ticket 0, and each sees its own ticket served.
    assert tickets == [0, 0]
    held = [asyncio.run(store._acquire_lock(conversation, ticket, 0.01))
            for store, ticket in zip(stores, tickets)]
    assert all(not lock.is_locked(0) for lock in held)
    stores[0].delete_lock(conversation)


class RecordingLockStore(AtomicRedisLockStore):
    """Logs in Redis each ticket as it is served, and whether another holder was inside."""

    async def _acquire_lock(self, conversation_id: str, ticket: int, wait: float) -> TicketLock:
        lock = await super()._acquire_lock(conversation_id, ticket, wait)
        if self.red.incr(f"{conversation_id}:holders") != 1:
            self.red.rpush(f"{conversation_id}:overlaps", ticket)
        self.red.rpush(f"{conversation_id}:served", ticket)
        return lock


def _contend(redis_url: str, conversation: str, start_at: float, turns: int) -> None:
    """One Rasa instance: two messages at a time for the conversation, `turns` each."""
    store = RecordingLockStore(url=redis_url, poll_interval=0.005)

    async def messages() -> None:
        for _ in range(turns):
            async with store.lock(conversation, lock_lifetime=30):
                await asyncio.sleep(0.002)  # the turn
                store.red.decr(f"{conversation}:holders")

    async def main() -> None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(messages(), messages())

    asyncio.run(main())


def test_atomic_lock_store_serves_two_processes_one_at_a_time_in_ticket_order(redis_url: str) -> None:
    conversation = f"atomic-{uuid.uuid4().hex}"
    turns = 25
    context = multiprocessing.get_context("fork")
    start_at = time.time() + 0.5
    workers = [context.Process(target=_contend, args=(redis_url, conversation, start_at, turns))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    red = redis.Redis.from_url(redis_url)
    try:
        served = [int(t) for t in red.lrange(f"{conversation}:served", 0, -1)]
        assert red.lrange(f"{conversation}:overlaps", 0, -1) == []
        assert len(served) == 4 * turns
        assert served == sorted(served)  # tickets are numbered as they are issued
        assert not red.exists(f"lock:{conversation}")  # the last one out removed the lock
    finally:
        red.delete(*(f"{conversation}:{k}" for k in ("served", "overlaps", "holders", "seq")),
                   f"lock:{conversation}:seq")


def test_an_expired_holder_cannot_remove_the_next_ticket(redis_url: str) -> None:
    """With Rasa's store numbers restart at 0 once the queue is empty, so a holder that
    outlived its ticket removed the newcomer's ticket 0 on its way out."""
    conversation = f"expiry-{uuid.uuid4().hex}"
    store = AtomicRedisLockStore(url=redis_url)
    slow = store.issue_ticket(conversation, lock_lifetime=0.05)
    time.sleep(0.1)
    newcomer = store.issue_ticket(conversation, lock_lifetime=30)
    assert newcomer != slow
    assert store.position(conversation, slow) == -1
    store.cleanup(conversation, slow)
    assert store.position(conversation, newcomer) == 0
    store.cleanup(conversation, newcomer)
    assert store.get_lock(conversation) is None
    store.red.delete(f"lock:{conversation}:seq")


def test_a_waiting_ticket_that_expires_raises_lock_error(redis_url: str) -> None:
    conversation = f"waiting-{uuid.uuid4().hex}"
    store = AtomicRedisLockStore(url=redis_url, poll_interval=0.01)
    holder = store.issue_ticket(conversation, lock_lifetime=30)
    waiter = store.issue_ticket(conversation, lock_lifetime=0.05)
    assert store.is_someone_waiting(conversation)
    with pytest.raises(LockError):
        asyncio.run(store._acquire_lock(conversation, waiter, 1))
    store.cleanup(conversation, holder)
    store.red.delete(f"lock:{conversation}:seq")


def test_endpoints_yml_configures_it(redis_url: str) -> None:
    config = EndpointConfig(url=redis_url.rsplit("/", 1)[0] + "/3",
                            type="supportbot.lock_store.AtomicRedisLockStore",
                            key_prefix="supportbot", poll_interval=0.02)
    store = LockStore.create(config)
    assert isinstance(store, AtomicRedisLockStore)
    assert store.red.connection_pool.connection_kwargs["db"] == 3
    assert store.key_prefix == "supportbot:lock:"
    assert store.poll_interval == 0.02


def test_bad_configuration_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="redis://host:port/db"):
        AtomicRedisLockStore(url="http://127.0.0.1:6379")
    with pytest.raises(ValueError, match="poll_interval must be > 0"):
        AtomicRedisLockStore(url="redis://127.0.0.1:6379/0", poll_interval=0)
