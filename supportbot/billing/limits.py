"""Limits the billing service enforces itself, whatever its caller did before calling.

* Auto-limits: a refund or dispute above them is for a person, so an `assistant` caller is
  refused with 403 `needs_review`; an `agent` caller may go above them.
* Verification rate limit: failed `/customers/verify` attempts are counted per conversation,
  per customer (or unknown email) and per calling client, in the database; a scope that has
  reached its cap refuses every attempt -- right or wrong -- with 429 `too_many_attempts`
  until its window, which opens at the scope's first failure, has passed.

Settings come from the environment; see docs/billing-service.md#limits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, List, Mapping, Optional

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from supportbot import settings
from supportbot.billing.auth import ConfigError
from supportbot.billing.models import VerifyCounter

CLIENT_CAP_FACTOR = 10  # a client may fail this many times more often than one conversation


@dataclass(frozen=True)
class Limits:
    refund_auto_limit: Decimal = Decimal("200")
    dispute_auto_limit: Decimal = Decimal("100")
    verify_max_failures: int = 5
    verify_window: dt.timedelta = dt.timedelta(seconds=900)
    verify_max_failures_per_client: int = 5 * CLIENT_CAP_FACTOR

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> Limits:
        env = environ
        failures = _integer(env, "BILLING_VERIFY_MAX_FAILURES")
        return cls(
            refund_auto_limit=_amount(env, "BILLING_REFUND_AUTO_LIMIT"),
            dispute_auto_limit=_amount(env, "BILLING_DISPUTE_AUTO_LIMIT"),
            verify_max_failures=failures,
            verify_window=dt.timedelta(seconds=_integer(env, "BILLING_VERIFY_WINDOW_SECONDS")),
            verify_max_failures_per_client=_integer(env, "BILLING_VERIFY_MAX_FAILURES_PER_CLIENT",
                                                    failures * CLIENT_CAP_FACTOR),
        )


def _amount(env: Mapping[str, str], name: str) -> Decimal:
    try:
        return settings.amount(name, env)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _integer(env: Mapping[str, str], name: str, fallback: Optional[int] = None) -> int:
    """`name` (≥ 1), else `fallback` for a setting without a default of its own."""
    try:
        value = settings.integer(name, env, minimum=1)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return fallback if value is None else value


# --- verification attempts ---------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """One counter: its key in `verify_counters` and how many failures it allows per window."""

    key: str
    cap: int


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8", "replace")).hexdigest()


def customer_subject(customer_id: Optional[str], email: str) -> str:
    """The customer the email belongs to; for an unknown email, the email itself, so that an
    unknown address locks exactly like a known one and a 429 tells nothing about accounts."""
    return f"customer:{customer_id}" if customer_id else f"email:{_digest(email.lower())}"


def verify_scopes(limits: Limits, client: str, subject: str,
                  conversation_id: Optional[str]) -> List[Scope]:
    scopes = [Scope(f"client:{client}", limits.verify_max_failures_per_client),
              Scope(subject, limits.verify_max_failures)]
    if conversation_id:  # a conversation id is the caller's: another client's may look alike
        scopes.append(Scope(f"conversation:{_digest(client, conversation_id)}",
                            limits.verify_max_failures))
    return scopes


def seconds_locked(session: Session, scopes: Iterable[Scope], window: dt.timedelta,
                   now: dt.datetime) -> Optional[int]:
    """Seconds until every full scope reopens; None when none is full."""
    caps = {scope.key: scope.cap for scope in scopes}
    rows = session.scalars(select(VerifyCounter).where(
        VerifyCounter.scope.in_(list(caps)), VerifyCounter.window_start > now - window))
    waits = [_seconds_left(row.window_start, window, now) for row in rows
             if row.failures >= caps[row.scope]]
    return max(waits) if waits else None


def count_failure(session: Session, scopes: Iterable[Scope], window: dt.timedelta,
                  now: dt.datetime) -> bool:
    """Add one failure to every scope; False (the caller rolls back) if one is already full.

    Each step is one conditional UPDATE, so concurrent attempts -- other threads, other
    workers -- can never push a scope past its cap. Scopes are always taken in the same order,
    so two transactions waiting on each other's rows cannot deadlock.
    """
    for scope in sorted(scopes, key=lambda s: s.key):
        if not _count_one(session, scope, window, now):
            return False
    return True


def _count_one(session: Session, scope: Scope, window: dt.timedelta, now: dt.datetime) -> bool:
    cutoff = now - window
    table = VerifyCounter
    for _ in range(3):  # a concurrent clean-up may delete an expired row under us: try again
        _ensure_row(session, scope.key, now)
        reopened = session.execute(
            update(table).where(table.scope == scope.key, table.window_start <= cutoff)
            .values(window_start=now, failures=1).execution_options(synchronize_session=False))
        if reopened.rowcount:
            return True
        counted = session.execute(
            update(table).where(table.scope == scope.key, table.window_start > cutoff,
                                table.failures < scope.cap)
            .values(failures=table.failures + 1).execution_options(synchronize_session=False))
        if counted.rowcount:
            return True
        if session.get(table, scope.key, populate_existing=True) is not None:
            return False  # the row is there, in its window, and full
    raise RuntimeError(f"could not count a failed verification for {scope.key.split(':')[0]}")


_UPSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _ensure_row(session: Session, key: str, now: dt.datetime) -> None:
    """Insert an empty counter whose window opens now, unless the scope already has one."""
    name = session.get_bind().dialect.name
    if name not in _UPSERTS:  # the service is tested on SQLite and Postgres only
        raise NotImplementedError(f"verification counters need SQLite or Postgres, not {name}")
    session.execute(_UPSERTS[name](VerifyCounter.__table__)
                    .values(scope=key, window_start=now, failures=0)
                    .on_conflict_do_nothing(index_elements=["scope"]))


def forget_expired(session: Session, window: dt.timedelta, now: dt.datetime) -> None:
    """Delete counters whose window has passed: they would only be reopened at zero."""
    session.execute(delete(VerifyCounter).where(VerifyCounter.window_start <= now - window)
                    .execution_options(synchronize_session=False))


def _seconds_left(window_start: dt.datetime, window: dt.timedelta, now: dt.datetime) -> int:
    return max(1, math.ceil((window_start + window - now).total_seconds()))
