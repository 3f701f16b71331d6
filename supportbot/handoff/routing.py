"""Routing: which team's queue a handoff goes to, and with which priority (docs/handoff.md#routing).

The map is configuration (`routing.yml`, SUPPORTBOT_ROUTING_FILE), read and checked once: a
wrong file stops the server that reads it, with the reason, never a silent default. Deciding a
route is a pure function of the handoff's reason, its recorded context (the customer's turns,
the tone, the slots) and the money at stake.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from supportbot import settings
from supportbot.ticketing.base import PRIORITIES, TicketQueue

TEAM_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
ANGRY_REASON = "angry_complaint"
LEGAL_REASON = "legal"


class RoutingError(ValueError):
    """The routing file is wrong; the message says where and why."""


@dataclass(frozen=True)
class Team:
    key: str  # billing, orders, ...: what the store, the API and the CLI use
    name: str  # what agents read: "Orders and delivery"
    rt_queue: str
    zendesk_group: Optional[int]

    @property
    def queue(self) -> TicketQueue:
        return TicketQueue(self.key, self.rt_queue, self.zendesk_group)


@dataclass(frozen=True)
class Route:
    team: str
    priority: str
    why: Tuple[str, ...]  # what raised the priority above the default: "angry", "legal words: lawyer"


@dataclass(frozen=True)
class Routing:
    teams: Dict[str, Team]
    default_team: str
    reasons: Dict[str, str]  # handoff reason -> team
    intents: Dict[str, str]  # intent -> team
    default_priority: str
    angry: Optional[str]
    legal: Optional[str]
    legal_words: Tuple[str, ...]
    amounts: Tuple[Tuple[Decimal, str], ...]  # (at least, priority), highest amount first
    plans: Dict[str, str]  # plan name, lower case -> priority

    def team(self, key: str) -> Team:
        """The team named `key`; RoutingError naming the teams there are otherwise."""
        if key not in self.teams:
            raise RoutingError(f"unknown team {key!r}: one of {', '.join(self.teams)}")
        return self.teams[key]

    def route(self, reason: str, context: Mapping[str, Any], amount: Optional[Decimal] = None) -> Route:
        """The team and priority of a handoff for `reason` with the recorded `context`
        (actions/transcript.py's conversation_context) and the money at stake, if known."""
        priority, why = self.priority(reason, context, amount)
        return Route(self.team_for(reason, customer_intents(context)), priority, why)

    def team_for(self, reason: str, intents: Sequence[str]) -> str:
        """The reason's team, else that of the latest intent the map names, else the default."""
        if reason in self.reasons:
            return self.reasons[reason]
        for intent in reversed(intents):
            for part in intent.split("+"):  # a multi-intent: its first routed part
                if part in self.intents:
                    return self.intents[part]
        return self.default_team

    def priority(self, reason: str, context: Mapping[str, Any],
                 amount: Optional[Decimal] = None) -> Tuple[str, Tuple[str, ...]]:
        """The highest priority any rule gives, and the rules that gave it."""
        found: List[Tuple[str, str]] = []
        tone = context.get("tone") if isinstance(context.get("tone"), dict) else {}
        if self.angry and (reason == ANGRY_REASON or tone.get("angry")):
            found.append((self.angry, "angry"))
        if self.legal:
            words = legal_words(customer_texts(context), self.legal_words)
            if reason == LEGAL_REASON:
                found.append((self.legal, "legal request"))
            elif words:
                found.append((self.legal, "legal words: " + ", ".join(words)))
        at_stake = amount if amount is not None else slot_amount(context.get("slots") or {})
        for least, priority in self.amounts:
            if at_stake is not None and at_stake >= least:
                found.append((priority, f"amount {at_stake} ≥ {least}"))
                break
        plan = slot_plan(context.get("slots") or {})
        if plan and plan.lower() in self.plans:
            found.append((self.plans[plan.lower()], f"plan {plan}"))
        best = max([self.default_priority] + [p for p, _ in found], key=PRIORITIES.index)
        return best, tuple(w for p, w in found if p == best)


# --- What the context says ---

def customer_intents(context: Mapping[str, Any]) -> List[str]:
    """The intents of the customer's turns, oldest first."""
    return [t["intent"] for t in context.get("transcript") or []
            if isinstance(t, dict) and t.get("from") == "customer" and isinstance(t.get("intent"), str)]


def customer_texts(context: Mapping[str, Any]) -> List[str]:
    return [t["text"] for t in context.get("transcript") or []
            if isinstance(t, dict) and t.get("from") == "customer" and isinstance(t.get("text"), str)]


def legal_words(texts: Sequence[str], words: Sequence[str]) -> List[str]:
    """The words (or phrases) of `words` the texts use, whole words only ("sue", not "issue")."""
    said = " ".join(texts).lower()
    return [w for w in words if re.search(r"\b" + r"\s+".join(map(re.escape, w.split())) + r"\b", said)]


def slot_amount(slots: Mapping[str, Any]) -> Optional[Decimal]:
    """The amount of the refund the assistant quoted (refund_quote, set from the billing
    service, never typed by the customer)."""
    quote = slots.get("refund_quote")
    return _decimal(quote.get("amount")) if isinstance(quote, dict) else None


def slot_plan(slots: Mapping[str, Any]) -> Optional[str]:
    """The verified customer's plan, when a subscription flow looked it up (subscription_pending,
    from the billing service; `plan` is the one the customer asks for, a claim)."""
    pending = slots.get("subscription_pending")
    plan = pending.get("plan") if isinstance(pending, dict) else None
    return plan if isinstance(plan, str) and plan.strip() else None


def _decimal(value: Any) -> Optional[Decimal]:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


# --- Reading and checking the file ---

def load(path: Path) -> Routing:
    """The routing in `path`; RoutingError saying what is wrong, and where."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise RoutingError(f"{path}: cannot be read ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise RoutingError(f"{path}: not valid YAML ({error})") from None
    try:
        return parse(raw)
    except RoutingError as error:
        raise RoutingError(f"{path}: {error}") from None


def parse(raw: Any) -> Routing:
    data = _mapping(raw, "the file")
    _only(data, "the file", {"teams", "default_team", "reasons", "intents", "priority"})
    teams = {key: _team(key, value) for key, value in _mapping(data.get("teams"), "teams").items()}
    if not teams:
        raise RoutingError("teams: at least one team is needed")

    def team_key(value: Any, where: str) -> str:
        if value not in teams:
            raise RoutingError(f"{where}: unknown team {value!r} (teams: {', '.join(teams)})")
        return value

    default_team = team_key(data.get("default_team"), "default_team")
    reasons = {_text(r, "reasons"): team_key(t, f"reasons.{r}")
               for r, t in _mapping(data.get("reasons") or {}, "reasons").items()}
    intents: Dict[str, str] = {}
    for team, names in _mapping(data.get("intents") or {}, "intents").items():
        team_key(team, "intents")
        for intent in _strings(names, f"intents.{team}"):
            if intent in intents and intents[intent] != team:
                raise RoutingError(f"intents: {intent!r} is listed for {intents[intent]} and {team}")
            intents[intent] = team
    return Routing(teams, default_team, reasons, intents, **_priority(data.get("priority") or {}))


def _team(key: Any, value: Any) -> Team:
    if not isinstance(key, str) or not TEAM_NAME.fullmatch(key):
        raise RoutingError(f"teams: {key!r} is not a team key (lower case letters, digits, - and _)")
    team = _mapping(value, f"teams.{key}")
    _only(team, f"teams.{key}", {"name", "rt_queue", "zendesk_group"})
    group = team.get("zendesk_group")
    if group is not None and (isinstance(group, bool) or not isinstance(group, int) or group <= 0):
        raise RoutingError(f"teams.{key}.zendesk_group: a Zendesk group id (a positive number) or null, "
                           f"not {group!r}")
    return Team(key, _text(team.get("name", key), f"teams.{key}.name"),
                _text(team.get("rt_queue"), f"teams.{key}.rt_queue"), group)


def _priority(raw: Any) -> Dict[str, Any]:
    data = _mapping(raw, "priority")
    _only(data, "priority", {"default", "angry", "legal", "legal_words", "amounts", "plans"})

    def level(value: Any, where: str, optional: bool = True) -> Optional[str]:
        if value is None and optional:
            return None
        if value not in PRIORITIES:
            raise RoutingError(f"{where}: bad priority {value!r} (one of {', '.join(PRIORITIES)})")
        return value

    amounts = []
    for i, rule in enumerate(data.get("amounts") or []):
        rule = _mapping(rule, f"priority.amounts[{i}]")
        _only(rule, f"priority.amounts[{i}]", {"at_least", "priority"})
        least = _decimal(rule.get("at_least")) if not isinstance(rule.get("at_least"), bool) else None
        if least is None or least < 0:
            raise RoutingError(f"priority.amounts[{i}].at_least: an amount (0 or more), "
                               f"not {rule.get('at_least')!r}")
        amounts.append((least, level(rule.get("priority"), f"priority.amounts[{i}].priority", False)))
    plans = {_text(plan, "priority.plans").lower(): level(p, f"priority.plans.{plan}", False)
             for plan, p in _mapping(data.get("plans") or {}, "priority.plans").items()}
    return {"default_priority": level(data.get("default", "normal"), "priority.default", False),
            "angry": level(data.get("angry"), "priority.angry"),
            "legal": level(data.get("legal"), "priority.legal"),
            "legal_words": tuple(w.lower() for w in _strings(data.get("legal_words") or [],
                                                             "priority.legal_words")),
            "amounts": tuple(sorted(amounts, key=lambda a: -a[0])), "plans": plans}


def _mapping(value: Any, where: str) -> Dict[Any, Any]:
    if not isinstance(value, dict):
        raise RoutingError(f"{where}: expected a mapping (name: value), not {type(value).__name__}")
    return value


def _only(data: Mapping[Any, Any], where: str, known: set) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise RoutingError(f"{where}: unknown key {', '.join(map(repr, unknown))} "
                           f"(known: {', '.join(sorted(known))})")


def _strings(value: Any, where: str) -> List[str]:
    if not isinstance(value, list):
        raise RoutingError(f"{where}: expected a list, not {type(value).__name__}")
    return [_text(v, where) for v in value]


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RoutingError(f"{where}: expected a name, not {value!r}")
    return value.strip()


# --- The configured routing ---

def routing_file(environ: Optional[Mapping[str, str]] = None) -> Path:
    return Path(settings.get("SUPPORTBOT_ROUTING_FILE", environ) or "routing.yml")


def from_env(environ: Optional[Mapping[str, str]] = None) -> Routing:
    """The routing SUPPORTBOT_ROUTING_FILE names, read once per path and process."""
    return _cached(routing_file(environ).resolve())


@lru_cache(maxsize=4)
def _cached(path: Path) -> Routing:
    try:
        return load(path)
    except RoutingError as error:
        raise RoutingError(f"SUPPORTBOT_ROUTING_FILE: {error}") from None
