"""Keeping a conversation on track: what happens when a message doesn't fit the form that is
asking, and the reply when no rule or story fits at all (Rasa's core fallback, config.yml).

The rules that call these actions are generated for every form (supportbot.designer.form_rules,
data/rules/form_interruptions.yml) or written in data/rules/repair.yml."""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import intent_of, latest_intent


class Goal(NamedTuple):
    """How replies name a flow: "stop {noun}", "we were {doing}", "{do} instead"."""

    noun: str
    doing: str
    do: str


# Every form, in words (a unit test checks that each form of the domain has its entry).
FORMS: Dict[str, Goal] = {
    "order_status_form": Goal("the order check", "checking an order", "check an order"),
    "refund_status_form": Goal("the refund check", "checking a refund", "check a refund"),
    "order_cancel_form": Goal("the cancellation", "cancelling an order", "cancel an order"),
    "address_change_form": Goal("the address change", "changing a delivery address",
                                "change a delivery address"),
    "refund_form": Goal("the refund", "getting you a refund", "get a refund"),
    "invoice_form": Goal("the invoice", "finding an invoice", "get an invoice"),
    "payment_problem_form": Goal("the payment check", "looking into a payment problem",
                                 "look into a payment problem"),
    "dispute_form": Goal("the dispute", "disputing a charge", "dispute a charge"),
    "cancel_subscription_form": Goal("the subscription cancellation", "cancelling your subscription",
                                     "cancel your subscription"),
    "change_plan_form": Goal("the plan change", "changing your plan", "change your plan"),
    "payment_method_form": Goal("the card update", "updating your card", "update your card"),
    "update_account_form": Goal("the account change", "changing your account details",
                                "change your account details"),
    "password_reset_form": Goal("the password reset", "resetting your password", "reset your password"),
    "account_access_form": Goal("the sign-in help", "getting you back into your account",
                                "get back into your account"),
    "bug_report_form": Goal("the bug report", "reporting a problem", "report a problem"),
    "ticket_status_form": Goal("the ticket check", "checking a ticket", "check a ticket"),
    "ticket_comment_form": Goal("the ticket comment", "adding to a ticket", "add to a ticket"),
}

# Which form each goal intent starts: the same as its rule in data/rules/ (a unit test compares
# them with what supportbot.designer.form_rules finds there).
GOAL_FORMS: Dict[str, str] = {
    "order_status": "order_status_form",
    "greet+order_status": "order_status_form",
    "order_status+complaint": "order_status_form",
    "order_status+change_shipping_address": "order_status_form",
    "refund_status": "refund_status_form",
    "cancel_order": "order_cancel_form",
    "change_shipping_address": "address_change_form",
    "request_refund": "refund_form",
    "get_invoice": "invoice_form",
    "payment_problem": "payment_problem_form",
    "dispute_charge": "dispute_form",
    "cancel_subscription": "cancel_subscription_form",
    "cancel_subscription+request_refund": "cancel_subscription_form",
    "change_plan": "change_plan_form",
    "update_payment_method": "payment_method_form",
    "update_account": "update_account_form",
    "reset_password": "password_reset_form",
    "account_access": "account_access_form",
    "report_bug": "bug_report_form",
    "ticket_status": "ticket_status_form",
}

# What a form still needs, in words, for "I still need ... to ...".
SLOTS: Dict[str, str] = {
    "order_id": "the order number",
    "email": "the email address on your account (it keeps your account safe)",
    "new_address": "the new delivery address",
    "refund_amount": "how much you'd like refunded",
    "refund_reason": "a few words on what went wrong",
    "dispute_payment_id": "which charge it is",
    "dispute_reason": "what's wrong with the charge",
    "plan": "which plan you'd like",
    "account_field": "which detail to change",
    "account_new_value": "the new value",
    "bug_description": "what happened",
    "bug_steps": "the steps that lead to the problem",
    "bug_severity": "how badly it affects you",
    "ticket_comment": "what to add to the ticket",
}

# The goals the "what now?" reply offers as buttons, besides going on and a person.
MAIN_GOALS = [("Check an order", "/order_status"), ("Get a refund", "/request_refund"),
              ("Something about my account", '/ask_about_topic{"topic": "account"}')]


def interrupted_form(tracker: Tracker) -> Optional[str]:
    """The form that is active, or the one that was until this turn stopped it."""
    if tracker.active_loop.get("name"):
        return tracker.active_loop["name"]
    for event in reversed(tracker.events):
        if event.get("event") == "active_loop" and event.get("name"):
            return event["name"]
    return None


def last_goal(tracker: Tracker) -> Optional[Goal]:
    """The flow the customer asked for last, in words (the active form first)."""
    form = tracker.active_loop.get("name")
    if form in FORMS:
        return FORMS[form]
    for event in reversed(tracker.events):
        if event.get("event") == "user" and intent_of(event) in GOAL_FORMS:
            return FORMS[GOAL_FORMS[intent_of(event)]]
    return None


class ActionExplainReask(Action):
    """Before a form asks again: why the message didn't answer, and what is still needed."""

    def name(self) -> str:
        return "action_explain_reask"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        form = tracker.active_loop.get("name")
        goal = FORMS.get(form or "")
        need = SLOTS.get(tracker.get_slot("requested_slot") or "")
        if not goal or not need:
            return []
        if GOAL_FORMS.get(latest_intent(tracker) or "") == form:
            dispatcher.utter_message(response="utter_reask_same_goal", doing=goal.doing, need=need)
        else:
            dispatcher.utter_message(response="utter_reask_not_an_answer", do=goal.do, need=need)
        return []


class ActionOfferSwitch(Action):
    """Another goal inside a form (the form was just stopped): ask before dropping it."""

    def name(self) -> str:
        return "action_offer_switch"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        current = interrupted_form(tracker)
        target = GOAL_FORMS.get(latest_intent(tracker) or "")
        if current not in FORMS or target not in FORMS:
            return [FollowupAction(target)] if target else []
        dispatcher.utter_message(response="utter_offer_switch", stop=FORMS[current].noun,
                                 start=FORMS[target].do)
        return [SlotSet("form_switch", {"from": current, "to": target})]


class _AnswerToSwitch:
    """An answer to action_offer_switch: go to one side of the pending switch. A mixin, not an
    Action: rasa_sdk registers every Action subclass by its name."""

    side = "to"  # the form the answer goes to: "to" (the new goal) or "from" (the stopped one)
    response: Optional[str] = None  # said first, with the stopped form's noun

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        switch = _pending_switch(tracker)
        if not switch:
            dispatcher.utter_message(response="utter_nothing_pending")
            return []
        if self.response:
            dispatcher.utter_message(response=self.response, noun=FORMS[switch["from"]].noun)
        return [SlotSet("form_switch", None), FollowupAction(switch[self.side])]


class ActionSwitchGoal(_AnswerToSwitch, Action):
    """Yes to the offer: start the new goal's form."""

    def name(self) -> str:
        return "action_switch_goal"


class ActionResumeForm(_AnswerToSwitch, Action):
    """No to the offer: back to the form that was stopped, where it was."""

    side = "from"
    response = "utter_switch_declined"

    def name(self) -> str:
        return "action_resume_form"


def _pending_switch(tracker: Tracker) -> Optional[Dict[str, Any]]:
    switch = tracker.get_slot("form_switch")
    if isinstance(switch, dict) and switch.get("from") in FORMS and switch.get("to") in FORMS:
        return switch
    return None


class ActionRepairFallback(Action):
    """When no rule or story fits (core_fallback_action_name in config.yml): say what we were
    doing and what the customer can do next, instead of "I lost track"."""

    def name(self) -> str:
        return "action_repair_fallback"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> List[EventType]:
        goal = last_goal(tracker)
        buttons = []
        if goal and tracker.active_loop.get("name"):
            buttons.append({"title": f"Carry on {goal.doing}", "payload": "/affirm"})
            dispatcher.utter_message(response="utter_repair_in_form", doing=goal.doing)
        elif goal:
            dispatcher.utter_message(response="utter_repair_after_goal", doing=goal.doing)
        else:
            dispatcher.utter_message(response="utter_repair_no_context")
        buttons += [{"title": title, "payload": payload} for title, payload in MAIN_GOALS]
        buttons += [{"title": "Start over", "payload": "/restart"},
                    {"title": "Talk to a person", "payload": "/request_human"}]
        dispatcher.utter_message(response="utter_repair_options", buttons=buttons)
        # Like Rasa's own fallback: the message that fit nowhere is taken back, so a form
        # that was asking still waits for its answer.
        return [UserUtteranceReverted()]
