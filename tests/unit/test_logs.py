"""JSON log lines (supportbot/logs.py): parseable, masked, with the conversation id."""
from __future__ import annotations

import io
import json
import logging
from typing import Any, Dict, Iterator

import pytest

from supportbot import logs

CARD = "4111 1111 1111 1111"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """A logger whose lines go through the JSON formatter into a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("actions"))
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_with_a_card_number_comes_out_masked_as_json_with_the_conversation(captured: io.StringIO) -> None:
    logger = logging.getLogger("test.logs")
    with logs.conversation("web-1234abcd"):
        logger.info("Customer said %r", f"my card is {CARD}, mail me at jo@example.com or +44 20 7946 0958")
    logger.info("between conversations")
    entry, outside = lines(captured)
    assert entry["conversation_id"] == "web-1234abcd"
    assert entry["level"] == "INFO" and entry["service"] == "actions" and entry["logger"] == "test.logs"
    assert entry["time"].endswith("Z")
    text = json.dumps(entry)
    assert "4111" not in text and "jo@example.com" not in text and "7946" not in text
    assert "[card number ending 1111]" in entry["message"]
    assert "[email]" in entry["message"] and "[phone]" in entry["message"]
    assert "conversation_id" not in outside


def test_extras_and_exceptions_are_masked_too(captured: io.StringIO) -> None:
    logger = logging.getLogger("test.logs")
    try:
        raise ValueError(f"bad input {CARD}")
    except ValueError:
        logger.exception("failed", extra={"conversation_id": "rest-7", "text": f"card {CARD}",
                                          "status": 500})
    (entry,) = lines(captured)
    assert entry["conversation_id"] == "rest-7"
    assert entry["status"] == 500
    assert entry["text"] == "card [card number ending 1111]"
    assert "ValueError: bad input [card number ending 1111]" in entry["exception"]
    assert CARD not in json.dumps(entry)


@pytest.mark.parametrize("kept", [
    "serving on http://127.0.0.1:5056",
    "at 2026-12-05 23:58:02.123",
    "Handoff H-1A2B3C4D filed as ticket 42",
    "slack ts 1733443200.123456",
])
def test_addresses_dates_and_references_are_not_taken_for_phone_numbers(kept: str) -> None:
    assert logs.mask_log_text(kept) == kept


@pytest.mark.parametrize("phone", ["+1 (415) 555-0100", "020 7946 0958", "+33 6 12 34 56 78"])
def test_phone_numbers_are_masked(phone: str) -> None:
    assert logs.mask_log_text(f"call me on {phone} please") == "call me on [phone] please"


def test_a_wrong_log_format_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="SUPPORTBOT_LOG_FORMAT must be one of text, json, not 'yaml'"):
        logs.log_format({"SUPPORTBOT_LOG_FORMAT": "yaml"})
    assert logs.log_format({}) == "text"
    assert logs.configure("actions", environ={}) is False


def test_json_format_gives_every_logger_one_json_handler() -> None:
    root = logging.getLogger()
    sanic = logging.getLogger("sanic.access")
    saved: Dict[str, Any] = {"root": (list(root.handlers), root.level),
                             "sanic": (list(sanic.handlers), sanic.propagate)}
    sanic.addHandler(logging.StreamHandler(io.StringIO()))
    try:
        assert logs.configure("billing", environ={"SUPPORTBOT_LOG_FORMAT": "JSON"}) is True
        (handler,) = root.handlers
        assert isinstance(handler.formatter, logs.JsonFormatter) and handler.formatter.service == "billing"
        assert sanic.handlers == [] and sanic.propagate  # its records reach the JSON handler
    finally:
        root.handlers[:] = saved["root"][0]
        root.setLevel(saved["root"][1])
        sanic.handlers[:], sanic.propagate = saved["sanic"]
