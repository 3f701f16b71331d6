"""Who is calling the billing service: API keys, the client each belongs to, and its role.

Keys come from env BILLING_API_KEYS, a comma-separated list of `client:role:key` entries:

    BILLING_API_KEYS="assistant:assistant:<key>,helpdesk:agent:<key>"

`client` names the caller in logs and rate limits, `role` is `assistant` (the chat assistant:
the refund and dispute auto-limits apply) or `agent` (support staff tools: may exceed them),
and `key` is the secret it sends as `Authorization: Bearer <key>`. There is no open mode: a
service without keys refuses to start. See docs/billing-service.md#authentication.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from supportbot import settings

ROLES = ("assistant", "agent")
ENV_NAME = "BILLING_API_KEYS"
MIN_KEY_LENGTH = 16
CLIENT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
KEY_RE = re.compile(r"^[\x21-\x2b\x2d-\x7e]+$")  # visible ASCII except the comma


class ConfigError(ValueError):
    """The service's security settings are missing or malformed: it must not start."""


@dataclass(frozen=True)
class Caller:
    client: str  # the name in BILLING_API_KEYS
    role: str  # assistant | agent

    @property
    def within_auto_limits(self) -> bool:
        """Whether the refund and dispute auto-limits bind this caller."""
        return self.role != "agent"


class ApiKeys:
    """The configured keys; `identify` compares a presented key with each in constant time."""

    def __init__(self, callers_by_key: Mapping[str, Caller]) -> None:
        if not callers_by_key:
            raise ConfigError(f"{ENV_NAME} holds no keys")
        self._keys: Tuple[Tuple[bytes, Caller], ...] = tuple(
            (key.encode("ascii"), caller) for key, caller in callers_by_key.items())

    @classmethod
    def parse(cls, spec: str) -> ApiKeys:
        callers: Dict[str, Caller] = {}
        for entry in filter(None, (part.strip() for part in spec.split(","))):
            client, role, key = _entry(entry)
            if key in callers:
                raise ConfigError(f"{ENV_NAME}: two entries share one key")
            if any(caller.client == client for caller in callers.values()):
                raise ConfigError(f"{ENV_NAME}: client {client!r} is listed twice")
            callers[key] = Caller(client, role)
        return cls(callers)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> ApiKeys:
        spec = settings.get(ENV_NAME, environ) or ""
        if not spec.strip():
            raise ConfigError(
                f"{ENV_NAME} is not set: the billing service answers only callers with an API "
                f"key. Set {ENV_NAME}=client:role:key[,client:role:key...] with role assistant "
                "or agent (see docs/billing-service.md#authentication).")
        return cls.parse(spec)

    def identify(self, presented: bytes) -> Optional[Caller]:
        """The caller holding `presented`, else None; every key is compared, match or not."""
        found = None
        for key, caller in self._keys:
            if hmac.compare_digest(key, presented):
                found = caller
        return found

    def __repr__(self) -> str:  # never print the keys themselves
        return f"ApiKeys({sorted(caller.client for _, caller in self._keys)})"


def _entry(entry: str) -> Tuple[str, str, str]:
    parts = entry.split(":", 2)
    if len(parts) != 3:
        raise ConfigError(f"{ENV_NAME}: each entry must be client:role:key")
    client, role, key = (part.strip() for part in parts)
    if not CLIENT_RE.match(client):
        raise ConfigError(f"{ENV_NAME}: client names are 1-64 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise ConfigError(f"{ENV_NAME}: client {client!r} has role {role!r}; "
                          f"use one of {', '.join(ROLES)}")
    if len(key) < MIN_KEY_LENGTH or not KEY_RE.match(key):
        raise ConfigError(f"{ENV_NAME}: the key of client {client!r} must be at least "
                          f"{MIN_KEY_LENGTH} visible ASCII characters without commas")
    return client, role, key


def bearer_token(header: Optional[str]) -> Optional[bytes]:
    """The token of `Authorization: Bearer <token>` as bytes (never fails on odd input)."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token.encode("utf-8", "replace")
