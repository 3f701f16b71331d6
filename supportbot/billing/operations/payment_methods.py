"""Card updates by link: the chat never sees a card number.

`decide_payment_link` issues a short-lived single-use link to the service's own card page;
`save_card` takes the form posted there, keeps the brand, last four digits and expiry as the
new default payment method, and uses up the link.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from supportbot.billing import pages
from supportbot.billing.cards import Card
from supportbot.billing.links import hash_token, new_token
from supportbot.billing.models import PaymentMethod, PaymentMethodLink, iso_datetime, utcnow
from supportbot.billing.operations.common import customer_row, redeem, token_row


class PaymentMethods:
    """Payment-method links and the card page behind them; runs in worker threads."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    @staticmethod
    def decide_payment_link(session: Session, cid: str, base: str) -> Tuple[int, Any, Any]:
        customer_row(session, cid)
        token = token_row(session, PaymentMethodLink, cid)
        session.flush()
        link = session.scalars(select(PaymentMethodLink).where(
            PaymentMethodLink.token_hash == hash_token(token))).one()
        expires_at = iso_datetime(link.expires_at)
        public = {"url": f"{base}/pay/update?token={token}", "expires_at": expires_at}
        # The replay record keeps the link id, not the token: see reissue_payment_link.
        return 201, public, {"link_id": link.id, "base": base, "expires_at": expires_at}

    @staticmethod
    def reissue_payment_link(session: Session, stored: Dict[str, Any]) -> Dict[str, Any]:
        """A replay gets a fresh token for the same link (the old URL stops working), since
        only token hashes are kept."""
        link = session.get(PaymentMethodLink, stored["link_id"])
        token, link.token_hash = new_token()
        return {"url": f"{stored['base']}/pay/update?token={token}",
                "expires_at": stored["expires_at"]}

    def payment_link_page(self, token: Optional[str]) -> str:
        with self.sessions() as session:
            redeem(session, PaymentMethodLink, token)
            return pages.card_form(token or "")

    def save_card(self, token: Optional[str], form: Dict[str, str]) -> Tuple[int, str]:
        with self.sessions() as session:
            link = redeem(session, PaymentMethodLink, token)
            try:
                card = Card.from_form(form.get("card_number", ""), form.get("exp_month", ""),
                                      form.get("exp_year", ""), utcnow().date())
            except ValueError as exc:
                return 422, pages.card_form(token or "", str(exc))
            session.execute(update(PaymentMethod).where(
                PaymentMethod.customer_id == link.customer_id).values(is_default=False))
            session.add(PaymentMethod(customer_id=link.customer_id, brand=card.brand,
                                      last4=card.last4, exp_month=card.exp_month,
                                      exp_year=card.exp_year, is_default=True,
                                      created_at=utcnow()))
            link.used_at = utcnow()
            session.commit()
            return 200, pages.message_page(
                "Card saved", f"Your {card.brand} card ending in {card.last4} is now your "
                "default payment method. You can close this page.")
