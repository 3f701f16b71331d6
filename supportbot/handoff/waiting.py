"""The wait a customer is told when handed off, from the store's recent claims and the
configured business hours; kept on the handoff record so it can be compared with reality."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from supportbot import settings
from supportbot.handoff import messages
from supportbot.handoff.claims import Claims
from supportbot.handoff.estimate import BusinessHours, estimate
from supportbot.store import Handoff


def tell_wait(claims: Claims, handoff: Handoff, hours: Optional[BusinessHours] = None,
              now: Optional[datetime] = None) -> str:
    """The customer's line about the wait; outside business hours it also counts as the offer of
    a reply by email (so the watcher does not make it again)."""
    hours = hours or BusinessHours.from_env()
    sample = settings.integer("SUPPORTBOT_HANDOFF_WAIT_SAMPLE", minimum=1)
    default = settings.integer("SUPPORTBOT_HANDOFF_DEFAULT_WAIT_MINUTES", minimum=1)
    told = estimate(hours, claims.recent_waits(hours, sample), default, now)
    claims.tell_wait(handoff.id, told.minutes)
    if not told.open:
        claims.offer_email(handoff.id, now)
    return messages.waiting(told, hours, handoff.reference, verified=handoff.customer_id is not None)
