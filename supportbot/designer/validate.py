"""`rasa data validate` without the warnings that are not news, for `make validate`.

Rasa 3.6 counts a response as used only when a story or rule names it, so it warns about every
response a form asks with or an action says. This runs the same checks as `rasa data validate`,
prints what Rasa prints except warnings explained below, and exits 1 on a failed check or any
warning left, so a warning is always about something new. It also checks that the generated
form rules are up to date (supportbot.designer.form_rules).

Explained, not printed:
  - a response a form asks with: Rasa's first match of utter_ask_<form>_<slot> / utter_ask_<slot>
    for a slot in the form's required_slots (an action_ask_... before it takes its place);
  - a response named as a string in the action code (actions/*.py);
  - "duplicated intents ... faq": data/nlu/faq.yml declares the retrieval intent `faq` again.

    python -m supportbot.designer.validate              # = make validate
    python -m supportbot.designer.validate --explain    # also say who says each response
"""
from __future__ import annotations

import argparse
import ast
import logging
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, List, Mapping, Optional, Tuple

from supportbot.designer import form_rules

if TYPE_CHECKING:
    from rasa.shared.core.domain import Domain

UNUSED_RESPONSE = re.compile(r"The utterance '([^']+)' is not used in any story or rule\.")
FAQ_DUPLICATE = "The following duplicated intents have been found across multiple domain files: faq"
# Intents no classifier learns: a pipeline component sets them.
SET_BY_COMPONENTS = {"other_language": "set by supportbot.nlu.language.LanguageIdentifier"}
NO_NLU_DATA = re.compile(r"The intent '(\w+)' is listed in the domain file, but is not found in the NLU "
                         r"training data\.")


@dataclass
class Report:
    passed: bool = True
    explained: Dict[str, str] = field(default_factory=dict)  # response -> who says it
    warnings: List[str] = field(default_factory=list)  # left to print


def form_questions(forms: Mapping[str, Mapping], actions: Iterable[str]) -> Dict[str, str]:
    """Response -> "question of <form> for <slot>", following Rasa 3.6's lookup
    (rasa/core/actions/forms.py, FormAction._name_of_utterance)."""
    known = set(actions)
    questions: Dict[str, str] = {}
    for form, spec in forms.items():
        for slot in (spec or {}).get("required_slots") or []:
            for name in (f"action_ask_{form}_{slot}", f"utter_ask_{form}_{slot}",
                         f"action_ask_{slot}", f"utter_ask_{slot}"):
                if name in known:
                    if name.startswith("utter_"):
                        questions.setdefault(name, f"{form} asks for {slot}")
                    break
    return questions


def responses_named_in_code(code_dir: Path) -> Dict[str, str]:
    """Response -> file, for every string constant in the code that is a response name."""
    named: Dict[str, str] = {}
    for path in sorted(code_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"utter_[A-Za-z0-9_]+", node.value):
                named.setdefault(node.value, path.as_posix())
    return named


def explain(message: str, questions: Mapping[str, str], named: Mapping[str, str]) -> Optional[str]:
    """Why a Rasa warning is not news, or None if it is."""
    if message == FAQ_DUPLICATE:
        return "faq is declared by the domain and by data/nlu/faq.yml's responses"
    missing = NO_NLU_DATA.fullmatch(message)
    if missing and missing.group(1) in SET_BY_COMPONENTS:
        return SET_BY_COMPONENTS[missing.group(1)]
    match = UNUSED_RESPONSE.fullmatch(message)
    if not match:
        return None
    response = match.group(1)
    return questions.get(response) or (f"said by {named[response]}" if response in named else None)


def run_rasa_checks(config: str, domain: str, data: List[str]) -> Tuple[bool, Domain, List[str]]:
    """The checks of `rasa data validate`: (passed, the domain, Rasa's warnings)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # libraries' import-time noise
        from rasa.cli.utils import validate_files
        from rasa.shared.importers.importer import TrainingDataImporter
        from rasa.utils.common import EXPECTED_WARNINGS, configure_logging_and_warnings

    configure_logging_and_warnings(logging.WARNING, warn_only_once=False)
    importer = TrainingDataImporter.load_from_config(config_path=config, domain_path=domain,
                                                     training_data_paths=data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for category, message in EXPECTED_WARNINGS:  # the ones `rasa data validate` hides too
            warnings.filterwarnings("ignore", message=f".*{message}", category=category)
        try:
            validate_files(fail_on_warnings=False, max_history=None, importer=importer)
            passed = True
        except SystemExit as stop:
            passed = not stop.code
        loaded = importer.get_domain()
    messages = [str(w.message).strip() for w in caught if issubclass(w.category, UserWarning)]
    return passed, loaded, list(dict.fromkeys(messages))


def validate(config: str = "config.yml", domain: str = "domain", data: Optional[List[str]] = None,
             code: Path = Path("actions")) -> Report:
    passed, loaded, messages = run_rasa_checks(config, domain, data or ["data"])
    report = Report(passed=passed)
    questions = form_questions(loaded.forms, loaded.action_names_or_texts)
    named = responses_named_in_code(code)
    for message in messages:
        reason = explain(message, questions, named)
        match = UNUSED_RESPONSE.fullmatch(message)
        if reason and match:
            report.explained[match.group(1)] = reason
        elif not reason:
            report.warnings.append(message)
    return report


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m supportbot.designer.validate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yml", help="(default: %(default)s)")
    parser.add_argument("--domain", default="domain", help="domain file or directory (default: %(default)s)")
    parser.add_argument("--data", nargs="+", default=["data"], help="(default: %(default)s)")
    parser.add_argument("--actions", type=Path, default=Path("actions"),
                        help="action code that names responses (default: %(default)s)")
    parser.add_argument("--explain", action="store_true", help="list the responses forms and actions say")
    args = parser.parse_args(argv)
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

    report = validate(args.config, args.domain, args.data, args.actions)
    if not form_rules.is_up_to_date(Path(args.domain)):
        report.warnings.append(f"{form_rules.OUTPUT} is out of date: "
                               "run `python -m supportbot.designer.form_rules`")
    if args.explain:
        for response, reason in sorted(report.explained.items()):
            print(f"{response}: {reason}")
    for message in report.warnings:
        print(f"WARNING {message}")
    print(f"{len(report.explained)} responses are said by forms, actions or Rasa's fallback rather than a "
          f"story or rule (--explain lists them); {len(report.warnings)} other warnings.")
    if not report.passed or report.warnings:
        print("Validation FAILED")
        return 1
    print("Validation passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
