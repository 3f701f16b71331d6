"""Ticketing: one interface (`TicketingAdapter`) over the embedded queue, Request Tracker 5 and
Zendesk; `ticketing_from_env()` picks the adapter from configuration (docs/ticketing.md)."""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional

from supportbot import settings
from supportbot.ticketing.base import Ticket, TicketingAdapter

__all__ = ["Ticket", "TicketingAdapter", "ticketing_from_env"]


def _db_url(env: Mapping[str, str]) -> str:
    return settings.require("SUPPORTBOT_TICKETING_DB_URL", env)


def _required(env: Mapping[str, str], name: str) -> str:
    value = settings.get(name, env)
    if not value:
        backend = settings.get("SUPPORTBOT_TICKETING", env)
        raise ValueError(f"{name} must be set when SUPPORTBOT_TICKETING={backend}")
    return value


def _sqlite(env: Mapping[str, str]) -> TicketingAdapter:
    from supportbot.ticketing.sql import SqlTicketing

    return SqlTicketing(_db_url(env))


def _rt(env: Mapping[str, str]) -> TicketingAdapter:
    from supportbot.handoff import routing
    from supportbot.ticketing.ledger import KeyLedger
    from supportbot.ticketing.rt import RtTicketing

    team_queues = [team.rt_queue for team in routing.from_env(env).teams.values()]  # where it files and reads
    return RtTicketing(settings.get("RT_URL", env), settings.get("RT_USER", env),
                       _required(env, "RT_PASSWORD"), KeyLedger(_db_url(env)),
                       queue=settings.get("RT_QUEUE", env), timeout=settings.number("RT_TIMEOUT", env),
                       queues=team_queues)


def _zendesk(env: Mapping[str, str]) -> TicketingAdapter:
    from supportbot.ticketing.ledger import KeyLedger
    from supportbot.ticketing.zendesk import ZendeskTicketing

    return ZendeskTicketing(_required(env, "ZENDESK_URL"), _required(env, "ZENDESK_EMAIL"),
                            _required(env, "ZENDESK_API_TOKEN"), KeyLedger(_db_url(env)),
                            timeout=settings.number("ZENDESK_TIMEOUT", env))


ADAPTERS: Dict[str, Callable[[Mapping[str, str]], TicketingAdapter]] = {
    "sqlite": _sqlite, "rt": _rt, "zendesk": _zendesk}


def ticketing_from_env(env: Optional[Mapping[str, str]] = None) -> TicketingAdapter:
    """The adapter SUPPORTBOT_TICKETING names (sqlite, the default; rt; zendesk), configured
    from the environment. Raises ValueError for an unknown name or missing credentials."""
    name = settings.get("SUPPORTBOT_TICKETING", env).lower()
    if name not in ADAPTERS:
        raise ValueError(f"SUPPORTBOT_TICKETING={name!r}: expected one of {', '.join(ADAPTERS)}")
    return ADAPTERS[name](env)
