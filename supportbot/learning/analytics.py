"""Support analytics (`supportbot report`): how conversations went, overall and per channel, per
intent and per day, as report.md with PNG plots.

- **containment**: conversations with no handoff; **escalation rate**: those with one;
- **fallback rate**: customer turns NLU was unsure of;
- **CSAT**: the share of 1-5 chat ratings that are 4 or 5; **thumbs**: votes up and down on answers;
- **first-contact resolution**: the customer started no other conversation on the same intent
  within 7 days.

A conversation is a conversation id in the learning store (imported rows aside), started at its
first turn; its channel is its first turn's, its intent the first one that names a goal (a
reviewer's or a "did you mean" label before the model's; greetings, yes/no and the like are not
goals). Ratings, votes and handoffs count for the conversation they belong to.

A conversation's customer is its verified customer: the `customer_id` slot as the collector read
it (set from a signed channel token or after the identity check), else the customer id its
handoff records or feedback carry. An anonymous conversation has none. First-contact resolution
is therefore judged only for conversations whose customer is known and that are at least 7 days
old; the report says how many that is.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from supportbot import settings
from supportbot.learning.drift import table
from supportbot.learning.imports import IMPORT_PREFIX
from supportbot.learning.store import ConversationCustomerRow, LearningStore, TurnRow
from supportbot.store import FeedbackStore, HandoffStore

REPEAT_WINDOW = timedelta(days=7)  # a new conversation on the same intent within it: not resolved
# Intents that say nothing about what the customer came for.
NOT_A_GOAL = frozenset({"greet", "goodbye", "affirm", "deny", "thank", "bot_challenge", "inform", "nlu_fallback"})
NO_GOAL = "(none)"
UNKNOWN_CHANNEL = "(unknown)"
REPORT = "report.md"


@dataclass
class Conversation:
    id: str
    start: datetime
    channel: str
    intent: str = NO_GOAL
    turns: int = 0
    fallbacks: int = 0
    escalated: bool = False
    rating: Optional[int] = None
    up: int = 0
    down: int = 0
    customer: Optional[str] = None
    repeated: Optional[bool] = None  # None: not judged (customer unknown, or under 7 days old)


@dataclass
class Figures:
    conversations: int = 0
    escalated: int = 0
    turns: int = 0
    fallbacks: int = 0
    ratings: int = 0
    satisfied: int = 0
    up: int = 0
    down: int = 0
    judged: int = 0
    resolved: int = 0

    def add(self, c: Conversation) -> None:
        self.conversations += 1
        self.escalated += c.escalated
        self.turns += c.turns
        self.fallbacks += c.fallbacks
        if c.rating is not None:
            self.ratings += 1
            self.satisfied += c.rating >= 4
        self.up += c.up
        self.down += c.down
        if c.repeated is not None:
            self.judged += 1
            self.resolved += not c.repeated

    @property
    def containment(self) -> Optional[float]:
        return _share(self.conversations - self.escalated, self.conversations)

    @property
    def escalation(self) -> Optional[float]:
        return _share(self.escalated, self.conversations)

    @property
    def fallback_rate(self) -> Optional[float]:
        return _share(self.fallbacks, self.turns)

    @property
    def csat(self) -> Optional[float]:
        return _share(self.satisfied, self.ratings)

    @property
    def thumbs_up(self) -> Optional[float]:
        return _share(self.up, self.up + self.down)

    @property
    def fcr(self) -> Optional[float]:
        return _share(self.resolved, self.judged)


def _share(part: int, whole: int) -> Optional[float]:
    return part / whole if whole else None


@dataclass
class Report:
    now: datetime
    since: Optional[date]
    overall: Figures = field(default_factory=Figures)
    channels: Dict[str, Figures] = field(default_factory=lambda: defaultdict(Figures))
    intents: Dict[str, Figures] = field(default_factory=lambda: defaultdict(Figures))
    days: Dict[date, Figures] = field(default_factory=lambda: defaultdict(Figures))
    customers_known: int = 0
    feedback_elsewhere: int = 0  # conversations with ratings or votes the learning store lacks


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _goal(intent: Optional[str]) -> Optional[str]:
    """The first part of an intent (multi-intents: `greet+order_status`) that names a goal."""
    return next((part for part in (intent or "").split("+") if part and part not in NOT_A_GOAL), None)


def conversations(store: LearningStore, since: Optional[datetime]) -> Dict[str, Conversation]:
    """The live conversations that started at or after `since`, built from their turns."""
    live = ~TurnRow.conversation_id.startswith(IMPORT_PREFIX)
    query = select(TurnRow.conversation_id, TurnRow.at, TurnRow.channel, TurnRow.intent, TurnRow.fell_back,
                   TurnRow.label).where(live)
    if since is not None:
        started = (select(TurnRow.conversation_id).where(live).group_by(TurnRow.conversation_id)
                   .having(func.min(TurnRow.at) >= since))
        query = query.where(TurnRow.conversation_id.in_(started))
    found: Dict[str, Conversation] = {}
    with store.session() as session:
        for conversation_id, at, channel, intent, fell_back, label in session.execute(
                query.order_by(TurnRow.conversation_id, TurnRow.at, TurnRow.id)):
            c = found.get(conversation_id)
            if c is None:
                c = found[conversation_id] = Conversation(conversation_id, _utc(at), channel or UNKNOWN_CHANNEL)
            c.turns += 1
            c.fallbacks += bool(fell_back)
            goal = _goal(label) or (None if fell_back else _goal(intent))
            if c.intent == NO_GOAL and goal:
                c.intent = goal
    return found


def build(store: LearningStore, support_db: Optional[str] = None, since: Optional[date] = None,
          now: Optional[datetime] = None) -> Report:
    """The report's figures; `support_db` holds the handoff records and feedback."""
    now = _utc(now or datetime.now(timezone.utc))
    start = datetime.combine(since, time(), timezone.utc) if since else None
    report = Report(now, since)
    found = conversations(store, start)
    with store.session() as session:
        for conversation_id, customer_id in session.execute(
                select(ConversationCustomerRow.conversation_id, ConversationCustomerRow.customer_id)):
            if conversation_id in found:
                found[conversation_id].customer = customer_id
    for handoff in HandoffStore(support_db).list():
        c = found.get(handoff.conversation_id)
        if c is not None:
            c.escalated = True
            c.customer = c.customer or handoff.customer_id
    elsewhere = set()
    for feedback in FeedbackStore(support_db).list():
        c = found.get(feedback.conversation_id)
        if c is None:
            if start is None or _utc(feedback.created_at) >= start:
                elsewhere.add(feedback.conversation_id)
            continue
        c.customer = c.customer or feedback.customer_id
        if feedback.kind == "conversation":
            c.rating = feedback.value
        elif feedback.value > 0:
            c.up += 1
        else:
            c.down += 1
    report.feedback_elsewhere = len(elsewhere - _known(store, elsewhere))
    _judge_first_contact(found.values(), now)
    for c in sorted(found.values(), key=lambda c: c.start):
        report.customers_known += c.customer is not None
        for figures in (report.overall, report.channels[c.channel], report.intents[c.intent],
                        report.days[c.start.date()]):
            figures.add(c)
    return report


def _known(store: LearningStore, conversation_ids: Set[str]) -> Set[str]:
    """Which of these conversations the learning store has, whenever they started."""
    ids, known = sorted(conversation_ids), set()
    with store.session() as session:
        for chunk in range(0, len(ids), 500):
            query = select(TurnRow.conversation_id).where(TurnRow.conversation_id.in_(ids[chunk:chunk + 500]))
            known.update(session.scalars(query.distinct()))
    return known


def _judge_first_contact(found: Sequence[Conversation], now: datetime) -> None:
    starts: Dict[Tuple[str, str], List[datetime]] = defaultdict(list)
    for c in found:
        if c.customer and c.intent != NO_GOAL:
            starts[(c.customer, c.intent)].append(c.start)
    for c in found:
        if c.customer and c.intent != NO_GOAL and c.start <= now - REPEAT_WINDOW:
            later = starts[(c.customer, c.intent)]
            c.repeated = any(c.start < other <= c.start + REPEAT_WINDOW for other in later)


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def summary(report: Report) -> str:
    f = report.overall
    return table(["metric", "value", "out of"], [
        ["containment", _pct(f.containment), f"{f.conversations} conversations"],
        ["escalation rate", _pct(f.escalation), f"{f.conversations} conversations"],
        ["fallback rate", _pct(f.fallback_rate), f"{f.turns} customer turns"],
        ["CSAT (ratings of 4-5)", _pct(f.csat), f"{f.ratings} ratings"],
        ["thumbs up : down", f"{f.up} : {f.down} ({_pct(f.thumbs_up)} up)", f"{f.up + f.down} votes"],
        ["first-contact resolution", _pct(f.fcr), f"{f.judged} conversations judged"],
    ])


GROUP_HEADERS = ["conversations", "containment", "escalation", "fallback", "CSAT (ratings)", "thumbs up : down",
                 "first-contact resolution (judged)"]


def _group_rows(groups: Dict, name=str) -> List[List[object]]:
    return [[name(key), f.conversations, _pct(f.containment), _pct(f.escalation), _pct(f.fallback_rate),
             f"{_pct(f.csat)} ({f.ratings})", f"{f.up} : {f.down}", f"{_pct(f.fcr)} ({f.judged})"]
            for key, f in groups.items()]


def _by_volume(groups: Dict[str, Figures]) -> Dict[str, Figures]:
    return dict(sorted(groups.items(), key=lambda item: (-item[1].conversations, item[0])))


def _plot_groups(title: str, groups: Dict[str, Figures], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("containment", "containment"), ("fallback rate", "fallback_rate"), ("CSAT", "csat"),
               ("first-contact resolution", "fcr")]
    names = list(groups)
    height = 0.8 / len(metrics)
    figure, axes = plt.subplots(figsize=(8, 0.4 * len(names) + 2))
    for index, (label, attribute) in enumerate(metrics):
        values = [getattr(f, attribute) for f in groups.values()]
        positions = [p + (index - (len(metrics) - 1) / 2) * height for p in range(len(names))]
        axes.barh(positions, [float("nan") if v is None else v for v in values], height=height, label=label)
    axes.set_yticks(list(range(len(names))), names, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_title(title)
    axes.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_days(days: Dict[date, Figures], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4))
    for label, attribute in (("containment", "containment"), ("fallback rate", "fallback_rate"),
                             ("CSAT", "csat"), ("first-contact resolution", "fcr")):
        values = [getattr(f, attribute) for f in days.values()]
        axes.plot(list(days), [float("nan") if v is None else v for v in values], marker="o", label=label)
    axes.set_ylim(-0.02, 1.02)
    axes.set_title("Per day (conversations by the day they started, UTC)")
    axes.legend(fontsize=7)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def markdown(report: Report) -> str:
    f = report.overall
    period = f"since {report.since.isoformat()}" if report.since else "all conversations"
    lines = [f"# Support report, {period} (to {report.now:%Y-%m-%d %H:%M} UTC)", "", summary(report), "",
             f"The customer is known for {report.customers_known} of {f.conversations} conversations (from "
             "handoff records and feedback: the learning store keeps no customer id); first-contact "
             f"resolution is judged for {f.judged} of them, those at least {REPEAT_WINDOW.days} days old."]
    if report.feedback_elsewhere:
        lines.append("")
        lines.append(f"Ratings or votes on {report.feedback_elsewhere} conversations the learning store does "
                     "not have (not collected yet?) are left out.")
    sections = (("Per channel", "channel", "channels", _by_volume(report.channels), str),
                ("Per intent (the conversation's first goal)", "intent", "intents", _by_volume(report.intents),
                 str),
                ("Per day (UTC, by the day the conversation started)", "day", "days",
                 dict(sorted(report.days.items())), date.isoformat))
    for title, header, slug, groups, name in sections:
        lines += ["", f"## {title}", "", table([header, *GROUP_HEADERS], _group_rows(groups, name)), "",
                  f"![{slug}]({slug}.png)"]
    return "\n".join(lines) + "\n"


def write(report: Report, out: Path) -> Path:
    """report.md and its plots into `out`, all or nothing: written aside, then moved in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        _plot_groups("Per channel", _by_volume(report.channels), work / "channels.png")
        _plot_groups("Per intent", _by_volume(report.intents), work / "intents.png")
        _plot_days(dict(sorted(report.days.items())), work / "days.png")
        (work / REPORT).write_text(markdown(report), encoding="utf-8")
        out.mkdir(exist_ok=True)
        for name in ("channels.png", "intents.png", "days.png", REPORT):  # the report last
            os.replace(work / name, out / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out / REPORT


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date like 2025-01-31, not {value!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=_date, help="only conversations that started on or after this day (UTC)")
    parser.add_argument("--out", type=Path, help="folder for report.md and the plots "
                        "(default: results/report/<time>/)")
    parser.add_argument("--db", help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")
    parser.add_argument("--store-db", help="handoff records and feedback (default SUPPORTBOT_DB_URL)")


def run(args: argparse.Namespace) -> int:
    """Exit 0 with the report written (or no data), 2 on bad input."""
    now = datetime.now(timezone.utc)
    out = args.out or Path("results/report") / now.strftime("%Y%m%dT%H%M%SZ")
    if out.exists() and not out.is_dir():
        print(f"--out {out} is a file, not a folder", file=sys.stderr)
        return 2
    try:
        report = build(LearningStore(args.db), args.store_db or settings.get("SUPPORTBOT_DB_URL"), args.since, now)
    except SQLAlchemyError as error:
        print(f"Cannot read the stores: {error}", file=sys.stderr)
        return 2
    if not report.overall.conversations:
        since = f" that started on or after {args.since.isoformat()}" if args.since else ""
        print(f"No data: the learning store has no conversations{since} (is `supportbot learn collect` "
              "running?). Nothing written.")
        return 0
    path = write(report, out)
    print(summary(report))
    print(f"\nReport: {path}")
    return 0
