"""Card numbers never slip through masking: a generated corpus of typing styles, metadata,
numbers that must stay, card numbers split over two messages, and log records."""
import io
import logging
import re
import threading
import time

import pytest

from supportbot import redact
from supportbot.redact import (
    SPLIT_MASK,
    CardFragments,
    find_card_numbers,
    install_log_masking,
    luhn_valid,
    mask_card_numbers,
    mask_in_structure,
)


def _with_check_digit(body: str) -> str:
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))


PANS = [
    "4111111111111111", "4012888888881881",  # Visa
    "5555555555554444", "2223003122003222",  # Mastercard, 5- and 2-series
    "378282246310005",  # Amex
    "6011111111111117",  # Discover
    _with_check_digit("621234567890123456"),  # 19 digits
]

SEPARATORS = [
    " ", "  ", " - ", "-", ".", "/", "_", "\\", ",", "\t", "\n", "\r\n", ". ",
    "\u00a0", "\u202f", "\u2007", "\u2009", "\u3000", "\u200b", "\u2013", "\uff0d", "_/_",
]
MIXED = [" ", "-", ".", "\u00a0", "/", "  ", "_", "\t"]
STANDARD, IRREGULAR = [4, 4, 4, 4, 4], [3, 5, 2, 6, 1, 7]
FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))


def _grouped(pan: str, sizes, separators) -> str:
    """`pan` cut into groups of the given sizes (repeated), joined by the separators in turn."""
    groups, start = [], 0
    while start < len(pan):
        size = sizes[len(groups) % len(sizes)]
        groups.append(pan[start:start + size])
        start += size
    return groups[0] + "".join(separators[i % len(separators)] + g for i, g in enumerate(groups[1:]))


def _styles(pan: str):
    """Every way of typing `pan` the probes used, and a few more."""
    yield pan
    for separator in SEPARATORS:
        yield _grouped(pan, STANDARD, [separator])
        yield _grouped(pan, IRREGULAR, [separator])
    yield _grouped(pan, [4, 6, 5, 4], [" "])  # Amex grouping
    yield _grouped(pan, STANDARD, MIXED)
    yield _grouped(pan, IRREGULAR, MIXED[::-1])
    yield _grouped(pan, [1], [" "])  # one digit at a time
    yield _grouped(pan, [1], ["-", "\u00a0", ". "])
    yield _grouped(pan, STANDARD, [" "]).translate(FULL_WIDTH)
    yield pan.translate(ARABIC_INDIC)


POSITIONS = [
    "{}", "my card is {} thanks", "{} 123", "{}123", "{} 12/27", "{} 12/27 123", "{}-0327",
    "{} exp 12/27 cvv 123", "({})", "card:{}.", '"{}"', "#{}!", "{}, please charge it",
    "pay with {}\nthanks", "ref 12 {}", "card\t{}\t",
]


def _ascii_digits(text: str) -> str:
    return "".join(str(int(char)) for char in re.findall(r"\d", text))


def _leaks(pan: str, output: str) -> bool:
    digits = _ascii_digits(output)
    return pan in digits or pan[:12] in digits


@pytest.mark.parametrize("pan", PANS)
@pytest.mark.parametrize("position", POSITIONS)
def test_every_typing_style_is_masked(pan, position):
    failures = []
    for style in _styles(pan):
        text = position.format(style)
        masked, count = mask_card_numbers(text)
        if count != 1 or _leaks(pan, masked) or "[card number ending " not in masked:
            failures.append((text, masked, count))
    assert not failures


@pytest.mark.parametrize("pan", PANS)
def test_card_numbers_in_metadata_are_masked(pan):
    for style in _styles(pan):
        metadata = {"a": [{"b": f"card {style}"}, 7], "c": (style, None), "d": {"e": {"f": [style + " 123"]}}}
        masked, count = mask_in_structure(metadata)
        assert count == 3 and not _leaks(pan, repr(masked)), (style, masked)
        assert masked["a"][1] == 7 and masked["c"][1] is None and set(masked) == {"a", "c", "d"}


def test_mask_format_and_several_cards():
    assert mask_card_numbers("card 4111 1111 1111 1111 ok") == ("card [card number ending 1111] ok", 1)
    masked, count = mask_card_numbers("4111111111111111 378282246310005")  # one run, two cards
    assert count == 2 and masked == "[card number ending 1111] [card number ending 0005]"
    assert mask_card_numbers(None) == ("", 0)


UNCHANGED = [
    "order 4817263", "my orders are 4817263 and 4817264", "Order #4817263, please",
    "INV-2024-0042", "invoice INV-2024-0042 from 2024-03-05",
    "+1 415 555 0100", "020 7946 0958", "call 0044 20 7946 0018", "(415) 555-0100", "+44 20 7946 0958",
    "2024-03-05", "05/03/2024", "expires 12/27", "on 5 March 2024 at 12:30",
    "1,299.00", "I was charged $1,299.00 and then €45.50", "charged 129.99 twice",
    "123456789012", "4111 1111 1111", "card ending 1111",
    # 16 digits whose every 13-19 digit window from an issuer digit fails Luhn
    "4111 1111 1111 1112", "6011111111111118", "1234 5678 1234 5678", "378282246310006",
    "1Z999AA10123456784", "LX123456789CN", "TBA123456789012", "9400 1000 0000 0000 0000 00",
    "ticket TCK-48213", "ticket #120934", "version 3.6.1", "",
]


@pytest.mark.parametrize("text", UNCHANGED)
def test_other_numbers_are_left_alone(text):
    assert mask_card_numbers(text) == (text, 0)
    assert mask_in_structure({"note": [text]}) == ({"note": [text]}, 0)


def test_structure_keys_types_depth_and_no_mutation():
    value = {"4111111111111111": 4111111111111111, "list": ["4111111111111111"], "flag": True, "x": 1.5}
    masked, count = mask_in_structure(value)
    assert count == 1 and masked["list"] == ["[card number ending 1111]"]
    assert masked["4111111111111111"] == 4111111111111111 and masked["flag"] is True and masked["x"] == 1.5
    assert value["list"] == ["4111111111111111"]  # the input is not changed
    nested = "4111111111111111"
    for _ in range(redact.MAX_STRUCTURE_DEPTH):
        nested = [nested]
    assert mask_in_structure(nested)[1] == 1
    with pytest.raises(ValueError):
        mask_in_structure([nested])
    cyclic = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError):
        mask_in_structure(cyclic)


@pytest.mark.parametrize("text", ["1 " * 50000, "1-" * 50000, "5 " * 50000, "5" * 100000, "4" * 100000])
def test_pathological_input_is_linear(text):
    started = time.perf_counter()
    mask_card_numbers(text)
    assert time.perf_counter() - started < 2.0  # a guard against catastrophic backtracking only


def test_long_message_with_cards():
    text = "Order 4817263 was charged 1,299.00 on 2024-03-05, card 4111 1111 1111 1111 exp 12/27. " * 1200
    assert len(text) > 100_000
    started = time.perf_counter()
    masked, count = mask_card_numbers(text)
    assert time.perf_counter() - started < 2.0
    assert count == 1200 and "4111 1111" not in masked and masked.count("4817263") == 1200


# --- a card number split over two messages

def test_split_card_number_is_masked_in_the_second_message():
    fragments = CardFragments()
    assert fragments.mask_message("s1", "my card is 4111 1111") == ("my card is 4111 1111", 0)
    masked, count = fragments.mask_message("s1", "1111 1111 thanks")
    assert (masked, count) == ("[rest of card number] thanks", 1)


@pytest.mark.parametrize("pan", PANS)
@pytest.mark.parametrize("cut", [4, 8, 12])
def test_split_at_any_group(pan, cut):
    fragments = CardFragments()
    first = _grouped(pan[:cut], STANDARD, ["\u00a0"])
    assert fragments.mask_message("s", f"card {first}") == (f"card {first}", 0)
    masked, count = fragments.mask_message("s", _grouped(pan[cut:], STANDARD, [" "]) + " 123")  # CVV after
    assert (masked, count) == (SPLIT_MASK, 1)  # no digit of the second part, nor the CVV, is shown


def test_senders_do_not_mix_fragments():
    fragments = CardFragments()
    fragments.mask_message("alice", "4111 1111")
    fragments.mask_message("bob", "5555 5555")
    assert fragments.mask_message("bob", "1111 1111") == ("1111 1111", 0)
    assert fragments.mask_message("alice", "1111 1111")[1] == 1


def test_only_the_previous_message_and_numbers_that_form_no_card():
    fragments = CardFragments()
    fragments.mask_message("s", "4111 1111")
    fragments.mask_message("s", "sorry, one moment")
    assert fragments.mask_message("s", "1111 1111") == ("1111 1111", 0)
    fragments.mask_message("s", "4817263")  # an order number, then a phone number
    assert fragments.mask_message("s", "4155550100") == ("4155550100", 0)


def test_fragments_expire():
    now = [1000.0]
    fragments = CardFragments(ttl_seconds=600, clock=lambda: now[0])
    fragments.mask_message("s", "4111 1111")
    now[0] += 599
    assert fragments.mask_message("s", "1111 1111")[1] == 1
    fragments.mask_message("s", "4111 1111")
    now[0] += 601
    assert fragments.mask_message("s", "1111 1111") == ("1111 1111", 0)


def test_fragments_keep_only_the_most_recent_senders():
    fragments = CardFragments(max_senders=2)
    for sender in ("a", "b", "c"):
        fragments.mask_message(sender, "4111 1111")
    assert fragments.mask_message("a", "1111 1111")[1] == 0
    assert fragments.mask_message("c", "1111 1111")[1] == 1


def test_fragments_from_many_threads():
    fragments, results = CardFragments(), {}

    def converse(sender):
        fragments.mask_message(sender, "4111 1111 1111")
        results[sender] = fragments.mask_message(sender, "1111")

    threads = [threading.Thread(target=converse, args=(f"s{i}",)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results.values()) == {("[rest of card number]", 1)}


# --- log records

@pytest.fixture
def masked_log(monkeypatch):
    """A logger writing to a StringIO, with log masking installed; the factory is restored after."""
    previous = logging.getLogRecordFactory()
    monkeypatch.setattr(redact, "_log_masking_installed", False)
    install_log_masking()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.card_masking")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)
    logging.setLogRecordFactory(previous)


class _Card:
    def __str__(self):
        return "card object 4111-1111-1111-1111"


def test_log_records_are_masked(masked_log):
    logger, stream = masked_log
    pan = "4111111111111111"
    logger.info("card %s", "4111 1111 1111 1111")
    logger.info(f"f-string card {pan}")
    logger.info("payload %s", {"card": pan, "nested": [pan]})
    logger.info("two %s %r", [pan], {"card": {"deeper": pan}})
    logger.info("%(card)s and %(other)s", {"card": pan, "other": 5})
    logger.info("as a number %d", int(pan))
    logger.info("split 4111 1111 %s", "1111 1111")
    logger.info("object %s", _Card())
    logger.warning(_Card())
    output = stream.getvalue()
    assert not _leaks(pan, output), output
    assert output.count("[card number ending 1111]") == 11


def test_exceptions_in_log_records_are_masked(masked_log):
    logger, stream = masked_log
    try:
        raise ValueError("card 4111111111111111 was declined")
    except ValueError:
        logger.exception("payment failed")
    output = stream.getvalue()
    assert "Traceback" in output and "ValueError: card [card number ending 1111]" in output
    assert not _leaks("4111111111111111", output), output


def test_extra_values_and_loggers_made_later_are_masked(masked_log):
    _, stream = masked_log
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(request)s %(status)s"))
    access = logging.getLogger("tests.card_masking.access_made_later")
    access.addHandler(handler)
    access.propagate = False
    access.info("", extra={"request": "GET /pay?card=4111111111111111", "status": 200})
    access.removeHandler(handler)
    assert stream.getvalue() == "GET /pay?card=[card number ending 1111] 200\n"


def test_install_log_masking_is_idempotent(masked_log):
    factory = logging.getLogRecordFactory()
    install_log_masking()
    assert logging.getLogRecordFactory() is factory


def test_machine_numbers_whose_middle_passes_luhn_are_left_alone():
    """Slack timestamps ride in message metadata: masking one would break the reply thread.
    Many of these contain a Luhn-valid 13-16 digit window starting with 2-6 in their middle."""
    stamps = [f"17333{n:05d}.{(n * 7919) % 1_000_000:06d}" for n in range(0, 100_000, 997)]
    assert any(find_card_numbers(stamp.replace(".", "")) for stamp in stamps)  # the trap is real
    for stamp in stamps:
        assert mask_card_numbers(stamp) == (stamp, 0)
        assert mask_in_structure({"ts": stamp, "thread_ts": stamp}) == ({"ts": stamp, "thread_ts": stamp}, 0)
