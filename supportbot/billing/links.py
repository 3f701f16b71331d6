"""Links the service hands out: signed invoice-document URLs and single-use tokens.

Invoice links are HMAC-signed and expire, so they can be shown in a chat without an account.
Single-use tokens (payment-method update, password reset, unlock, email change) are random;
only their SHA-256 is stored, so a copy of the database cannot be turned into working links.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Optional, Tuple
from urllib.parse import urlencode

from supportbot import settings

# Development default only: set BILLING_LINK_SECRET in any shared or public deployment, or
# anyone who has read this file can forge invoice links.
DEV_LINK_SECRET = "supportbot-dev-link-secret-do-not-use-in-production"
INVOICE_LINK_SECONDS = 7 * 24 * 3600
TOKEN_MINUTES = 30


class LinkError(Exception):
    """A bad or expired link: `status` is 403 (unknown / forged) or 410 (expired / used)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def new_token() -> Tuple[str, str]:
    """A fresh URL-safe token and the hash to store for it."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Links:
    secret: bytes
    public_url: Optional[str]  # env BILLING_PUBLIC_URL; None = the request's own origin

    @classmethod
    def from_env(cls) -> Links:
        secret = settings.get("BILLING_LINK_SECRET") or DEV_LINK_SECRET
        public_url = (settings.get("BILLING_PUBLIC_URL") or "").rstrip("/") or None
        return cls(secret.encode("utf-8"), public_url)

    def base(self, scheme: str, host: str) -> str:
        return self.public_url or f"{scheme}://{host}"

    def _sign(self, message: str) -> str:
        return hmac.new(self.secret, message.encode("utf-8"), hashlib.sha256).hexdigest()

    def invoice_url(self, base: str, iid: str, now: Optional[float] = None) -> str:
        expires = int(now if now is not None else time.time()) + INVOICE_LINK_SECONDS
        query = urlencode({"expires": expires, "sig": self._sign(f"invoice:{iid}:{expires}")})
        return f"{base}/documents/invoices/{iid}?{query}"

    def check_invoice(self, iid: str, expires: Optional[str], sig: Optional[str]) -> None:
        """Raise LinkError unless `sig` signs (iid, expires) and `expires` is in the future."""
        if not expires or not sig or not expires.isdigit() or len(expires) > 12:
            raise LinkError(403, "invalid_signature", "This link is not valid")
        expected = self._sign(f"invoice:{iid}:{expires}")
        if not hmac.compare_digest(expected, sig.lower()):
            raise LinkError(403, "invalid_signature", "This link is not valid")
        if int(expires) < time.time():
            raise LinkError(410, "link_expired", "This link has expired")
