"""PersonRequestDetector: an explicit request to talk to a person is always request_human.

The intent classifier weighs every word, so anger or a second topic in the same message ("I've
been waiting 3 weeks for my refund and I want to speak to a manager") can outvote the request.
This rule-based detector finds the request itself -- a verb of asking or connecting near a word
for a person -- and makes the intent request_human with confidence 1.0. It stays quiet on
questions about the bot ("are you a person?", bot_challenge), on negations ("I don't need a
human") and on talk about people that asks for nothing ("your agent was rude").
"""
from __future__ import annotations

import re
from typing import List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from supportbot.nlu.base import StatelessComponent
from supportbot.nlu.language import override_intent

INTENT_NAME = "request_human"
PERSON = (r"(?:a |an |the |your |some |one of your |to a |with a )?(?:real |actual |live |human |"
          r"proper |living |breathing |real life |)(?:human(?: being)?|person|people|agent|"
          r"operator|representative|rep|manager|supervisor|somebody|someone|staff member|"
          r"customer service(?: agent| rep)?|support (?:agent|team|staff))")
# "talk to / speak with / connect me to / get me / transfer me to / put me through to" + person
ASK = (r"(?:talk|speak|chat|communicate)(?:ing)? (?:to|with)|connect(?:ed)? (?:me )?(?:to|with)|"
       r"transfer(?:red)? me to|put (?:me )?(?:through )?to|pass (?:me )?(?:on )?to|"
       r"escalate (?:this |it )?to|get(?: me)?|give me|bring(?: me)?|need|want|i'd like|"
       r"i would like|let me (?:talk|speak) to|may i (?:talk|speak) to|can i (?:talk|speak) to|"
       r"could i (?:talk|speak) to|hand me (?:over )?to|send me to")
# "I need someone to look at my car" asks for a service, not for a person to talk to.
REQUEST = re.compile(rf"\b(?:{ASK}) {PERSON}\b(?! to (?!talk|speak|help|chat|call)\w)")
# A bare "human please", "agent!", "operator now": the whole message is the request.
BARE = re.compile(rf"^\s*(?:{PERSON})(?:\s+(?:please|pls|plz|now|asap|right now))*\s*[!.]*\s*$")
# Not a request: the customer says they don't want one, or asks about the bot itself.
NEGATED = re.compile(r"\b(?:don'?t|do not|doesn'?t|no need|not|never|without|didn'?t|won'?t|"
                     r"wouldn'?t|no longer)\b(?:\W+\w+){0,3}\W*$")
QUESTION_ABOUT_BOT = re.compile(r"\bis (?:this|it|that)\b|\bdo i (?:have|need) to\b|"
                                r"\b(?:am i|are we) (?:talking|speaking|chatting)\b|\bwho am i\b")


def is_person_request(text: str) -> bool:
    """Whether `text` explicitly asks to be put through to a person."""
    lowered = " ".join(re.sub(r"[’`]", "'", text or "").lower().split())
    if BARE.match(lowered):
        return True
    for match in REQUEST.finditer(lowered):
        before = lowered[: match.start()]
        clause = re.split(r"[.!?;,]|\bbut\b", before)[-1]
        if NEGATED.search(clause + " x") and not re.search(r"\bjust\b", clause):
            continue
        if QUESTION_ABOUT_BOT.search(clause + match.group(0)):
            continue
        return True
    return False


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False
)
class PersonRequestDetector(StatelessComponent):
    """Sets the intent request_human on an explicit request for a person."""

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            # Also when the classifier already leans to request_human: its confidence may be
            # below request_human's own fallback threshold.
            if is_person_request(message.get(TEXT) or ""):
                override_intent(message, INTENT_NAME)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
