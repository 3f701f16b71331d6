"""LanguageIdentifier and PersonRequestDetector (supportbot/nlu/language.py,
supportbot/nlu/person_request.py): what they find, and what they do to a parsed message."""
import pytest
from rasa.shared.nlu.training_data.message import Message

from supportbot.nlu.language import LanguageIdentifier, identify
from supportbot.nlu.person_request import PersonRequestDetector

FOREIGN = [
    ("Bonjour, où est ma commande ?", "fr"),
    ("Hallo, wo ist meine Bestellung?", "de"),
    ("Ciao, dov'è il mio ordine?", "it"),
    ("Hallo, waar is mijn bestelling?", "nl"),
    ("Necesito ayuda, no encuentro mi pedido", "es"),
    ("Olá, preciso de ajuda com o meu pedido, ainda não chegou", "pt"),
    ("Здравствуйте, где мой заказ?", "ru"),
    ("hola necesito ayuda", "es"),
    ("merci beaucoup pour votre aide", "fr"),
]
ENGLISH = [
    "ok", "merci", "are you a person?", "where is my order 4817263", "data protecion",
    "forgot pasword", "i'm off now, see ya later", "ok im done bye", "refund INV-2026-00042 pls",
    "this is useless, get me a human NOW", "set timer for 5 minutes",
    # keyboard mash is no language, though the model names one for it
    "blorf zzkx wibble", "jfjfjf kdkdkd lslsls", "asdf qwer zxcv", "wumple snorf grindle",
]


@pytest.mark.parametrize("text, language", FOREIGN)
def test_messages_in_other_languages_are_identified(text, language):
    assert identify(text)[0] == language


@pytest.mark.parametrize("text", ENGLISH)
def test_short_typoed_or_english_messages_are_left_alone(text):
    assert identify(text) is None


def parsed(text, intent, confidence):
    message = Message(data={"text": text})
    message.set("intent", {"name": intent, "confidence": confidence})
    message.set("intent_ranking", [{"name": intent, "confidence": confidence},
                                   {"name": "greet", "confidence": 1 - confidence}])
    message.set("entities", [{"entity": "order_id", "value": "4817263", "start": 0, "end": 3}])
    return message


def test_a_foreign_message_becomes_other_language_with_its_code():
    [message] = LanguageIdentifier().process([parsed("Hallo, wo ist meine Bestellung?", "goodbye", 0.65)])
    assert message.get("intent") == {"name": "other_language", "confidence": 1.0}
    ranking = message.get("intent_ranking")
    assert ranking[0]["name"] == "other_language" and ranking[1]["confidence"] < 0.5
    assert [(e["entity"], e["value"]) for e in message.get("entities")] == [("language", "de")]


def test_an_english_message_keeps_its_parse():
    [message] = LanguageIdentifier().process([parsed("where is my order please", "order_status", 0.9)])
    assert message.get("intent")["name"] == "order_status" and message.get("entities")[0]["value"] == "4817263"


def test_a_person_request_overrides_the_intent_and_keeps_the_entities():
    text = "I've been waiting 3 weeks for my refund and I want to speak to a manager"
    [message] = PersonRequestDetector().process([parsed(text, "refund_status", 0.75)])
    assert message.get("intent") == {"name": "request_human", "confidence": 1.0}
    assert message.get("entities")[0]["value"] == "4817263"


def test_a_question_about_the_bot_keeps_its_intent():
    [message] = PersonRequestDetector().process([parsed("am I talking to a human?", "bot_challenge", 0.99)])
    assert message.get("intent")["name"] == "bot_challenge"


def test_a_person_request_the_classifier_is_unsure_of_gets_full_confidence():
    text = "you are the worst shop ever, put me through to a real person"
    [message] = PersonRequestDetector().process([parsed(text, "request_human", 0.64)])
    assert message.get("intent") == {"name": "request_human", "confidence": 1.0}
