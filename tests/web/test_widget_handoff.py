"""The widget during a live handoff, in headless Chromium through the real servers (the demo
store's widget, Rasa with its relay, the handoff store; docs/web-widget.md, docs/handoff.md): what
the customer reads while waiting, when a person joins, what the person writes and after the hand
back, and that each state is the server's after a reload or a return to the page. The agent's side
is the desk (supportbot/handoff/desk.py), the library every agent tool uses."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from chromium import Browser
from plugins.stack import API_TOKEN

from supportbot.handoff.claims import Claims
from supportbot.handoff.client import RasaRelay
from supportbot.handoff.desk import Desk
from supportbot.handoff.estimate import BusinessHours

pytestmark = pytest.mark.slow

BOT = ".sbw-log .sbw-bot .sbw-bubble"
BANNER = ".sbw-handoff"


@pytest.fixture
def desk(stack) -> Desk:
    return Desk(Claims(stack.handoffs()), RasaRelay(stack.rasa_url, API_TOKEN))


def say(browser: Browser, text: str) -> None:
    browser.fill(".sbw-input", text)
    browser.press(".sbw-input", "Enter")


def wait_bot(browser: Browser, text: str) -> None:
    try:
        browser.wait_text(BOT, text)
    except AssertionError as error:
        raise AssertionError(f"{error}\nThe conversation: {browser.texts('.sbw-log .sbw-bubble')}") from None


def banner(browser: Browser) -> tuple:
    """(phase, text) of the handoff banner; ("", "") when hidden."""
    if browser.count(f"{BANNER}:visible") == 0:
        return "", ""
    return browser.attr(BANNER, "data-phase"), browser.texts(BANNER)[0]


def wait_banner(browser: Browser, text: str) -> None:
    try:
        browser.wait_text(f"{BANNER}:visible", text)
    except AssertionError as error:
        raise AssertionError(f"{error}\nThe banner: {banner(browser)}") from None


def ask_for_a_person(stack, browser: Browser, demo: str):
    """The customer asks for a person in the demo store's widget; returns the handoff."""
    assert browser.goto(demo + "/") == 200
    browser.click(".sbw-launcher")
    say(browser, "I want to talk to a real person")
    wait_bot(browser, "handing you over")
    conversation = browser.evaluate("JSON.parse(sessionStorage.getItem('supportbot.widget.v1')).session_id")
    [handoff] = stack.handoffs().list(conversation_id=conversation)
    return handoff


def test_waiting_then_a_person_then_back_with_the_assistant(browser, demo, stack, desk):
    handoff = ask_for_a_person(stack, browser, demo)
    if BusinessHours.from_env(stack.env).is_open(datetime.now(timezone.utc)):
        wait_banner(browser, f"Waiting for a person (about {handoff.told_wait_minutes} min)")
    else:  # nobody is in: the estimate is when they are back, by email
        wait_banner(browser, "Waiting for a person. Our team is not in right now")
    assert browser.attr(BANNER, "role") == "status"  # announced to screen readers
    # The estimate is the server's: what the store says the customer was told, read on load.
    Claims(stack.handoffs()).tell_wait(handoff.id, 7)
    browser.reload()
    wait_banner(browser, "Waiting for a person (about 7 min). You can keep writing here.")
    assert banner(browser)[0] == "waiting"

    desk.claim(handoff.reference, "Dana")
    wait_banner(browser, "Dana from support joined.")  # live, no reload
    notice = ".sbw-log .sbw-from-support"
    browser.wait_text(notice, "Dana from support joined the chat.")
    desk.say(handoff.reference, "Dana", "Hi, I'm Dana. I'll look at your order now.", key="w1")
    agent = ".sbw-log .sbw-from-agent"
    browser.wait_text(agent, "I'll look at your order now")
    # Her name is shown above a bubble of its own style, and said to screen readers.
    assert browser.texts(f"{agent} .sbw-who") == ["Dana · support"]
    assert browser.evaluate("document.querySelector('.sbw-from-agent .sbw-sr').textContent") == (
        "Dana from support said: ")
    assert browser.evaluate("getComputedStyle(document.querySelector('.sbw-from-agent .sbw-bubble'))"
                            ".backgroundColor") != browser.evaluate(
        "getComputedStyle(document.querySelector('.sbw-bot:not(.sbw-from-agent):not(.sbw-from-support) "
        ".sbw-bubble')).backgroundColor")
    assert browser.count(f"{agent} .sbw-feedback") == 0  # votes are for the assistant's answers

    say(browser, "Thanks Dana, it's order 4817263")
    browser.wait_text(".sbw-log .sbw-user .sbw-bubble", "it's order 4817263")
    assert browser.count(".sbw-typing:visible") == 0  # no "assistant is typing" while a person has it
    lines = [line.text for line in desk.conversation(handoff.reference) if line.who == "customer"]
    assert "Thanks Dana, it's order 4817263" in lines

    browser.reload()  # the same state after a reload: the server's
    wait_banner(browser, "Dana from support joined.")
    assert browser.texts(f"{agent} .sbw-who") == ["Dana · support"]
    assert browser.count(".sbw-failed") == 0  # the customer's message was taken

    browser.click(".sbw-input")
    desk.hand_back(handoff.reference, "Dana")
    wait_banner(browser, "You're back with the assistant.")
    wait_bot(browser, "You're back with the assistant, and it still knows")
    browser.wait_for(".sbw-survey legend")  # one rating question...
    assert browser.evaluate("document.activeElement.id") == "sbw-input"  # ...that does not take the focus
    assert "sbw-is-paused" not in browser.attr(".sbw-root", "class")
    browser.reload()
    wait_banner(browser, "You're back with the assistant.")
    say(browser, "where is my order 4817263")
    wait_bot(browser, "Order 4817263 is on its way")  # the bot again, still knowing the customer
    assert banner(browser) == ("", "")
    assert browser.console_errors() == []


def test_a_hand_back_while_the_customer_was_away_is_shown_on_return(browser, demo, stack, desk):
    handoff = ask_for_a_person(stack, browser, demo)
    desk.claim(handoff.reference, "Sam")
    wait_banner(browser, "Sam from support joined.")
    browser.goto("about:blank")  # the customer left the page (the tab keeps the session)
    sent = desk.say(handoff.reference, "Sam", "Your refund is on its way.", key="away-1")
    assert not sent.delivered
    desk.hand_back(handoff.reference, "Sam")

    assert browser.goto(demo + "/orders") == 200
    browser.wait_text(".sbw-log .sbw-from-agent", "Your refund is on its way.")  # what waited for them
    wait_banner(browser, "You're back with the assistant.")
    wait_bot(browser, "How did Sam do?")
    browser.wait_for(".sbw-survey legend")
    assert browser.count(".sbw-failed") == 0 and browser.console_errors() == []
