"""Idempotency-Key for every JSON write of the billing service: one write path for them all.

A keyed write is decided at most once per (scope, key), where the scope is the customer id, or
`ANONYMOUS` for writes not made under a customer. `write_once` claims the key with an insert
(a unique constraint makes concurrent duplicates lose that race), runs the decision in the same
transaction and stores its answer; a repeat of the same request replays that answer, a
different request under the same key is refused. The rules are in docs/billing-service.md
(Idempotency).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from sanic.request import Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from supportbot.billing.models import IdempotencyKey, utcnow
from supportbot.billing.validation import NEEDS_REVIEW, ApiError, dumps, error_payload

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
ANONYMOUS = "-"  # idempotency scope of writes not made under a customer

# A decision: (status, response payload) or (status, payload, what to store for replays).
Decide = Callable[[Session], Tuple[Any, ...]]
Reissue = Callable[[Session, Dict[str, Any]], Dict[str, Any]]


@dataclass(frozen=True)
class Write:
    """One keyed write: its scope (customer id, or "-"), key, and request fingerprint."""

    scope: str
    key: str
    method_path: str
    fingerprint: str


def fingerprint(method_path: str, fields: Dict[str, Any]) -> str:
    canonical = dumps({"request": method_path, **fields})
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def idempotency_key(request: Request) -> str:
    key = (request.headers.get("Idempotency-Key") or "").strip()
    if not key:
        raise ApiError(400, "idempotency_key_required", "Send an Idempotency-Key header")
    if not IDEMPOTENCY_KEY_RE.match(key):
        raise ApiError(400, "invalid_idempotency_key",
                       "Idempotency-Key must be 1-255 visible ASCII characters, e.g. a UUID")
    return key


def write_once(sessions: sessionmaker, write: Write, decide: Decide,
               reissue: Optional[Reissue] = None) -> Tuple[int, str, bool]:
    """Run `decide` at most once per (scope, key); returns (status, JSON body, replayed).

    `decide` raises ApiError to refuse. 400/404 mean nothing was decided: the claim is
    rolled back, so the client may fix the request and reuse the key; so is 403
    needs_review. Any other refusal is stored and replayed like a success, so `decide` must
    refuse before writing anything.
    """
    with sessions() as session:
        record = _find_key(session, write.scope, write.key)
        if record is None:
            try:
                return _decide_once(session, write, decide)
            except IntegrityError:  # a concurrent request with this key won the insert
                session.rollback()
                logger.info("concurrent duplicate for an idempotency key; replaying")
                record = _find_key(session, write.scope, write.key)
        status, body = _replay(record, write.fingerprint)
        if reissue is not None and status < 300:
            body = dumps(reissue(session, json.loads(body)))
            session.commit()
        return status, body, True


def _decide_once(session: Session, write: Write, decide: Decide) -> Tuple[int, str, bool]:
    record = IdempotencyKey(key=write.key, customer_id=write.scope,
                            request_hash=write.fingerprint,
                            method_path=write.method_path[:300], created_at=utcnow())
    session.add(record)
    session.flush()
    try:
        status, payload, *stored = decide(session)
    except ApiError as exc:
        # Not a decision about the request: bad input, an unknown target, or a caller
        # that may not decide it (a person with an agent key may, under the same key).
        if exc.status in (400, 404) or exc.code == NEEDS_REVIEW:
            session.rollback()
            raise
        status, payload, stored = exc.status, error_payload(exc.code, exc.message), []
    record.status_code = status
    record.response_json = dumps(stored[0] if stored else payload)
    session.commit()
    return status, dumps(payload), False


def _find_key(session: Session, scope: str, key: str) -> Optional[IdempotencyKey]:
    query = select(IdempotencyKey).where(
        IdempotencyKey.customer_id == scope, IdempotencyKey.key == key
    )
    return session.scalars(query).first()


def _replay(record: Optional[IdempotencyKey], fingerprint: str) -> Tuple[int, str]:
    if record is None or record.status_code is None:
        raise ApiError(409, "idempotency_key_in_progress", "Retry this request shortly")
    if record.request_hash != fingerprint:
        raise ApiError(409, "idempotency_key_reused",
                       "This Idempotency-Key was used with a different request")
    return record.status_code, record.response_json
