"""Signed customer identity carried in channel metadata.

A host page (or any trusted channel) that already knows who the customer is passes
`customer_token` in the message metadata: an HS256 JWT whose `sub` is the customer id, with
an `exp`, signed with SUPPORTBOT_IDENTITY_SECRET. A plain `customer_id` in metadata is never
trusted on its own, since any client can send metadata. Without a valid token the customer
verifies with email and order number.
"""
from __future__ import annotations

import time
from typing import Any, Dict, Optional

import jwt

from supportbot import settings

ALGORITHM = "HS256"


def secret_from_env() -> Optional[str]:
    return settings.get("SUPPORTBOT_IDENTITY_SECRET")


def issue_token(customer_id: str, secret: str, ttl_seconds: int = 3600, **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": customer_id, "iat": now, "exp": now + ttl_seconds, **claims}
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def customer_from_metadata(
    metadata: Optional[Dict[str, Any]], secret: Optional[str] = None
) -> Optional[str]:
    """The verified customer id in `metadata`, or None (missing, forged, expired, no secret)."""
    secret = secret or secret_from_env()
    token = (metadata or {}).get("customer_token")
    if not secret or not isinstance(token, str):
        return None
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.PyJWTError:
        return None
    subject = claims.get("sub")
    return subject if isinstance(subject, str) and subject else None
