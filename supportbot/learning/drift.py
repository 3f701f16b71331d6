"""Drift and health of the live NLU, for a daily schedule (`supportbot learn drift`).

Per day and per intent: how many customer turns, the mean confidence, the fallback rate, the share
of words the training data never had, and the model's accuracy as reviewers corrected it. The
recent window is compared with the one before it; a rising fallback rate, a shift of the intent
mix (chi-square) or an intent whose corrected accuracy drops is an alert: printed, exit 1, and
posted to Slack when SUPPORTBOT_ALERT_SLACK_CHANNEL is set. Thresholds and minimums: docs/learning.md.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from supportbot import settings
from supportbot.learning.imports import IMPORT_PREFIX
from supportbot.learning.review import ACCEPTED, OUT_OF_SCOPE
from supportbot.learning.store import LearningStore, TurnRow

FALLBACK_RISE = 0.05  # alert when the fallback rate rises by more than 5 points
ACCURACY_DROP = 0.05  # ... or an intent's corrected accuracy falls by more than 5 points
SHIFT_P = 0.01  # ... or the intent mix differs with p below this
# Below these, a change is noise: no alert is raised on it.
MIN_TURNS = 100  # turns each window needs before its fallback rate and intent mix are compared
MIN_REVIEWED = 20  # reviewed turns an intent needs in each window before its accuracy is compared
MIN_EXPECTED = 5  # chi-square's rule of thumb: intents expected less often are pooled as "(other)"

MASK = re.compile(r"\[[^\]]*\]")  # the collector's masks: [email], [card number ending 1111]
WORD = re.compile(r"\w+")


class DriftError(ValueError):
    """Bad input: the command says what and exits 2."""


def tokens(text: str) -> List[str]:
    """Lowercase word tokens; masks and bare numbers (order ids, amounts) are never vocabulary."""
    return [word for word in WORD.findall(MASK.sub(" ", text.lower())) if not word.isdigit()]


def vocabulary(nlu: Path) -> FrozenSet[str]:
    """Every token of the training examples under `nlu` (Rasa's reader strips entity markup)."""
    from rasa.shared.exceptions import RasaException
    from rasa.shared.nlu.training_data.loading import load_data

    if not nlu.is_dir():
        raise DriftError(f"no NLU training data folder at {nlu}")
    try:
        examples = load_data(str(nlu)).training_examples
    except RasaException as error:
        raise DriftError(f"cannot read the training data under {nlu}: {error}") from None
    if not examples:
        raise DriftError(f"no training examples under {nlu}")
    return frozenset(token for example in examples for token in tokens(example.get("text") or ""))


class LiveTurn(NamedTuple):
    at: datetime
    intent: str
    confidence: Optional[float]
    fell_back: bool
    text: str
    status: str
    label: Optional[str]


def corrected(turn: LiveTurn) -> Optional[bool]:
    """Whether the model's intent was right, as a reviewer decided (None: nobody did, or the turn
    was rejected as not training data). Out of scope counts as wrong unless the model said so; an
    FAQ topic matches the classifier's `faq`, and a part of a multi-intent matches it."""
    if turn.status not in (ACCEPTED, OUT_OF_SCOPE) or not turn.label:
        return None
    label = turn.label
    return label == turn.intent or label.split("/")[0] == turn.intent or label in turn.intent.split("+")


@dataclass
class Stats:
    volume: int = 0
    confidence_sum: float = 0.0
    scored: int = 0
    fallbacks: int = 0
    words: int = 0
    unseen: int = 0
    reviewed: int = 0
    correct: int = 0

    def add(self, turn: LiveTurn, known: FrozenSet[str]) -> None:
        self.volume += 1
        if turn.confidence is not None:
            self.confidence_sum += turn.confidence
            self.scored += 1
        self.fallbacks += turn.fell_back
        words = tokens(turn.text)
        self.words += len(words)
        self.unseen += sum(word not in known for word in words)
        right = corrected(turn)
        if right is not None:
            self.reviewed += 1
            self.correct += right

    @property
    def mean_confidence(self) -> Optional[float]:
        return self.confidence_sum / self.scored if self.scored else None

    @property
    def fallback_rate(self) -> Optional[float]:
        return self.fallbacks / self.volume if self.volume else None

    @property
    def unseen_share(self) -> Optional[float]:
        return self.unseen / self.words if self.words else None

    @property
    def accuracy(self) -> Optional[float]:
        return self.correct / self.reviewed if self.reviewed else None


@dataclass(frozen=True)
class Shift:
    statistic: float
    p: float
    dof: int
    changes: List[Tuple[str, float, float]]  # intent, previous share, recent share; biggest first


@dataclass
class Health:
    now: datetime
    window: int
    days: Dict[date, Stats]  # the table's days, oldest first, every intent
    day_intents: Dict[Tuple[date, str], Stats]
    previous: Dict[str, Stats]  # per intent, the window before the recent one
    recent: Dict[str, Stats]
    previous_total: Stats = field(default_factory=Stats)
    recent_total: Stats = field(default_factory=Stats)
    shift: Optional[Shift] = None
    shift_note: str = ""
    alerts: List[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(s.volume for s in self.days.values()) and not (
            self.previous_total.volume or self.recent_total.volume)


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; the collector writes UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def live_turns(store: LearningStore, start: datetime, end: datetime) -> List[LiveTurn]:
    """Customer turns in [start, end): imported rows are no one's live traffic."""
    query = (select(TurnRow.at, TurnRow.intent, TurnRow.confidence, TurnRow.fell_back, TurnRow.text,
                    TurnRow.status, TurnRow.label)
             .where(TurnRow.at >= start, TurnRow.at < end, ~TurnRow.conversation_id.startswith(IMPORT_PREFIX))
             .order_by(TurnRow.at, TurnRow.id))
    with store.session() as session:
        return [LiveTurn(_utc(at), intent or "(none)", confidence, bool(fell_back), text, status, label)
                for at, intent, confidence, fell_back, text, status, label in session.execute(query)]


def check(store: LearningStore, known: FrozenSet[str], now: Optional[datetime] = None, days: int = 14,
          window: int = 7) -> Health:
    """The last `days` days (UTC, today included) and the last `window` days against the `window`
    days before them; `known` is the training vocabulary."""
    now = _utc(now or datetime.now(timezone.utc))
    first_day = (now - timedelta(days=days - 1)).date()
    recent_start, previous_start = now - timedelta(days=window), now - timedelta(days=2 * window)
    health = Health(now, window, {first_day + timedelta(days=d): Stats() for d in range(days)},
                    defaultdict(Stats), defaultdict(Stats), defaultdict(Stats))
    start = min(datetime.combine(first_day, time(), timezone.utc), previous_start)
    for turn in live_turns(store, start, now):
        day = turn.at.date()
        if day in health.days:
            health.days[day].add(turn, known)
            health.day_intents[(day, turn.intent)].add(turn, known)
        if turn.at >= recent_start:
            health.recent[turn.intent].add(turn, known)
            health.recent_total.add(turn, known)
        elif turn.at >= previous_start:
            health.previous[turn.intent].add(turn, known)
            health.previous_total.add(turn, known)
    health.shift, health.shift_note = intent_shift({i: s.volume for i, s in health.previous.items()},
                                                   {i: s.volume for i, s in health.recent.items()})
    health.alerts = alerts(health)
    return health


def intent_shift(previous: Dict[str, int], recent: Dict[str, int]) -> Tuple[Optional[Shift], str]:
    """Chi-square test of the two windows' intent counts, or None and why it was not run."""
    from scipy.stats import chi2_contingency

    n_previous, n_recent = sum(previous.values()), sum(recent.values())
    if min(n_previous, n_recent) < MIN_TURNS:
        return None, (f"Intent mix not tested: each window needs {MIN_TURNS} turns "
                      f"(previous {n_previous}, recent {n_recent})")
    smaller, total = min(n_previous, n_recent), n_previous + n_recent
    columns: Dict[str, List[int]] = {}
    other = [0, 0]
    for intent in sorted(set(previous) | set(recent)):
        pair = [previous.get(intent, 0), recent.get(intent, 0)]
        if smaller * sum(pair) / total >= MIN_EXPECTED:
            columns[intent] = pair
        else:
            other = [other[0] + pair[0], other[1] + pair[1]]
    if smaller * sum(other) / total >= MIN_EXPECTED:
        columns["(other)"] = other
    if len(columns) < 2:
        return None, "Intent mix not tested: fewer than two intents are common enough to compare"
    statistic, p, dof, _ = chi2_contingency([[c[0] for c in columns.values()], [c[1] for c in columns.values()]])
    changes = [(intent, pair[0] / n_previous, pair[1] / n_recent) for intent, pair in columns.items()]
    changes.sort(key=lambda change: -abs(change[2] - change[1]))
    return Shift(float(statistic), float(p), int(dof), changes), ""


def _rose(before: Optional[float], after: Optional[float], limit: float) -> bool:
    """`after` exceeds `before` by more than `limit` (rounded: 10% → 15% is not above 5 points)."""
    return before is not None and after is not None and round(after - before, 9) > limit


def alerts(health: Health) -> List[str]:
    found = []
    previous, recent = health.previous_total, health.recent_total
    if min(previous.volume, recent.volume) >= MIN_TURNS and _rose(previous.fallback_rate, recent.fallback_rate,
                                                                   FALLBACK_RISE):
        found.append(f"fallback rate rose from {_pct(previous.fallback_rate)} to {_pct(recent.fallback_rate)} "
                     f"(turns: {previous.volume} → {recent.volume})")
    shift = health.shift
    if shift and shift.p < SHIFT_P:
        moves = ", ".join(f"{intent} {_pct(a)} → {_pct(b)}" for intent, a, b in shift.changes[:3])
        found.append(f"intent mix shifted (chi-square {shift.statistic:.1f}, {shift.dof} dof, p = {shift.p:.2g}): "
                     f"{moves}")
    for intent in sorted(set(health.previous) | set(health.recent)):
        before, after = health.previous.get(intent, Stats()), health.recent.get(intent, Stats())
        if min(before.reviewed, after.reviewed) >= MIN_REVIEWED and after.accuracy is not None and _rose(
                after.accuracy, before.accuracy, ACCURACY_DROP):
            found.append(f"{intent}: corrected accuracy fell from {_pct(before.accuracy)} to "
                         f"{_pct(after.accuracy)} (reviewed: {before.reviewed} → {after.reviewed})")
    return found


def post_to_slack(text: str) -> Tuple[bool, str]:
    """Post to SUPPORTBOT_ALERT_SLACK_CHANNEL with the Slack channel's bot token; (posted, what
    happened). No channel configured is not an error: alerts are then only printed."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackClientError

    channel = settings.get("SUPPORTBOT_ALERT_SLACK_CHANNEL")
    if not channel:
        return False, "Not posted to Slack: SUPPORTBOT_ALERT_SLACK_CHANNEL is not set."
    token = settings.get("SLACK_BOT_TOKEN")
    if not token:
        return False, f"Not posted to Slack {channel}: SLACK_BOT_TOKEN is not set."
    client = WebClient(token=token, base_url=settings.get("SLACK_API_URL"), timeout=10)
    try:
        client.chat_postMessage(channel=channel, text=text)
    except (SlackClientError, OSError) as error:  # an API error, or Slack unreachable
        return False, f"Posting to Slack {channel} failed: {error}"
    return True, f"Posted to Slack {channel}."


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _number(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table: readable in a terminal, and pasted as is into a report."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _day_rows(days: Dict[date, Stats]) -> List[List[object]]:
    return [[day.isoformat(), s.volume, _number(s.mean_confidence), _pct(s.fallback_rate), _pct(s.unseen_share),
             s.reviewed, _pct(s.accuracy)] for day, s in days.items()]


def _window_row(name: str, a: Stats, b: Stats) -> List[object]:
    return [name, f"{a.volume} → {b.volume}", f"{_number(a.mean_confidence)} → {_number(b.mean_confidence)}",
            f"{_pct(a.fallback_rate)} → {_pct(b.fallback_rate)}",
            f"{_pct(a.unseen_share)} → {_pct(b.unseen_share)}",
            f"{_pct(a.accuracy)} ({a.reviewed}) → {_pct(b.accuracy)} ({b.reviewed})"]


def _intent_rows(health: Health) -> List[List[object]]:
    intents = sorted(set(health.previous) | set(health.recent), key=lambda i: (-health.recent[i].volume, i))
    rows = [_window_row(i, health.previous[i], health.recent[i]) for i in intents]
    return rows + [_window_row("**all**", health.previous_total, health.recent_total)]


DAY_HEADERS = ["day (UTC)", "turns", "mean confidence", "fallback", "unseen words", "reviewed",
               "corrected accuracy"]
INTENT_HEADERS = ["intent", "turns", "mean confidence", "fallback", "unseen words",
                  "corrected accuracy (reviewed)"]


def describe(health: Health, intent: Optional[str] = None) -> str:
    days = health.days if intent is None else {d: health.day_intents[(d, intent)] for d in health.days}
    lines = [f"NLU health at {health.now:%Y-%m-%d %H:%M} UTC", "",
             f"Per day{f' ({intent})' if intent else ''}:", "", table(DAY_HEADERS, _day_rows(days)), "",
             f"Per intent, the {health.window} days before the last {health.window} → the last {health.window}:",
             "", table(INTENT_HEADERS, _intent_rows(health)), ""]
    shift = health.shift
    lines.append(f"Intent mix: chi-square {shift.statistic:.1f}, {shift.dof} dof, p = {shift.p:.2g}"
                 if shift else health.shift_note)
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=_positive, default=14,
                        help="days in the per-day table (default: %(default)s)")
    parser.add_argument("--window", type=_positive, default=7,
                        help="days in each window: the last ones against the ones before (default: %(default)s)")
    parser.add_argument("--intent", help="show the per-day table for this intent only")
    parser.add_argument("--nlu", type=Path, default=Path("data/nlu"),
                        help="training data whose words are known (default: %(default)s)")
    parser.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")


def _positive(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of days, at least 1, not {value!r}")
    return int(value)


def run(args: argparse.Namespace) -> int:
    """Exit 0 healthy (or no data), 1 with alerts, 2 on bad input."""
    try:
        known = vocabulary(args.nlu)
    except DriftError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        health = check(LearningStore(args.db), known, days=args.days, window=args.window)
    except SQLAlchemyError as error:
        print(f"Cannot read the learning store: {error}", file=sys.stderr)
        return 2
    if health.empty:
        print(f"No data: the learning store has no customer turns in the last {max(args.days, 2 * args.window)} "
              "days (is `supportbot learn collect` running?). Nothing to check.")
        return 0
    print(describe(health, args.intent))
    if not health.alerts:
        print("\nHealthy: no alerts.")
        return 0
    print(f"\n{len(health.alerts)} alert(s):")
    print("\n".join(f"  - {alert}" for alert in health.alerts))
    heading = f"supportbot NLU health, {health.now:%Y-%m-%d %H:%M} UTC:"
    text = "\n".join([heading, *(f"• {alert}" for alert in health.alerts)])
    print(post_to_slack(text)[1])
    return 1
