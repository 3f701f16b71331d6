"""Every form gets a rule for every intent of the domain, generated from the domain and the goal
rules (supportbot.designer.form_rules); the domain writes shared lists and texts once
(domain/forms.yml)."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import yaml

from supportbot.designer import form_rules


def domain_documents(repo: Path):
    return {path: yaml.safe_load(path.read_text()) for path in form_rules.domain_files(repo / "domain")}


def test_generated_rules_are_up_to_date(repo):
    expected = form_rules.render_domain(repo / "domain", repo / "data" / "rules")
    assert (repo / form_rules.OUTPUT).read_text() == expected, \
        "run `python -m supportbot.designer.form_rules` after changing the forms, intents or goal rules"


def first_step_intents(rule):
    first = rule["steps"][0]
    return [first["intent"]] if "intent" in first else [s["intent"] for s in first.get("or", [])]


def test_every_form_has_a_behaviour_for_every_intent_of_the_domain(repo):
    """Read from the generated file, not the generator: a form or intent with no rule fails."""
    rules = yaml.safe_load((repo / form_rules.OUTPUT).read_text())["rules"]
    handled = defaultdict(list)
    for rule in rules:
        handled[rule["condition"][0]["active_loop"]] += first_step_intents(rule)
    forms = form_rules.domain_forms(repo / "domain")
    intents = form_rules.domain_intents(repo / "domain")
    assert len(forms) > 10 and len(intents) > 30
    for form in forms:
        assert sorted(handled[form]) == sorted(intents), form  # each intent once: no conflicts


def test_each_behaviour_ends_where_it_should(repo):
    """Answers and re-asks go back to the form; switches, handoffs and goodbyes stop it."""
    rules = yaml.safe_load((repo / form_rules.OUTPUT).read_text())["rules"]
    by_turn = {(rule["condition"][0]["active_loop"], intent): rule
               for rule in rules for intent in first_step_intents(rule)}

    def actions(form, intent):
        return [step["action"] for step in by_turn[(form, intent)]["steps"] if "action" in step]

    assert actions("refund_form", "faq") == ["utter_faq", "refund_form"]
    assert actions("refund_form", "affirm") == ["utter_form_continue", "refund_form"]
    assert actions("refund_form", "inform") == ["action_explain_reask", "refund_form"]
    assert actions("refund_form", "request_refund") == ["action_explain_reask", "refund_form"]
    assert actions("refund_form", "order_status") == ["action_deactivate_loop", "action_offer_switch"]
    assert actions("order_status_form", "request_refund") == ["action_deactivate_loop", "action_offer_switch"]
    assert actions("refund_form", "feature_request") == ["action_create_feature_request", "refund_form"]
    assert actions("refund_form", "request_human") == ["action_deactivate_loop", "action_handoff"]
    assert actions("refund_form", "goodbye") == ["action_deactivate_loop", "utter_goodbye"]


def test_an_intent_without_a_behaviour_stops_the_generator(tmp_path, capsys):
    domain = tmp_path / "domain.yml"
    domain.write_text('version: "3.1"\nintents: [faq, track_parcel_abroad]\n'
                      'forms:\n  new_form:\n    required_slots: [email]\n')
    rules = tmp_path / "rules"
    rules.mkdir()
    out = tmp_path / "form_interruptions.yml"
    assert form_rules.main(["--domain", str(domain), "--rules", str(rules), "--out", str(out)]) == 1
    assert "track_parcel_abroad" in capsys.readouterr().err and not out.exists()
    # a rule that starts its flow makes it a goal: inside the form, an offer to switch
    (rules / "parcels.yml").write_text('version: "3.1"\nrules:\n- rule: start\n  steps:\n'
                                       '  - intent: track_parcel_abroad\n  - action: parcel_form\n'
                                       '  - active_loop: parcel_form\n')
    domain.write_text(domain.read_text() + "  parcel_form:\n    required_slots: [order_id]\n")
    assert form_rules.main(["--domain", str(domain), "--rules", str(rules), "--out", str(out)]) == 0
    switch = [r for r in yaml.safe_load(out.read_text())["rules"]
              if r["condition"][0]["active_loop"] == "new_form" and "or" in r["steps"][0]]
    assert [s["intent"] for s in switch[0]["steps"][0]["or"]] == ["track_parcel_abroad"]


def test_repair_actions_know_every_form_and_goal(repo):
    """actions/repair.py names each form in words and starts the form each goal's rule starts."""
    from actions import repair
    forms = form_rules.domain_forms(repo / "domain")
    assert set(repair.FORMS) == set(forms)
    goals = form_rules.goal_targets(repo / "data" / "rules", forms)
    assert repair.GOAL_FORMS == {intent: target for intent, target in goals.items() if target in forms}
    slots = {slot for path in form_rules.domain_files(repo / "domain")
             for spec in ((yaml.safe_load(path.read_text()) or {}).get("forms") or {}).values()
             for slot in spec.get("required_slots", [])}
    assert slots <= set(repair.SLOTS)


def test_no_hand_written_rule_for_a_side_question_inside_a_form(repo):
    """The generated file is the only place for a message inside a form: a second rule for the
    same turn would conflict."""
    for path in (repo / "data" / "rules").glob("*.yml"):
        if path.name == form_rules.OUTPUT.name:
            continue
        for rule in yaml.safe_load(path.read_text()).get("rules", []):
            loops = [c.get("active_loop") for c in rule.get("condition", []) if "active_loop" in c]
            assert not (loops and first_step_intents(rule)), (path.name, rule["rule"])


def test_free_text_answers_never_take_a_side_question(repo):
    side_questions = set(form_rules.interruption_intents())
    for document in domain_documents(repo).values():
        for slot, spec in (document.get("slots") or {}).items():
            for mapping in spec.get("mappings", []):
                in_form = any("active_loop" in c for c in mapping.get("conditions", []))
                if mapping["type"] != "from_text" or not in_form:
                    continue
                if "intent" in mapping:
                    assert not side_questions & set(mapping["intent"]), slot
                else:
                    assert side_questions <= set(mapping.get("not_intent", [])), slot


def test_not_intent_lists_are_written_once(repo):
    """Two slots with the same list share it (a YAML alias), so a designer changes one place."""
    for path, document in domain_documents(repo).items():
        lists = [mapping["not_intent"] for spec in (document.get("slots") or {}).values()
                 for mapping in spec.get("mappings", []) if "not_intent" in mapping]
        for a in lists:
            copies = [b for b in lists if sorted(b) == sorted(a) and b is not a]
            assert all(b is a for b in copies), f"{path.name}: {a} written out again, use its alias"


def test_no_response_is_a_copy(repo):
    """The same text under two names is one text with aliases (&name / *name), in one file."""
    seen = {}
    for path, document in domain_documents(repo).items():
        for name, variations in (document.get("responses") or {}).items():
            key = json.dumps(variations, sort_keys=True)
            if key in seen:
                first_path, first_name, first = seen[key]
                assert path == first_path and variations is first, \
                    f"{name} ({path.name}) copies {first_name} ({first_path.name})"
            else:
                seen[key] = (path, name, variations)


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    domain = tmp_path / "domain.yml"
    domain.write_text('version: "3.1"\nintents: [faq, deny]\nforms:\n  new_form:\n    required_slots: [email]\n')
    rules = tmp_path / "rules"
    rules.mkdir()
    out = tmp_path / "form_interruptions.yml"
    args = ["--domain", str(domain), "--rules", str(rules), "--out", str(out)]
    assert form_rules.main(args + ["--check"]) == 1
    assert form_rules.main(args) == 0
    assert form_rules.main(args + ["--check"]) == 0
    rules = yaml.safe_load(out.read_text())["rules"]
    assert {r["condition"][0]["active_loop"] for r in rules} == {"new_form"} and len(rules) == 2
