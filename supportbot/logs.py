"""Structured logs: one JSON object per line, with the conversation id, and masked.

SUPPORTBOT_LOG_FORMAT=json makes the Rasa server, the action server and the billing service
write every log line of the process as JSON on stdout (docs/observability.md#json-logs):

    {"time": "2026-12-06T00:01:25.123Z", "level": "INFO", "service": "actions",
     "logger": "actions.handoff", "message": "Handoff H-1A2B3C4D for web-5f... (legal)",
     "conversation_id": "web-5f..."}

`conversation_id` is there when the line was logged while a conversation was being handled
(the channels and the action server set it with `conversation(...)`) or passed as
`extra={"conversation_id": ...}`. The message, the exception text and every extra field go
through `mask_log_text`: card numbers (supportbot.redact, already masked when the record is
made), email addresses and phone numbers are masked, so a customer's text never reaches a log
unmasked. The default, `text`, keeps each server's usual human-readable lines.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, Mapping, Optional

from supportbot import settings
from supportbot.redact import mask_card_numbers

FORMAT_SETTING = "SUPPORTBOT_LOG_FORMAT"
FORMATS = ("text", "json")

# The learning collector's email pattern (supportbot/learning/collector.py). Its phone pattern
# is too wide for log lines, which hold IP addresses, ports and dates: here a phone number is
# 9-15 digits with spaces, dashes or brackets (two at most) between them, not part of a longer token.
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w.:/-])\+?\(?\d(?:[ ()-]{0,2}\d){8,14}(?![\w.:/-])")

_conversation: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("conversation_id", default=None)
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "conversation_id"}


def mask_log_text(text: str) -> str:
    """Card numbers, email addresses and phone numbers out of one piece of a log line."""
    text, _ = mask_card_numbers(text)
    return PHONE.sub("[phone]", EMAIL.sub("[email]", text))


@contextmanager
def conversation(conversation_id: Optional[str]) -> Iterator[None]:
    """Every line logged inside (in this task or thread, and tasks it starts) names the conversation."""
    token = _conversation.set(conversation_id)
    try:
        yield
    finally:
        _conversation.reset(token)


def current_conversation() -> Optional[str]:
    return _conversation.get()


def log_format(environ: Optional[Mapping[str, str]] = None) -> str:
    """SUPPORTBOT_LOG_FORMAT: `text` or `json`; a ValueError naming the variable otherwise."""
    value = (settings.get(FORMAT_SETTING, environ) or "").lower()
    if value not in FORMATS:
        raise ValueError(f"{FORMAT_SETTING} must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def _loggable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return mask_log_text(value if isinstance(value, str) else repr(value))


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON, every text in it masked (`mask_log_text`)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: Dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": mask_log_text(record.getMessage()),
        }
        conversation_id = getattr(record, "conversation_id", None) or _conversation.get()
        if conversation_id:
            entry["conversation_id"] = mask_log_text(str(conversation_id))
        for key in sorted(record.__dict__.keys() - _RECORD_ATTRIBUTES):
            if not key.startswith("_"):
                entry[key] = _loggable(record.__dict__[key])
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = mask_log_text(record.exc_text)
        if record.stack_info:
            entry["stack"] = mask_log_text(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(service: str, level: int = logging.INFO, environ: Optional[Mapping[str, str]] = None) -> bool:
    """With SUPPORTBOT_LOG_FORMAT=json: every logger of the process, and Python's warnings,
    write JSON lines to stdout through one handler on the root logger (loggers that had their
    own, such as Sanic's, now pass their records up to it). Returns whether it did; with
    `text` it changes nothing.
    Call it after the server's framework has set up its own logging."""
    if log_format(environ) != "json":
        return False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(min(level, root.level) if root.level else level)
    logging.captureWarnings(True)  # Python's warnings too (logger py.warnings), not raw stderr lines
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.handlers:
            for old in list(logger.handlers):
                logger.removeHandler(old)
            logger.propagate = True
    return True
