"""`supportbot handoffs queue|show|claim|say|release|close|move`: the agent desk on the command
line, for agents without the agent page (docs/handoff.md#the-command-line).

Exit 0 done, 1 refused (another agent has it, it is over, Rasa or the ticketing backend
unreachable: what was stored stays stored), 2 bad input (unknown reference or team, empty
message, bad name)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Dict

from supportbot import settings
from supportbot.errors import BackendError, InvalidRequest, NotFound
from supportbot.handoff.claims import Claims
from supportbot.handoff.client import RasaRelay
from supportbot.handoff.desk import Desk, Sent
from supportbot.store import Handoff


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="handoff_command", metavar="{queue,show,claim,say,release,close,move}")
    specs: Dict[str, str] = {
        "queue": "waiting and claimed handoffs, one JSON line each, most urgent first, then longest waiting",
        "show": "the conversation as the customer sees it, with what they wrote while waiting",
        "claim": "take a waiting handoff: the customer reads '<agent> from support joined'",
        "say": "send the customer a message (you must hold the claim)",
        "release": "hand back to the bot: it keeps the slots, says so and asks for a rating",
        "close": "end the handoff (also one nobody claimed): the bot is back, the customer is asked for a rating",
        "move": "put the handoff and its ticket in another team's queue (a routing correction)",
    }
    for verb, help_text in specs.items():
        p = verbs.add_parser(verb, help=help_text)
        if verb != "queue":
            p.add_argument("reference", help="H-… reference, handoff id or conversation id")
        if verb in ("claim", "say", "release", "close", "move"):
            p.add_argument("--agent", required=True, help="your name as the customer reads it")
        if verb in ("queue", "move"):
            p.add_argument("--team", required=verb == "move",
                           help="a team of routing.yml (billing, orders, technical, trust)"
                                + ("" if verb == "move" else ": only its queue"))
        if verb == "say":
            p.add_argument("text", nargs="+", help="the message")
            p.add_argument("--id", help="idempotency key: the same --id again sends nothing new")
        p.add_argument("--rasa-url", default=settings.get("RASA_URL"))
        p.add_argument("--token", default=settings.get("RASA_AUTH_TOKEN"),
                       help="Rasa's API token (default RASA_AUTH_TOKEN, else var/secrets.env)")
        p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    relay = RasaRelay.from_env()
    relay.url = args.rasa_url.rstrip("/")
    relay.token = args.token or relay.token
    desk = Desk(Claims(), relay)
    try:
        return ACTIONS[args.handoff_command](desk, args)
    except (NotFound, InvalidRequest) as error:
        print(error.message, file=sys.stderr)
        return 2
    except BackendError as error:  # Conflict, BackendUnavailable
        print(error.message, file=sys.stderr)
        return 1


def _queue(desk: Desk, args: argparse.Namespace) -> int:
    for item in desk.queue(team=args.team):
        print(json.dumps({
            "reference": item.reference, "conversation_id": item.conversation_id, "reason": item.reason,
            "team": item.team, "priority": item.priority,
            "status": item.status, "agent": item.agent, "waiting_minutes": round(item.waiting_seconds / 60, 1),
            "verified": item.verified, "customer_id": item.customer_id,
            "told_wait_minutes": item.told_wait_minutes,
            "last_messages": item.summary["last_messages"][-4:], "slots": item.summary["slots"],
        }, ensure_ascii=False, default=str))
    return 0


def _show(desk: Desk, args: argparse.Namespace) -> int:
    for line in desk.conversation(args.reference):
        who = f"{line.who} ({line.agent})" if line.agent else line.who
        print(f"{line.at:%H:%M:%S} {who}: {line.text}")
    return 0


def _changed(verb: str) -> Callable[[Desk, argparse.Namespace], int]:
    def action(desk: Desk, args: argparse.Namespace) -> int:
        handoff: Handoff = getattr(desk, verb)(args.reference, args.agent)
        print(f"{handoff.reference}: {handoff.status.replace('_', ' ')} ({handoff.claimed_by}); "
              f"conversation {handoff.conversation_id}")
        return 0

    return action


def _say(desk: Desk, args: argparse.Namespace) -> int:
    sent: Sent = desk.say(args.reference, args.agent, " ".join(args.text), key=args.id)
    state = "delivered" if sent.delivered else "stored; delivered when the customer's chat is back"
    print(f"{'already sent' if sent.duplicate else 'sent'} ({state}): {sent.message.id}")
    return 0


def _move(desk: Desk, args: argparse.Namespace) -> int:
    handoff = desk.move(args.reference, args.agent, args.team, source="cli")
    print(f"{handoff.reference}: in {desk.team(handoff.team).name}'s queue ({handoff.team})"
          + (f"; ticket {handoff.ticket_id} moved" if handoff.ticket_id else "; no ticket to move"))
    return 0


ACTIONS = {"queue": _queue, "show": _show, "claim": _changed("claim"), "say": _say,
           "release": _changed("hand_back"), "close": _changed("close"), "move": _move}
