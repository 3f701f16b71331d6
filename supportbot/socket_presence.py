"""The web chat across several Rasa instances: a shared socket.io client manager, and a
registry in Redis of which chat sessions have a socket connected somewhere.

A browser's socket lives on one instance (nginx keeps it there), but its replies may be emitted
by another: the handoff relay runs on whichever instance the agent's call reached, and every
instance runs the watchers. With `client_manager_url` in the socket.io channel's credentials,
every emit goes through python-socketio's `AsyncRedisManager` (Redis pub/sub) and reaches the
room's sockets on every instance.

What pub/sub cannot say is whether anyone received it: the relay marks a message delivered only
when a socket of the customer is connected (docs/handoff.md), and a room's members are known
only to the instance holding them. So each instance writes its sockets' sessions to a Redis
sorted set per session (`<prefix><namespace>:<session>`, member `<instance>:<sid>`, score = until
when the entry holds), rewrites them every `ttl / 3` seconds and removes them on disconnect. An
instance that dies stops refreshing, and its entries lapse after `ttl` seconds; in that window a
message can be counted delivered to a socket that is gone (it is in the transcript, and the
widget reloads the conversation when it reconnects). docs/deploy.md#web-chat-across-instances.

python-socketio's Redis messages are pickles: the Redis server must be reachable only by the
assistant's instances.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Dict, Iterable, Optional, Set, Tuple

import socketio
from redis import asyncio as aioredis

logger = logging.getLogger(__name__)

CHANNEL = "supportbot-socketio"
PREFIX = "supportbot:sockets:"


def share(sio: Any, url: str, namespace: Optional[str] = None, ttl: float = 30) -> Presence:
    """Give `sio` (before any socket connects) a Redis client manager at `url`; returns the
    registry of connected sessions its channel keeps up to date."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"client_manager_url must be a redis:// URL, not {url!r}")
    sio.manager = socketio.AsyncRedisManager(url, channel=CHANNEL)
    sio.manager.set_server(sio)
    sio.manager_initialized = False
    return Presence(url, namespace, ttl)


class Presence:
    """Which sessions have a socket connected, on any instance sharing the Redis server."""

    def __init__(self, url: str, namespace: Optional[str] = None, ttl: float = 30) -> None:
        if ttl <= 0:
            raise ValueError(f"presence ttl must be > 0 s, got {ttl}")
        self.redis = aioredis.Redis.from_url(url)
        self.namespace, self.ttl = namespace or "/", ttl
        self.instance = uuid.uuid4().hex
        self.local: Dict[str, str] = {}  # socket id -> session, on this instance
        self._tasks: Set[asyncio.Task] = set()
        self._heartbeat: Optional[asyncio.Task] = None

    def key(self, session: str) -> str:
        return f"{PREFIX}{self.namespace}:{session}"

    def join(self, sid: str, session: str) -> None:
        """The socket `sid` of this instance is in `session`'s room (written in the background:
        until then `count` sees it locally)."""
        previous = self.local.get(sid)
        self.local[sid] = session
        if previous and previous != session:
            self._spawn(self.redis.zrem(self.key(previous), self._member(sid)))
        self._spawn(self._write([(sid, session)]))
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._refresh())

    def leave(self, sid: str) -> None:
        session = self.local.pop(sid, None)
        if session:
            self._spawn(self.redis.zrem(self.key(session), self._member(sid)))

    async def count(self, session: str) -> int:
        """How many sockets (at least) are in `session`'s room, on any instance."""
        local = sum(1 for s in self.local.values() if s == session)
        remote = await self.redis.zcount(self.key(session), time.time(), "+inf")
        return max(local, int(remote))

    def _member(self, sid: str) -> str:
        return f"{self.instance}:{sid}"

    async def _write(self, entries: Iterable[Tuple[str, str]]) -> None:
        until = time.time() + self.ttl
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid, session in entries:
                key = self.key(session)
                pipe.zadd(key, {self._member(sid): until})
                pipe.zremrangebyscore(key, "-inf", time.time())
                pipe.expire(key, int(self.ttl) + 1)
            await pipe.execute()

    async def _refresh(self) -> None:
        while self.local:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self._write(list(self.local.items()))
            except Exception:  # noqa: BLE001 -- Redis away for a moment: entries lapse, retried next time
                logger.exception("Could not refresh the connected chat sessions in Redis")

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Could not record a chat socket in Redis: %s", task.exception())
