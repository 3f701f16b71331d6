"""What a person reading a handoff or a ticket needs from the conversation: the transcript with
NLU results and slots (`conversation_context`), and that context as plain ticket text."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker


def conversation_context(tracker: Tracker) -> Dict[str, Any]:
    """What the person taking over needs: transcript, NLU results, slots."""
    transcript = []
    for event in tracker.events:
        if event.get("event") == "user":
            parse = event.get("parse_data") or {}
            transcript.append(
                {
                    "from": "customer",
                    "text": event.get("text"),
                    "intent": (parse.get("intent") or {}).get("name"),
                    "confidence": (parse.get("intent") or {}).get("confidence"),
                    "entities": [
                        {"entity": e.get("entity"), "value": e.get("value")}
                        for e in parse.get("entities") or []
                    ],
                    "timestamp": event.get("timestamp"),
                }
            )
        elif event.get("event") == "bot":
            transcript.append(
                {"from": "bot", "text": event.get("text"), "timestamp": event.get("timestamp")}
            )
    latest = tracker.latest_message or {}
    return {
        "transcript": transcript,
        "intent_ranking": (latest.get("intent_ranking") or [])[:5],
        "entities": latest.get("entities") or [],
        "tone": latest.get("tone"),
        "slots": {k: v for k, v in tracker.current_slot_values().items() if v is not None},
    }


def detected_intent(context: Dict[str, Any], intent: str) -> str:
    """`intent (confidence)` of the latest customer message NLU read as `intent`."""
    for turn in reversed(context.get("transcript") or []):
        if turn.get("from") == "customer" and turn.get("intent") == intent:
            confidence = turn.get("confidence")
            return f"{intent} ({confidence:.2f})" if isinstance(confidence, (int, float)) else intent
    return f"{intent} (not from NLU)"


def context_text(intro: List[str], context: Dict[str, Any], *, conversation_id: str,
                 customer_id: Optional[str], full_record: str = "the tracker store",
                 max_lines: int = 50) -> str:
    """A ticket body: `intro`, who, then the latest transcript and the known slots."""
    lines = [*intro, f"Conversation: {conversation_id}",
             f"Customer: {customer_id or 'not verified'}", "", "Transcript:"]
    transcript = context.get("transcript") or []
    if len(transcript) > max_lines:
        lines.append(f"... {len(transcript) - max_lines} earlier messages in {full_record}")
    lines += [f"{turn.get('from')}: {turn.get('text') or ''}" for turn in transcript[-max_lines:]]
    slots = context.get("slots") or {}
    if slots:
        lines += ["", "Known: " + ", ".join(f"{name}={value}" for name, value in sorted(slots.items()))]
    return "\n".join(lines)
