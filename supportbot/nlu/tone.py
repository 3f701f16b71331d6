"""ToneAnalyzer: how angry a message sounds, for deciding when a complaint needs a person.

A transparent lexicon score, not a trained model: designers can read and extend the word
list, and the bot's handoff decisions stay explainable. Adds `tone: {"anger": 0..1,
"angry": bool}` to the parse result, which actions read from `tracker.latest_message`.
"""
from __future__ import annotations

import re
from typing import List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from supportbot.nlu.base import StatelessComponent

ANGRY_WORDS = {
    "unacceptable", "ridiculous", "furious", "livid", "outrageous", "outraged", "disgusting",
    "disgraceful", "pathetic", "useless", "incompetent", "worst", "terrible", "horrible",
    "awful", "scam", "scammers", "fraud", "thieves", "robbery", "joke", "clowns", "angry",
    "sick", "fed", "wtf", "damn", "crap", "bs", "hell", "shit", "shitty", "fuck", "fucking",
    "bullshit", "garbage", "trash", "lawyer", "never", "insane", "insult", "insulting",
}
ANGRY_PHRASES = ("fed up", "sick of", "sick and tired", "never again", "had enough",
                 "last time i", "what a joke", "are you kidding", "screw you")
THRESHOLD = 0.5


def anger_score(text: str) -> float:
    lowered = text.lower()
    words = re.findall(r"[a-z']+", lowered)
    if not words:
        return 0.0
    score = 0.3 * sum(word in ANGRY_WORDS for word in words)
    score += 0.4 * sum(phrase in lowered for phrase in ANGRY_PHRASES)
    score += 0.2 * min(lowered.count("!"), 3)
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.6:
        score += 0.5  # a whole message in capitals is shouting
    return round(min(score, 1.0), 2)


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False
)
class ToneAnalyzer(StatelessComponent):
    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            score = anger_score(message.get(TEXT) or "")
            message.set("tone", {"anger": score, "angry": score >= THRESHOLD}, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
