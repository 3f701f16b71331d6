"""A Redis lock store whose every step is atomic, for Rasa instances that share conversations.

Rasa serialises the messages of one conversation with a ticket lock: each message takes the
next ticket and waits until it is the one served. Rasa 3.6's `RedisLockStore` keeps the lock as
one JSON value and changes it by get, modify in Python, set (RasaHQ/rasa #9213): two instances
issuing a ticket at once both read the same queue, both take the same number, and both hold the
lock; a `finish_serving` or `cleanup` racing an `issue_ticket` drops the newcomer's ticket
(tests/unit/test_lock_store.py shows both). Here each step is one Lua script, run by Redis
with nothing in between, and ticket numbers come from a counter that does not restart when the
queue empties, so a holder whose ticket expired cannot remove a newcomer's ticket.

The value keeps Rasa's format (a `TicketLock` dump), so `get_lock` and `is_someone_waiting`
still work; tickets still expire after `lock_lifetime`, measured on Redis's clock (the scripts
read TIME, which needs Redis 5 or later).

Configured in endpoints.yml (profiles/production/endpoints.yml; docs/deploy.md):

    lock_store:
      type: supportbot.lock_store.AtomicRedisLockStore
      url: redis://127.0.0.1:6379/1   # or a host name, with port/db/password keys as Rasa's
      key_prefix: supportbot           # optional, alphanumeric
      poll_interval: 0.05              # seconds between a waiting message's checks
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, Optional
from urllib.parse import urlsplit

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

# Counters outlive the queue so numbers never repeat while a slow holder may still clean up.
SEQUENCE_TTL_MS = 24 * 3600 * 1000

_COMMON = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function load(key, at)
  local raw = redis.call('GET', key)
  local tickets = {}
  if raw then
    for _, encoded in ipairs(cjson.decode(raw).tickets or {}) do
      local ticket = cjson.decode(encoded)
      if ticket.expires >= at then table.insert(tickets, ticket) end
    end
  end
  return tickets
end
local function save(key, conversation_id, tickets, at)
  if #tickets == 0 then redis.call('DEL', key) return end
  local encoded, last = {}, at
  for i, ticket in ipairs(tickets) do
    encoded[i] = cjson.encode({number = ticket.number, expires = ticket.expires})
    if ticket.expires > last then last = ticket.expires end
  end
  local value = cjson.encode({conversation_id = conversation_id, tickets = encoded})
  redis.call('SET', key, value, 'PX', math.max(1, math.ceil((last - at) * 1000)))
end
"""

# KEYS: lock, sequence. ARGV: conversation id, lifetime (s), sequence TTL (ms). -> the ticket.
_ISSUE = _COMMON + """
local at = now()
local tickets = load(KEYS[1], at)
local number = redis.call('INCR', KEYS[2]) - 1
redis.call('PEXPIRE', KEYS[2], ARGV[3])
table.insert(tickets, {number = number, expires = at + tonumber(ARGV[2])})
save(KEYS[1], ARGV[1], tickets, at)
return number
"""

# KEYS: lock. ARGV: conversation id, ticket. -> -1: the ticket expired; 0: it is served now;
# n > 0: n tickets are ahead of it.
_POSITION = _COMMON + """
local at = now()
local tickets = load(KEYS[1], at)
save(KEYS[1], ARGV[1], tickets, at)
for i, ticket in ipairs(tickets) do
  if ticket.number == tonumber(ARGV[2]) then return i - 1 end
end
return -1
"""

# KEYS: lock. ARGV: conversation id, ticket. Removes the ticket, and the lock once it is empty.
_FINISH = _COMMON + """
local at = now()
local kept = {}
for _, ticket in ipairs(load(KEYS[1], at)) do
  if ticket.number ~= tonumber(ARGV[2]) then table.insert(kept, ticket) end
end
save(KEYS[1], ARGV[1], kept, at)
return #kept
"""


def _connection_kwargs(endpoint_config: Optional[EndpointConfig], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Rasa's RedisLockStore arguments from endpoints.yml: `url` is a host or a redis:// URL."""
    options = dict(endpoint_config.kwargs) if endpoint_config else {}
    options.update(kwargs)
    url = options.pop("url", None) or (endpoint_config.url if endpoint_config else None) or "localhost"
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"lock_store url must be a host or redis://host:port/db, not {url!r}")
        options.setdefault("port", parts.port or 6379)
        if parts.path.strip("/"):
            options.setdefault("db", int(parts.path.strip("/")))
        if parts.password:
            options.setdefault("password", parts.password)
        if parts.username:
            options.setdefault("username", parts.username)
        options.setdefault("use_ssl", parts.scheme == "rediss")
        url = parts.hostname or "localhost"
    return {"host": url, **options}


class AtomicRedisLockStore(RedisLockStore):
    """Rasa's ticket lock in Redis, each step one atomic script (see the module docstring)."""

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, **kwargs: Any) -> None:
        options = _connection_kwargs(endpoint_config, kwargs)
        self.poll_interval = float(options.pop("poll_interval", 0.05))
        if self.poll_interval <= 0:
            raise ValueError(f"lock_store poll_interval must be > 0 s, got {self.poll_interval}")
        super().__init__(**options)
        self._issue = self.red.register_script(_ISSUE)
        self._position = self.red.register_script(_POSITION)
        self._finish = self.red.register_script(_FINISH)

    def _key(self, conversation_id: str) -> str:
        return self.key_prefix + conversation_id

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        try:
            key = self._key(conversation_id)
            return int(self._issue(keys=[key, key + ":seq"],
                                   args=[conversation_id, float(lock_lifetime), SEQUENCE_TTL_MS]))
        except Exception as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def position(self, conversation_id: str, ticket: int) -> int:
        """-1 if `ticket` expired, 0 if it is served now, else how many tickets are ahead of it."""
        return int(self._position(keys=[self._key(conversation_id)], args=[conversation_id, ticket]))

    async def _acquire_lock(self, conversation_id: str, ticket: int,
                            wait_time_in_seconds: float) -> TicketLock:
        # Rasa asks for a check every second; a turn takes far less, so we look more often.
        wait = min(wait_time_in_seconds, self.poll_interval)
        while True:
            ahead = self.position(conversation_id, ticket)
            if ahead == 0:
                return self.get_lock(conversation_id) or TicketLock(conversation_id)
            if ahead < 0:
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
            logger.debug(f"Conversation '{conversation_id}': {ahead} message(s) ahead of ticket {ticket}.")
            await asyncio.sleep(wait)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self._finish(keys=[self._key(conversation_id)], args=[conversation_id, ticket_number])

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        # The finish script deletes the lock once its queue is empty, in the same step.
        self.finish_serving(conversation_id, ticket_number)

    def update_lock(self, conversation_id: str) -> None:
        self.position(conversation_id, -1)  # drops expired tickets, atomically
