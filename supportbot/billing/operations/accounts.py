"""Account help by mail: password resets, unlocks and email-address changes.

The service "sends" mail by writing to its outbox table. Resets and unlocks answer the same
for any valid email, account or not, so they cannot be used to probe for accounts; an email
change takes effect only once the link mailed to the new address is opened.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from sqlalchemy.orm import Session, sessionmaker

from supportbot.billing import pages
from supportbot.billing.links import TOKEN_MINUTES, LinkError
from supportbot.billing.models import AccountToken, Outbox, PasswordReset, utcnow
from supportbot.billing.operations.common import by_email, customer_row, redeem, token_row
from supportbot.billing.validation import ApiError


class Accounts:
    """Keyed account-mail writes and the pages their links open; runs in worker threads."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    @staticmethod
    def decide_password_reset(session: Session, email: str, base: str) -> Tuple[int, Any]:
        customer = by_email(session, email)
        if customer is not None:  # the answer is the same either way: no account probing
            token = token_row(session, PasswordReset, customer.id)
            _mail(session, customer.email, "password_reset", "Reset your password",
                  f"Hello {customer.name},\n\nReset your password here (valid for "
                  f"{TOKEN_MINUTES} minutes):\n{base}/account/reset?token={token}\n\n"
                  "If you did not ask for this, ignore this email.\n")
        return 202, {"status": "accepted"}

    @staticmethod
    def decide_unlock(session: Session, email: str, base: str) -> Tuple[int, Any]:
        customer = by_email(session, email)
        if customer is not None and customer.locked:
            token = token_row(session, AccountToken, customer.id, kind="account_unlock")
            _mail(session, customer.email, "account_unlock", "Unlock your account",
                  f"Hello {customer.name},\n\nUnlock your account here (valid for "
                  f"{TOKEN_MINUTES} minutes):\n{base}/account/unlock?token={token}\n")
        elif customer is not None:
            _mail(session, customer.email, "sign_in_help", "Signing in to your account",
                  f"Hello {customer.name},\n\nYour account is not locked. Sign in at "
                  f"{base}/account/sign-in with this email address. Forgot your password? "
                  "Choose \"Forgot password\" there and we will email you a reset link.\n")
        return 202, {"status": "accepted"}

    def unlock(self, token: Optional[str]) -> str:
        with self.sessions() as session:
            row = redeem(session, AccountToken, token, AccountToken.kind == "account_unlock")
            customer_row(session, row.customer_id).locked = False
            row.used_at = utcnow()
            session.commit()
            return pages.message_page("Account unlocked",
                                      "Your account is unlocked. You can sign in again.")

    @staticmethod
    def decide_email_change(session: Session, cid: str, new_email: str,
                            base: str) -> Tuple[int, Any]:
        customer = customer_row(session, cid)
        if customer.email.lower() == new_email:
            raise ApiError(422, "same_email", "That is already the account's email address")
        if by_email(session, new_email) is not None:
            raise ApiError(409, "email_taken", "That email address belongs to another account")
        token = token_row(session, AccountToken, cid, kind="email_change", new_email=new_email)
        _mail(session, new_email, "email_change", "Confirm your new email address",
              f"Hello {customer.name},\n\nConfirm that this is your new email address "
              f"(valid for {TOKEN_MINUTES} minutes):\n"
              f"{base}/account/confirm-email?token={token}\n")
        return 202, {"status": "pending"}

    def confirm_email(self, token: Optional[str]) -> str:
        with self.sessions() as session:
            row = redeem(session, AccountToken, token, AccountToken.kind == "email_change")
            if by_email(session, row.new_email) is not None:
                raise LinkError(409, "email_taken",
                                "That email address now belongs to another account.")
            customer_row(session, row.customer_id).email = row.new_email
            row.used_at = utcnow()
            session.commit()
            return pages.message_page("Email address changed",
                                      f"Your account now uses {row.new_email}.")


def _mail(session: Session, to: str, kind: str, subject: str, body: str) -> None:
    session.add(Outbox(to_address=to, kind=kind, subject=subject, body=body,
                       created_at=utcnow()))
