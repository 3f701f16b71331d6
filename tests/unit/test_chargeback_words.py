"""Which payment-problem messages make it a chargeback for a person (actions/payments.py)."""
import pytest

from actions.payments import CHARGEBACK_WORDS


@pytest.mark.parametrize("text", [
    "I'm filing a chargeback", "my bank will do a charge-back", "I'll reverse the charge",
    "I'm disputing it with my bank", "contest the payment with my card issuer",
])
def test_chargebacks_are_found(text):
    assert CHARGEBACK_WORDS.search(text)


@pytest.mark.parametrize("text", [
    "my bank declined the card", "I was charged twice", "my payment failed, what now?",
    "the bank says the card expired",
])
def test_ordinary_payment_problems_are_not_chargebacks(text):
    assert not CHARGEBACK_WORDS.search(text)
