"""Ticketing: one interface (`TicketingAdapter`) over the embedded queue, Request Tracker 5 and
Zendesk; `ticketing_from_env()` picks the adapter from configuration (docs/ticketing.md)."""
from __future__ import annotations

import os
from typing import Callable, Dict, Mapping, Optional

from supportbot.store import DEFAULT_DB_URL
from supportbot.ticketing.base import Ticket, TicketingAdapter

__all__ = ["Ticket", "TicketingAdapter", "ticketing_from_env"]


def _db_url(env: Mapping[str, str]) -> str:
    return env.get("SUPPORTBOT_TICKETING_DB_URL") or env.get("SUPPORTBOT_DB_URL") or DEFAULT_DB_URL


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise ValueError(f"{name} must be set when SUPPORTBOT_TICKETING={env.get('SUPPORTBOT_TICKETING')}")
    return value


def _sqlite(env: Mapping[str, str]) -> TicketingAdapter:
    from supportbot.ticketing.sql import SqlTicketing

    return SqlTicketing(_db_url(env))


def _rt(env: Mapping[str, str]) -> TicketingAdapter:
    from supportbot.ticketing.ledger import KeyLedger
    from supportbot.ticketing.rt import RtTicketing

    return RtTicketing(env.get("RT_URL", "http://127.0.0.1:8080"), env.get("RT_USER", "root"),
                       _required(env, "RT_PASSWORD"), KeyLedger(_db_url(env)),
                       queue=env.get("RT_QUEUE", "General"), timeout=float(env.get("RT_TIMEOUT", "5")))


def _zendesk(env: Mapping[str, str]) -> TicketingAdapter:
    from supportbot.ticketing.ledger import KeyLedger
    from supportbot.ticketing.zendesk import ZendeskTicketing

    return ZendeskTicketing(_required(env, "ZENDESK_URL"), _required(env, "ZENDESK_EMAIL"),
                            _required(env, "ZENDESK_API_TOKEN"), KeyLedger(_db_url(env)),
                            timeout=float(env.get("ZENDESK_TIMEOUT", "5")))


ADAPTERS: Dict[str, Callable[[Mapping[str, str]], TicketingAdapter]] = {
    "sqlite": _sqlite, "rt": _rt, "zendesk": _zendesk}


def ticketing_from_env(env: Optional[Mapping[str, str]] = None) -> TicketingAdapter:
    """The adapter SUPPORTBOT_TICKETING names (sqlite, the default; rt; zendesk), configured
    from the environment. Raises ValueError for an unknown name or missing credentials."""
    env = os.environ if env is None else env
    name = (env.get("SUPPORTBOT_TICKETING") or "sqlite").strip().lower()
    if name not in ADAPTERS:
        raise ValueError(f"SUPPORTBOT_TICKETING={name!r}: expected one of {', '.join(ADAPTERS)}")
    return ADAPTERS[name](env)
