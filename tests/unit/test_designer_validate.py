"""`make validate` (supportbot.designer.validate): Rasa's checks, with the warnings about
responses that forms and actions say explained rather than printed."""
from __future__ import annotations

from supportbot.designer import validate

FORMS = {"refund_form": {"required_slots": ["order_id", "plan", "reason"]},
         "other_form": {"required_slots": ["order_id"]}}


def test_form_questions_follow_rasas_lookup_order():
    actions = ["utter_ask_order_id", "utter_ask_refund_form_order_id", "action_ask_plan", "utter_ask_plan",
               "utter_ask_reason"]
    questions = validate.form_questions(FORMS, actions)
    assert questions == {
        "utter_ask_refund_form_order_id": "refund_form asks for order_id",  # before the generic one
        "utter_ask_order_id": "other_form asks for order_id",
        "utter_ask_reason": "refund_form asks for reason",
    }  # utter_ask_plan: action_ask_plan asks instead


def test_responses_named_in_code(tmp_path):
    (tmp_path / "a.py").write_text('"""Says `utter_docstring`."""\n'
                                   'REPLY = "utter_done"\n'
                                   'def run(d):\n    d.utter_message(response="utter_hello")\n'
                                   '    d.utter_message(text="utter_hello world")\n')
    assert validate.responses_named_in_code(tmp_path) == {"utter_done": f"{tmp_path.as_posix()}/a.py",
                                                           "utter_hello": f"{tmp_path.as_posix()}/a.py"}


def test_explain():
    questions = {"utter_ask_email": "order_status_form asks for email"}
    named = {"utter_handoff": "actions/handoff.py"}
    unused = "The utterance '{}' is not used in any story or rule."
    assert validate.explain(unused.format("utter_ask_email"), questions, named) == questions["utter_ask_email"]
    assert validate.explain(unused.format("utter_handoff"), questions, named) == "said by actions/handoff.py"
    missing = "The intent '{}' is listed in the domain file, but is not found in the NLU training data."
    assert validate.explain(missing.format("other_language"), questions, named).startswith("set by")
    assert validate.explain(missing.format("new_intent"), questions, named) is None
    assert validate.explain(unused.format("utter_new"), questions, named) is None
    assert validate.explain(validate.FAQ_DUPLICATE, questions, named)
    assert validate.explain("The intent 'x' is not used in any story or rule.", questions, named) is None


def test_the_repository_validates_without_warnings(repo):
    report = validate.validate(config=str(repo / "config.yml"), domain=str(repo / "domain"),
                               data=[str(repo / "data")], code=repo / "actions")
    assert report.passed
    assert report.warnings == []
    assert "utter_ask_email" in report.explained and "utter_handoff" in report.explained
