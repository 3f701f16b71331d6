"""PersonRequestDetector (supportbot/nlu/person_request.py): explicit requests for a person,
whatever else the message says, and the look-alikes that are not requests."""
import pytest

from supportbot.nlu.person_request import is_person_request

REQUESTS = [
    "this is useless, get me a human NOW",
    "I've been waiting 3 weeks for my refund and I want to speak to a manager",
    "can I talk to a real person please",
    "connect me to an agent",
    "transfer me to a representative",
    "put me through to someone real",
    "I need a human",
    "human please",
    "AGENT!!!",
    "operator",
    "let me speak to your supervisor",
    "you're a useless bot, give me a real person",
    "I want to talk to customer service",
    "my order never came and I'd like to speak with someone",
    "I don't want a bot, I want a human",
    "stop, just get me a live agent",
    "could I speak to a person about my invoice?",
    "escalate this to a manager",
    "are you able to connect me to a human?",
    "i need to talk to someone about a payment I didn't make",
]

NOT_REQUESTS = [
    "are you a person?",
    "am I talking to a human?",
    "am i talking with a real person",
    "do I need to speak to a representative to change my pin?",
    "i need someone to look at my car",
    "is this a real person or a bot?",
    "I don't need a human",
    "no need to talk to an agent, I found it",
    "your agent was rude to me yesterday",
    "the delivery person left it at the wrong door",
    "where is my order",
    "I never want to talk to your manager again",
    "people say your service is bad",
    "what are your business hours",
    "ok",
]


@pytest.mark.parametrize("text", REQUESTS)
def test_explicit_requests_for_a_person_are_found(text):
    assert is_person_request(text)


@pytest.mark.parametrize("text", NOT_REQUESTS)
def test_questions_negations_and_mentions_are_not_requests(text):
    assert not is_person_request(text)
