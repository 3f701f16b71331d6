"""The registry of connected web chat sockets across Rasa instances (supportbot/socket_presence.py),
on the real Redis server: one instance sees another's sockets, a disconnect removes them at once,
and the entries of an instance that stopped refreshing (it died) lapse after the TTL."""
from __future__ import annotations

import asyncio
import uuid

import pytest
import socketio

from supportbot.socket_presence import Presence, share


def test_instances_see_each_others_sockets_until_they_leave_or_lapse(redis_url):
    session = f"web-{uuid.uuid4().hex}"

    async def scenario() -> None:
        a, b = Presence(redis_url, ttl=0.6), Presence(redis_url, ttl=0.6)
        a.join("sid-1", session)
        assert await a.count(session) == 1  # at once, before Redis has it
        await asyncio.sleep(0.05)
        assert await b.count(session) == 1
        a.leave("sid-1")
        await asyncio.sleep(0.05)
        assert await b.count(session) == 0

        a.join("sid-2", session)
        await asyncio.sleep(0.9)  # a refreshes every ttl / 3: still there after the TTL
        assert await b.count(session) == 1
        a._heartbeat.cancel()  # a dies: nobody refreshes or removes its entry
        await asyncio.sleep(0.8)
        assert await b.count(session) == 0
        await a.redis.delete(a.key(session))

    asyncio.run(scenario())


def test_share_gives_the_server_a_redis_manager_and_refuses_other_urls(redis_url):
    sio = socketio.AsyncServer(async_mode="sanic")
    presence = share(sio, redis_url)
    assert isinstance(sio.manager, socketio.AsyncRedisManager) and sio.manager.server is sio
    assert isinstance(presence, Presence)
    with pytest.raises(ValueError, match="client_manager_url must be a redis:// URL"):
        share(socketio.AsyncServer(async_mode="sanic"), "amqp://guest:guest@127.0.0.1:5672/")
