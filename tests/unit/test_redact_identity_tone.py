"""Card masking, signed identity tokens, and the anger score."""
import time

import jwt
import pytest

from supportbot.identity import customer_from_metadata, issue_token
from supportbot.nlu.tone import anger_score
from supportbot.redact import luhn_valid, mask_card_numbers


@pytest.mark.parametrize("text, count", [
    ("card 4111 1111 1111 1111 thanks", 1), ("4111-1111-1111-1111", 1), ("5500005555555559", 1),
    ("two: 4111111111111111 and 378282246310005", 2), ("order 4817263", 0),
    ("call 0044 20 7946 0018", 0),
    ("4111 1111 1111 1112", 0),
])
def test_mask_card_numbers(text, count):
    masked, found = mask_card_numbers(text)
    assert found == count
    if count:
        assert "1111 1111" not in masked and "ending" in masked


def test_luhn():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def test_identity_token_roundtrip_and_rejections():
    secret = "a-test-secret-that-is-32-bytes-long!"
    assert customer_from_metadata({"customer_token": issue_token("C-1001", secret)}, secret) == "C-1001"
    forged = issue_token("C-1001", "another-test-secret-32-bytes-long!!")
    assert customer_from_metadata({"customer_token": forged}, secret) is None
    expired = jwt.encode({"sub": "C-1001", "exp": int(time.time()) - 5}, secret, algorithm="HS256")
    assert customer_from_metadata({"customer_token": expired}, secret) is None
    no_exp = jwt.encode({"sub": "C-1001"}, secret, algorithm="HS256")
    assert customer_from_metadata({"customer_token": no_exp}, secret) is None
    assert customer_from_metadata({"customer_id": "C-1001"}, secret) is None  # plain ids are not trusted
    assert customer_from_metadata({"customer_token": issue_token("C-1001", secret)}, None) is None


def test_anger_score_separates_calm_from_angry():
    assert anger_score("I'm a bit disappointed with the quality") < 0.5
    assert anger_score("This is UNACCEPTABLE, worst service ever!!!") >= 0.5
    assert anger_score("WHERE IS MY PACKAGE I HAVE WAITED THREE WEEKS") >= 0.5
    assert anger_score("") == 0.0
