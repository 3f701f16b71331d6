"""Every form gets the side-question rules, generated from the domain (supportbot.designer.
form_rules); the domain writes shared lists and texts once (domain/forms.yml)."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import yaml

from supportbot.designer import form_rules


def domain_documents(repo: Path):
    return {path: yaml.safe_load(path.read_text()) for path in form_rules.domain_files(repo / "domain")}


def test_generated_rules_are_up_to_date(repo):
    forms = form_rules.domain_forms(repo / "domain")
    assert (repo / form_rules.OUTPUT).read_text() == form_rules.render(forms), \
        "run `python -m supportbot.designer.form_rules` after changing the forms in domain/"


def test_every_form_has_every_interruption_rule(repo):
    rules = yaml.safe_load((repo / form_rules.OUTPUT).read_text())["rules"]
    handled = defaultdict(set)
    for rule in rules:
        handled[rule["condition"][0]["active_loop"]] |= {s["intent"] for s in rule["steps"] if "intent" in s}
    expected = set(form_rules.interruption_intents())
    assert expected == {"faq", "bot_challenge", "thank", "request_human", "deny"}
    forms = form_rules.domain_forms(repo / "domain")
    assert len(forms) > 10
    assert {form: handled[form] for form in forms} == {form: expected for form in forms}


def test_no_hand_written_rule_for_a_side_question_inside_a_form(repo):
    """The generated file is the only place: a second rule for the same turn would conflict."""
    for path in (repo / "data" / "rules").glob("*.yml"):
        if path.name == form_rules.OUTPUT.name:
            continue
        for rule in yaml.safe_load(path.read_text()).get("rules", []):
            loops = [c.get("active_loop") for c in rule.get("condition", []) if "active_loop" in c]
            intents = {s.get("intent") for s in rule["steps"][:1]}
            assert not (loops and intents & set(form_rules.interruption_intents())), (path.name, rule["rule"])


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
    domain.write_text('version: "3.1"\nforms:\n  new_form:\n    required_slots: [email]\n')
    out = tmp_path / "form_interruptions.yml"
    assert form_rules.main(["--domain", str(domain), "--out", str(out), "--check"]) == 1
    assert form_rules.main(["--domain", str(domain), "--out", str(out)]) == 0
    assert form_rules.main(["--domain", str(domain), "--out", str(out), "--check"]) == 0
    rules = yaml.safe_load(out.read_text())["rules"]
    assert {r["condition"][0]["active_loop"] for r in rules} == {"new_form"} and len(rules) == 5
