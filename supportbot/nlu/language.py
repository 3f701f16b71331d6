"""LanguageIdentifier: spots a message written in another language than English.

The assistant understands English only; a message in another language would otherwise get an
intent guessed from foreign words. py3langid (its model ships in the wheel, so it works offline)
names the language; when it is sure, this component sets the intent `other_language` and a
`language` entity (ISO 639-1 code) that the `language` slot takes, so the reply can be written
in that language (domain/language.yml) and a person offered.

Short or English-looking text is never flagged: language identification guesses wildly on "ok"
or "are you a person?", so a message needs MIN_WORDS words and MIN_LETTERS letters, and one
whose words are mostly English (function words, or lemmas in spaCy's English lookup table from
spacy-lookups-data) is English whatever the model says. Keyboard mash ("blorf zzkx wibble")
is not a language either: the model knows the letter sequences that tell languages apart, and
text in any language it knows is full of them, so a message with fewer than MIN_EVIDENCE of
them per letter is left to the intent classifier (which calls it unclear) whatever language
the few it has point to.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from supportbot.nlu.base import StatelessComponent

INTENT_NAME = "other_language"
# Languages the identifier may answer: the ones the replies are written in, then other
# widely written ones (their replies are in English). A short list keeps the model from
# naming rare languages for English text.
LANGUAGES = ("en", "es", "fr", "de", "pt", "it", "nl", "pl", "sv", "da", "tr", "ro", "cs",
             "ru", "uk", "el", "ar", "he", "fa", "hi", "zh", "ja", "ko", "vi", "id", "th")
MIN_CONFIDENCE = 0.85
MIN_WORDS = 3
MIN_LETTERS = 10
# From this share of English words on, the message is English.
MAX_ENGLISH_SHARE = 0.5
# Distinct known letter sequences per letter: real text in the model's languages has 0.35 and
# more, keyboard mash 0.25 and less (tests/unit/test_language_and_person_components.py).
MIN_EVIDENCE = 0.3
ENGLISH_WORDS = frozenset("""
a an the and or but if of to in on at by for from with about as into than then so not no
yes is are was were be been am do does did have has had can could will would should may
might must shall i me my mine you your yours he him his she her it its we us our they them
their this that these those what which who whom whose when where why how all any some
there here please thanks thank hi hello hey ok okay just get want need help order refund
im ya u ur plz pls thx bye m s t ll re ve d off now up out down over very too also
""".split())
WORD = re.compile(r"[^\W\d_]+")
# Ids, emails and links say nothing about the language.
NOISE = re.compile(r"https?://\S+|\S+@\S+|\b[A-Z]{1,4}-[\w-]+\b")


@lru_cache(maxsize=1)
def english_words() -> frozenset:
    from spacy.lookups import load_lookups

    lemmas = load_lookups("en", ["lemma_lookup"]).get_table("lemma_lookup")
    return ENGLISH_WORDS | frozenset(lemmas.values())


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_pickled_model(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier


def identify(text: str) -> Optional[Tuple[str, float]]:
    """(ISO 639-1 code, confidence) when `text` is confidently not English, else None."""
    text = NOISE.sub(" ", text or "")
    words = [w.lower() for w in WORD.findall(text)]
    letters = sum(len(w) for w in words)
    if len(words) < MIN_WORDS or letters < MIN_LETTERS:
        return None
    english = english_words()
    if sum(w in english for w in words) / len(words) >= MAX_ENGLISH_SHARE:
        return None
    identifier = _identifier()
    if (identifier.instance2fv(text) > 0).sum() < MIN_EVIDENCE * letters:
        return None
    language, confidence = identifier.classify(text)
    if language == "en" or confidence < MIN_CONFIDENCE:
        return None
    return language, round(float(confidence), 3)


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False
)
class LanguageIdentifier(StatelessComponent):
    """Sets intent `other_language` and a `language` entity on a message not in English."""

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            found = identify(message.get(TEXT) or "")
            if found:
                mark_other_language(message, *found)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data


def mark_other_language(message: Message, language: str, confidence: float) -> None:
    text = message.get(TEXT) or ""
    entity: Dict[str, Any] = {"entity": "language", "value": language, "start": 0, "end": len(text),
                              "confidence_entity": confidence, "extractor": "LanguageIdentifier"}
    # Words of another language make any English entity a guess: only the language is kept.
    message.set(ENTITIES, [entity], add_to_output=True)
    override_intent(message, INTENT_NAME)


def override_intent(message: Message, name: str) -> None:
    """Make `name` the intent with confidence 1.0, the others kept below it in the ranking
    at half their confidence, so FallbackClassifier's ambiguity check cannot undo it."""
    ranking = [dict(r, confidence=r.get("confidence", 0.0) / 2)
               for r in message.get(INTENT_RANKING_KEY) or [] if r.get("name") != name]
    message.set(INTENT, {"name": name, "confidence": 1.0}, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [{"name": name, "confidence": 1.0}] + ranking, add_to_output=True)
