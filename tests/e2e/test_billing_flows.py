"""Invoices, payment problems, disputes, subscriptions and account changes over the REST
channel, against the real servers (see conftest). Results are read back from the billing
service (its API, and its outbox table for the mail it "sends").

The stack is shared by the whole session, so each test uses its own seeded customer and
state: Alice (C-1001) keeps her subscription until the cancel-and-refund test, Bob (C-1002)
owns the duplicate charge and changes plan, Chloé (C-1003) cancels after declining the
offer, Dev (C-1004) has the locked account. Confirmations are sent as the buttons send them
("/affirm", "/deny").
"""
from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from supportbot.identity import issue_token

ALICE, BOB, CHLOE = "C-1001", "C-1002", "C-1003"


@pytest.fixture
def as_customer(stack, identity_secret):
    """Send messages as a customer the web widget has signed in (a signed token)."""

    def say(sender: str, text: str, customer_id: str) -> str:
        token = issue_token(customer_id, identity_secret)
        return stack.texts(sender, text, metadata={"customer_token": token})

    return say


# --- invoices --------------------------------------------------------------------------


def test_invoice_by_number_after_verification_with_a_working_download(stack, sender):
    first = stack.texts(sender, "can you send me invoice INV-2026-00042 again please")
    assert "email" in first.lower() and "49.99" not in first
    stack.texts(sender, "alice@example.com")
    answer = stack.texts(sender, "4817263")
    assert "Invoice INV-2026-00042" in answer and "49.99 USD, paid" in answer
    link = answer.split("Download it here: ")[1].split()[0]
    document = requests.get(link, timeout=10)
    assert document.status_code == 200 and "text/html" in document.headers["content-type"]
    assert "INV-2026-00042" in document.text and "Desk lamp" in document.text
    tampered = requests.get(link.replace("sig=", "sig=0"), timeout=10)
    assert tampered.status_code == 403


def test_latest_invoice_for_a_signed_in_customer(as_customer, sender):
    answer = as_customer(sender, "I need my last invoice", BOB)
    assert "Invoice INV-2026-00051" in answer and "19.00 USD" in answer


def test_another_customers_invoice_is_refused_without_leaking(as_customer, sender):
    answer = as_customer(sender, "can you send me invoice INV-2026-00050 please", ALICE)
    missing = as_customer(sender + "-2", "can you send me invoice INV-2026-09999 please", ALICE)
    assert "couldn't find that invoice" in answer
    assert answer == missing  # nothing tells whether Bob's invoice exists
    assert "499" not in answer and "Bob" not in answer and "http" not in answer


# --- payment problems ------------------------------------------------------------------


def test_duplicate_charge_is_found_and_refunded_once(stack, as_customer, sender):
    offer = as_customer(sender, "you charged my card twice for the same month", BOB)
    assert "charged 19.00 USD twice" in offer and "refund the duplicate" in offer
    done = as_customer(sender, "/affirm", BOB)
    assert "Done: refund R-" in done and "the duplicate charge P-000014" in done
    refunds = [r for r in stack.billing().list_refunds(BOB) if r.payment_id == "P-000014"]
    assert len(refunds) == 1 and refunds[0].amount == Decimal("19.00")
    # Asking again: the duplicate is refunded, so there is nothing left to offer.
    again = as_customer(sender + "-again", "I think I was billed double", BOB)
    assert "refund the duplicate" not in again


def test_declined_payment_is_explained(as_customer, sender):
    answer = as_customer(sender, "my payment was declined, what happened?", ALICE)
    assert "didn't go through" in answer and "expired" in answer
    assert "went through" in answer  # the retry with another card succeeded


# --- disputes --------------------------------------------------------------------------


def test_small_dispute_is_opened_in_the_service(stack, as_customer, sender, identity_secret):
    ask = stack.say(sender, "I want to dispute a charge on my card",
                    metadata={"customer_token": issue_token(ALICE, identity_secret)})
    buttons = [b for message in ask for b in message.get("buttons", [])]
    assert buttons and all(b["payload"].startswith("P-") for b in buttons)
    as_customer(sender, "the 19.98 one", ALICE)
    done = as_customer(sender, "I never received the socks", ALICE)
    assert "opened dispute D-" in done
    [dispute] = [d for d in stack.billing().list_disputes(ALICE) if d.payment_id == "P-000005"]
    assert dispute.status == "open" and dispute.reason == "I never received the socks"


def test_chargeback_or_large_dispute_goes_to_a_person(stack, as_customer, sender):
    as_customer(sender, "I'm disputing a payment, my bank told me to do a chargeback", BOB)
    as_customer(sender, "P-000011", BOB)
    answer = as_customer(sender, "the chair broke after two days", BOB)
    assert "This needs a person" in answer and "Your reference is H-" in answer
    assert not [d for d in stack.billing().list_disputes(BOB) if d.payment_id == "P-000011"]
    [record] = stack.handoffs().list(conversation_id=sender)
    assert record.reason == "charge_dispute"
    # Billing's queue; "chargeback" is legal language (routing.yml): urgent, in the ticket's queue too.
    assert (record.team, record.priority) == ("billing", "urgent")
    assert stack.tickets().queue_of(record.ticket_id) == ("billing", "urgent")


# --- subscriptions ---------------------------------------------------------------------


def test_retention_offer_accepted_keeps_the_plan_with_a_discount(stack, as_customer, sender):
    offer = as_customer(sender, "please cancel my subscription", ALICE)
    assert "Before you go" in offer and "Plus" in offer
    done = as_customer(sender, "/affirm", ALICE)
    assert "50% off" in done
    [subscription] = stack.billing().list_subscriptions(ALICE)
    assert subscription.status == "active" and subscription.discount_percent == 50


def test_offer_declined_then_cancelled_once_even_when_retried(stack, as_customer, sender):
    assert "Before you go" in as_customer(sender, "I want to stop my membership", CHLOE)
    confirm = as_customer(sender, "/deny", CHLOE)
    assert "cancel your Premium plan" in confirm and "keep access until" in confirm
    assert "Before you go" not in confirm  # one offer, not two
    slots = {"subscription_pending": {"subscription_id": "S-1004", "plan": "Premium"},
             "subscription_step": "confirm", "customer_id": CHLOE, "customer_verified": True}
    first, second = stack.run_action_twice(sender, "action_cancel_subscription", "yes", "affirm", slots)
    assert [r["response"] for r in first["responses"]] == ["utter_subscription_cancelled"]
    assert first["responses"] == second["responses"]  # the replay, not "already cancelled"
    subscription = stack.billing().get_subscription(CHLOE, "S-1004")
    assert subscription.status == "cancelled" and subscription.ends_at is not None


def test_plan_change_declined_changes_nothing(stack, as_customer, sender):
    ask = as_customer(sender, "I want to change my plan", ALICE)
    assert "Which plan" in ask
    preview = as_customer(sender, "basic", ALICE)
    assert "Switching from Plus to Basic" in preview and "credit" in preview
    assert "stays as it is" in as_customer(sender, "/deny", ALICE)
    assert [s.plan_id for s in stack.billing().list_subscriptions(ALICE)][0] == "plus"


def test_cancel_and_refund_in_one_message_does_both_in_order(stack, as_customer, sender):
    confirm = as_customer(sender, "cancel my subscription and refund me for this month", ALICE)
    assert "cancel your Plus plan" in confirm and "refunding your last month" in confirm
    cancelled = as_customer(sender, "/affirm", ALICE)
    assert "Plus plan is cancelled" in cancelled
    assert "refund your last subscription invoice INV-2026-00043 (19.00 USD" in cancelled
    refunded = as_customer(sender, "/affirm", ALICE)
    assert "Done: refund R-" in refunded and "invoice INV-2026-00043" in refunded
    assert [r.amount for r in stack.billing().list_refunds(ALICE) if r.invoice_id == "INV-2026-00043"] \
        == [Decimal("19.00")]


def test_plan_change_shows_the_proration_then_changes(stack, as_customer, sender):
    preview = as_customer(sender, "I'd like to upgrade to premium", BOB)
    assert "Switching from Plus to Premium" in preview and "39.00 USD a month" in preview
    done = as_customer(sender, "/affirm", BOB)
    assert "now on the Premium plan" in done
    active = [s for s in stack.billing().list_subscriptions(BOB) if s.status == "active"]
    assert [s.plan_id for s in active] == ["premium"]


# --- account ---------------------------------------------------------------------------


def test_card_change_gets_a_working_single_use_secure_link(stack, as_customer, sender):
    answer = as_customer(sender, "I got a new credit card, how do I update it?", ALICE)
    link = answer.split("change your card: ")[1].split()[0]
    page = requests.get(link, timeout=10)
    assert page.status_code == 200 and "<form" in page.text
    assert requests.get(link + "x", timeout=10).status_code in (403, 410)


def test_password_reset_mails_a_link_and_never_reveals_accounts(stack, sender):
    before = len(stack.outbox())
    stack.texts(sender, "I forgot my password")
    known = stack.texts(sender, "dev@example.com")
    stack.texts(sender + "-2", "I forgot my password")
    unknown = stack.texts(sender + "-2", "nobody-here@example.com")
    assert known.replace("dev@example.com", "X") == unknown.replace("nobody-here@example.com", "X")
    mails = stack.outbox()[before:]
    assert [(m["kind"], m["to_address"]) for m in mails] == [("password_reset", "dev@example.com")]
    assert "/account/reset?token=" in mails[0]["body"]


def test_locked_account_gets_an_unlock_mail(stack, sender):
    before = len(stack.outbox())
    stack.texts(sender, "my account is locked, I can't log in")
    answer = stack.texts(sender, "dev@example.com")
    assert "unlock link" in answer
    assert [(m["kind"], m["to_address"]) for m in stack.outbox()[before:]] == \
        [("account_unlock", "dev@example.com")]


def test_name_change_is_saved(stack, as_customer, sender):
    ask = as_customer(sender, "I need to change the name on my account", CHLOE)
    assert "What should it be" in ask
    done = as_customer(sender, "Chloé Dubois-Martin", CHLOE)
    assert "in the name of Chloé Dubois-Martin" in done
    assert stack.billing().get_customer(CHLOE).name == "Chloé Dubois-Martin"


def test_email_change_waits_for_the_confirmation_link(stack, as_customer, sender):
    before = len(stack.outbox())
    assert "What should it be" in as_customer(sender, "I want to change my email address", BOB)
    done = as_customer(sender, "bob.chen@example.net", BOB)
    assert "confirmation link to bob.chen@example.net" in done
    assert stack.billing().get_customer(BOB).email == "bob@example.com"  # not before the click
    assert [(m["kind"], m["to_address"]) for m in stack.outbox()[before:]] == \
        [("email_change", "bob.chen@example.net")]
    taken = as_customer(sender + "-2", "please change my email", BOB)
    assert "What should it be" in taken
    assert "belongs to another account" in as_customer(sender + "-2", "alice@example.com", BOB)



# --- orders: delivery address and cancellation ------------------------------------------


def test_address_change_then_cancellation_refunds_once(stack, as_customer, sender):
    """Alice's 4817265 is still being prepared: first it is redirected, then cancelled (the
    cancellation sent twice, as a retry) and its payment refunded exactly once."""
    assert "Where should we deliver it" in as_customer(
        sender, "please change the delivery address of order 4817265", ALICE)
    new = "Alice Martin, 200 Clarendon Street, Boston, MA 02116"
    assert f'deliver order 4817265 to "{new}"' in as_customer(sender, new, ALICE)
    assert f"now goes to {new}" in as_customer(sender, "/affirm", ALICE)
    assert stack.billing().get_order(ALICE, "4817265").shipping_address == new

    cancel = sender + "-cancel"
    confirm = as_customer(cancel, "I want to cancel order 4817265", ALICE)
    assert "cancel order 4817265 (2 × Merino socks) for 19.98 USD" in confirm
    slots = {"order_change_pending": {"order_id": "4817265", "kind": "cancel"},
             "customer_id": ALICE, "customer_verified": True}
    first, second = stack.run_action_twice(cancel, "action_cancel_order", "yes", "affirm", slots)
    assert [r["response"] for r in first["responses"]] == ["utter_order_cancelled", "utter_order_cancel_refund"]
    assert first["responses"] == second["responses"]
    [refund] = stack.billing().list_refunds(ALICE, order_id="4817265")
    assert refund.amount == Decimal("19.98") and refund.id == first["responses"][1]["refund_id"]
    assert stack.billing().get_order(ALICE, "4817265").status == "cancelled"


def test_a_shipped_order_is_neither_cancelled_nor_redirected(stack, as_customer, sender):
    cancel = as_customer(sender, "please cancel order 4817263", ALICE)
    assert "can't cancel order 4817263: it has already shipped" in cancel
    assert "nothing waiting" in as_customer(sender, "/affirm", ALICE)
    moved = as_customer(sender + "-2", "can you send order 4817263 to a different address?", ALICE)
    assert "can't change where order 4817263 goes: it has already shipped" in moved
    assert stack.billing().get_order(ALICE, "4817263").status == "shipped"
