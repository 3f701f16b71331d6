"""The admin app's session: one cookie, an HS256 JWT (PyJWT) signed with SUPPORTBOT_ADMIN_SECRET,
holding who is logged in and the CSRF token that every POST made with the cookie must send back
(a form's `csrf` field or the `X-CSRF-Token` header). A visitor who is not logged in gets a cookie
with a CSRF token only, so the login form is protected too. HttpOnly and SameSite=Strict: page
scripts cannot read it and other sites' pages never send it; Secure when served over HTTPS.
"""
from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Optional

import jwt
from sanic.response import HTTPResponse

from supportbot.admin.accounts import Account

COOKIE = "supportbot_admin"
AUDIENCE = "supportbot-admin"  # a JWT signed for another purpose is never a session
ALGORITHM = "HS256"
TTL_SECONDS = 8 * 3600  # a working day; then log in again
ANONYMOUS_TTL_SECONDS = 3600


@dataclass(frozen=True)
class Session:
    csrf: str
    name: Optional[str] = None
    role: Optional[str] = None
    version: Optional[str] = None  # Account.version when it was signed

    @classmethod
    def new(cls, account: Optional[Account] = None) -> Session:
        """A fresh CSRF token each time: logging in never keeps the anonymous one."""
        csrf = secrets.token_urlsafe(32)
        if account is None:
            return cls(csrf)
        return cls(csrf, account.name, account.role, account.version)

    def checks(self, presented: Optional[str]) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode("utf-8"), self.csrf.encode("utf-8"))

    @property
    def ttl(self) -> int:
        return TTL_SECONDS if self.name else ANONYMOUS_TTL_SECONDS


def encode(session: Session, secret: str) -> str:
    now = int(time.time())
    claims = {"aud": AUDIENCE, "iat": now, "exp": now + session.ttl, "csrf": session.csrf}
    if session.name:
        claims.update(sub=session.name, role=session.role, ver=session.version)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode(token: Optional[str], secret: str) -> Optional[Session]:
    """The session in a cookie value, or None (missing, forged, expired, malformed)."""
    if not token:
        return None
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=AUDIENCE,
                            options={"require": ["exp", "aud", "csrf"]})
    except jwt.PyJWTError:
        return None
    fields = (claims.get("csrf"), claims.get("sub"), claims.get("role"), claims.get("ver"))
    if not all(value is None or isinstance(value, str) for value in fields) or not fields[0]:
        return None
    return Session(*fields)


def set_cookie(response: HTTPResponse, session: Session, secret: str, secure: bool) -> None:
    response.cookies[COOKIE] = encode(session, secret)
    cookie = response.cookies[COOKIE]
    cookie["httponly"], cookie["samesite"], cookie["path"] = True, "Strict", "/"
    cookie["max-age"], cookie["secure"] = session.ttl, secure
