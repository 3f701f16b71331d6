"""`supportbot learn import FILE.csv`: labelled history (e.g. a helpdesk export of tagged tickets)
into the learning store, as accepted-for-review items.

UTF-8 CSV with a header `text,intent` and an optional `source` column; intents as in the domain,
FAQ topics as `faq/<topic>`. The whole file is checked before anything is written: an unknown
intent, an empty or over-long text, a bad header or bytes that are not UTF-8 reject the file with
the rows to fix, and nothing is stored. Texts already in the file or in the store (compared
case- and punctuation-insensitively) are skipped and counted. Texts are masked like captured ones.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import FrozenSet, List, Optional, Set

from sqlalchemy import select

from supportbot.learning.collector import mask
from supportbot.learning.store import LearningStore, TurnRow, normalise

MAX_TEXT_CHARS = 2000  # as the channels accept (SUPPORTBOT_MAX_MESSAGE_CHARS)
MAX_PROBLEMS_SHOWN = 20
IMPORT_PREFIX = "import:"


class ImportRejected(ValueError):
    """The file cannot be imported; `problems` says where and why."""

    def __init__(self, problems: List[str]) -> None:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        super().__init__("\n".join(shown + ([f"... and {more} more"] if more else [])))
        self.problems = problems


@dataclass
class ImportResult:
    imported: int = 0
    duplicates: int = 0
    sources: Set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Row:
    line: int
    text: str
    intent: str
    source: str


def read_rows(path: Path, labels: FrozenSet[str], default_source: str) -> List[_Row]:
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise ImportRejected([f"{path}: line {line} is not UTF-8 (save the file as UTF-8 and retry)"]) from None
    reader = csv.DictReader(io.StringIO(content, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    if "text" not in header or "intent" not in header:
        raise ImportRejected([f"{path}: the header must name the columns text and intent (and optionally "
                            f"source); it is {','.join(reader.fieldnames or []) or 'empty'}"])
    reader.fieldnames = header
    rows, problems = [], []
    for number, record in enumerate(reader, start=2):
        text = (record.get("text") or "").strip()
        intent = (record.get("intent") or "").strip()
        source = (record.get("source") or "").strip() or default_source
        if not text:
            problems.append(f"line {number}: the text is empty")
        elif len(text) > MAX_TEXT_CHARS:
            problems.append(f"line {number}: the text has {len(text)} characters, more than {MAX_TEXT_CHARS}")
        if intent not in labels:
            problems.append(f"line {number}: unknown intent {intent!r} (intents as in domain/, FAQ topics "
                            "as faq/<topic>)")
        rows.append(_Row(number, text, intent, source[:64]))
    if problems:
        raise ImportRejected(problems)
    if not rows:
        raise ImportRejected([f"{path}: no rows under the header"])
    return rows


def import_csv(store: LearningStore, path: Path, labels: FrozenSet[str],
               source: Optional[str] = None) -> ImportResult:
    rows = read_rows(path, labels, source or path.stem)
    result = ImportResult()
    now = datetime.now(timezone.utc)
    with store.session() as session, session.begin():
        seen = set(session.scalars(select(TurnRow.normalised).where(TurnRow.label.isnot(None))))
        for row in rows:
            text = mask(row.text)
            key = normalise(text)
            if key in seen:
                result.duplicates += 1
                continue
            seen.add(key)
            session.add(TurnRow(
                conversation_id=IMPORT_PREFIX + row.source, text=text, normalised=key,
                message_id=hashlib.sha256(key.encode("utf-8")).hexdigest()[:32],
                label=row.intent, label_source=row.source, at=now, reasons_json='["imported"]'))
            result.imported += 1
            result.sources.add(row.source)
    return result
