"""docs/designer-guide.md: its examples work as written, without training.

- Every ```yaml block is read with Rasa's own readers, by what it is: NLU examples and FAQ
  answers (RasaYAMLReader), rules and stories (YAMLStoryReader), domain parts (Domain). What
  they name must exist in the real domain (domain/ plus the FAQ answers in data/nlu/, as Rasa
  merges them) or be added by an example of the same how-to: the intent a how-to adds, say.
  An alias (`*side_questions`) must be an anchor of domain/, and is read as that anchor.
- Every ```bash line that runs `make X`, `.venv/bin/supportbot`, `.venv/bin/rasa` or
  `.venv/bin/python -m` names a real target, subcommand, option or module; `make X  # = CMD`
  and the "Runs" column of the make table say what the Makefile runs.

A block preceded by `<!-- example: partial -->` is a few lines of a longer list, not a whole
example, and is only checked to be there on purpose.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
import textwrap
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Set

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "designer-guide.md"
PARTIAL = "<!-- example: partial -->"
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
ALIAS = re.compile(r"(?<![\w&*])\*([A-Za-z_][\w-]*)")
DOMAIN_KEYS = {"intents", "entities", "slots", "forms", "actions", "responses", "session_config"}
# Warnings of Rasa's readers that are not about the example: names the example adds are checked
# by the test itself, and Rasa gives the auto-fill notice for any slot.
RASA_NOTICES = ("which is not part of the domain", "Slot auto-fill has been removed")
MAKE_VARIABLES = {"$(BIN)": ".venv/bin", "$(VENV)": ".venv", "$(MODEL)": "models/supportbot.tar.gz",
                  "$(FORM_RULES)": "data/rules/form_interruptions.yml"}


@dataclass
class Block:
    language: str
    text: str
    line: int  # of the opening fence
    section: str  # the how-to (### heading) or section (## heading) it belongs to
    partial: bool

    @property
    def id(self) -> str:
        return f"line{self.line}-{self.language}"


def guide_blocks() -> List[Block]:
    blocks, section, lines = [], "", GUIDE.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith(("## ", "### ")):
            section = line.lstrip("# ").strip()
        fence = FENCE.match(line)
        if fence:
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
            before = next((lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            blocks.append(Block(fence.group(2), textwrap.dedent("\n".join(lines[index + 1:end])), index + 1,
                                section, before == PARTIAL))
            index = end
        index += 1
    return blocks


BLOCKS = guide_blocks()
YAML_BLOCKS = [block for block in BLOCKS if block.language == "yaml"]
BASH_BLOCKS = [block for block in BLOCKS if block.language == "bash"]


# --- the real project, as Rasa sees it ----------------------------------------------------------

@lru_cache(maxsize=None)
def domain():
    from rasa.shared.importers.importer import TrainingDataImporter

    return TrainingDataImporter.load_from_config(str(REPO / "config.yml"), str(REPO / "domain"),
                                                 [str(REPO / "data")]).get_domain()


class _AnchorLoader(yaml.SafeLoader):
    """Keeps the anchors (&name) of the document it reads, which PyYAML forgets at its end."""

    def __init__(self, stream):
        super().__init__(stream)
        self.recorded = {}

    def compose_document(self):
        self.get_event()
        node = self.compose_node(None, None)
        self.get_event()
        self.recorded.update(self.anchors)
        self.anchors = {}
        return node


@lru_cache(maxsize=None)
def domain_anchors() -> Dict[str, object]:
    anchors = {}
    for path in sorted((REPO / "domain").rglob("*.yml")):
        loader = _AnchorLoader(path.read_text())
        try:
            loader.get_single_node()
            for name, node in loader.recorded.items():
                anchors[name] = loader.construct_object(node, deep=True)
        finally:
            loader.dispose()
    return anchors


def read_block(text: str):
    """The block as Rasa reads YAML, its aliases read as the anchors of domain/ they name."""
    from rasa.shared.utils.io import read_yaml

    aliases = sorted(set(ALIAS.findall(text)))
    if not aliases:
        return read_yaml(text)
    unknown = [name for name in aliases if name not in domain_anchors()]
    assert not unknown, f"aliases with no anchor (&name) in domain/: {unknown}"
    header = "__anchors__:\n" + "".join(
        f"  {name}: &{name} {json.dumps(domain_anchors()[name])}\n" for name in aliases)
    data = read_yaml(header + text)
    del data["__anchors__"]
    return data


def kind(data) -> str:
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        for key, name in (("intent", "nlu"), ("rule", "rules"), ("story", "stories")):
            if all(key in item for item in data):
                return name
    if isinstance(data, dict) and data and set(data) <= DOMAIN_KEYS:
        responses = data.get("responses") or {}
        if set(data) == {"responses"} and all("/" in name for name in responses):
            return "faq answers"  # retrieval answers live in data/nlu/faq.yml, not in the domain
        return "domain"
    return "unknown"


# --- what the examples of one how-to add ---------------------------------------------------------

@dataclass
class Added:
    intents: Set[str] = field(default_factory=set)
    actions: Set[str] = field(default_factory=set)  # actions, responses and forms
    forms: Set[str] = field(default_factory=set)
    slots: Set[str] = field(default_factory=set)
    entities: Set[str] = field(default_factory=set)


@lru_cache(maxsize=None)
def added_in(section: str) -> Added:
    added = Added()
    for block in YAML_BLOCKS:
        if block.section != section or block.partial:
            continue
        data = read_block(block.text)
        if kind(data) == "nlu":
            added.intents |= {item["intent"] for item in data}
        elif kind(data) == "domain":
            added.intents |= {i if isinstance(i, str) else next(iter(i)) for i in data.get("intents") or []}
            added.actions |= set(data.get("actions") or []) | set(data.get("responses") or {})
            added.forms |= set(data.get("forms") or {})
            added.actions |= set(data.get("forms") or {})
            added.slots |= set(data.get("slots") or {})
            added.entities |= {e if isinstance(e, str) else next(iter(e)) for e in data.get("entities") or []}
    return added


def unknown_names(block: Block, intents=(), actions=(), forms=(), slots=(), entities=()) -> List[str]:
    real, added = domain(), added_in(block.section)
    known = {
        "intent": set(real.intents) | added.intents,
        "action": set(real.action_names_or_texts) | added.actions,
        "form": set(real.form_names) | added.forms,
        "slot": {slot.name for slot in real.slots} | added.slots,
        "entity": set(real.entities) | added.entities,
    }
    named = {"intent": intents, "action": actions, "form": forms, "slot": slots, "entity": entities}
    return [f"{what} {name}" for what, names in named.items() for name in names if name not in known[what]]


# --- the YAML examples ---------------------------------------------------------------------------

@pytest.mark.parametrize("block", [b for b in YAML_BLOCKS if not b.partial], ids=Block.id.fget)
def test_yaml_example(block: Block, tmp_path):
    data = read_block(block.text)
    what = kind(data)
    assert what != "unknown", (f"{block.id} ({block.section}): not NLU examples, rules, stories or a part of the "
                               f"domain; if it is a few lines of a longer list, put {PARTIAL} before it")
    check = {"nlu": check_nlu, "faq answers": check_faq_answers, "rules": check_dialogue,
             "stories": check_dialogue, "domain": check_domain}[what]
    domain()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        problems = check(block, data, tmp_path)
    # Rasa's own complaints (an example line it would skip, say) make `make validate` fail too.
    problems += [str(w.message) for w in caught if issubclass(w.category, UserWarning)
                 and not any(notice in str(w.message) for notice in RASA_NOTICES)]
    assert not problems, f"{block.id} ({block.section}): {problems}"


def check_nlu(block: Block, data, tmp_path) -> List[str]:
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader
    from rasa.shared.utils.io import dump_obj_as_yaml_to_string

    training = RasaYAMLReader().reads(dump_obj_as_yaml_to_string({"version": "3.1", "nlu": data}))
    problems = unknown_names(block, entities=training.entities)
    problems += [f"{item['intent']} has no examples" for item in data
                 if not any(m.get("intent") == item["intent"].split("/")[0] for m in training.intent_examples)]
    for name in (item["intent"] for item in data):
        if "/" in name and name.split("/")[0] not in domain().retrieval_intents:
            problems.append(f"retrieval intent {name.split('/')[0]}")
        if "+" in name:  # a multi-intent joins existing intents
            problems += unknown_names(block, intents=name.split("+"))
    return problems


def check_faq_answers(block: Block, data, tmp_path) -> List[str]:
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader
    from rasa.shared.utils.io import dump_obj_as_yaml_to_string

    training = RasaYAMLReader().reads(dump_obj_as_yaml_to_string({"version": "3.1", **data}))
    retrieval = {name.split("/")[0][len("utter_"):] for name in training.responses}
    return [f"retrieval intent {name}" for name in sorted(retrieval) if name not in domain().retrieval_intents]


def check_dialogue(block: Block, data, tmp_path) -> List[str]:
    from rasa.shared.core.events import ActionExecuted, ActiveLoop, SlotSet, UserUttered
    from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader
    from rasa.shared.utils.io import dump_obj_as_yaml_to_string

    what = "rules" if "rule" in data[0] else "stories"
    # A test story file (test_*.yml) may give a full retrieval intent (faq/warranty).
    path = tmp_path / ("test_guide.yml" if what == "stories" else "guide.yml")
    path.write_text(dump_obj_as_yaml_to_string({"version": "3.1", what: data}))
    events = [event for step in YAMLStoryReader(domain()).read_from_file(str(path)) for event in step.events]
    user = [e for e in events if isinstance(e, UserUttered)]
    return unknown_names(
        block,
        intents={e.intent_name for e in user},
        entities={entity["entity"] for e in user for entity in e.entities},
        actions={e.action_name for e in events if isinstance(e, ActionExecuted)},
        slots={e.key for e in events if isinstance(e, SlotSet)},
        forms={e.name for e in events if isinstance(e, ActiveLoop) and e.name},
    )


def check_domain(block: Block, data, tmp_path) -> List[str]:
    from rasa.shared.core.domain import Domain
    from rasa.shared.utils.io import dump_obj_as_yaml_to_string

    Domain.from_yaml(dump_obj_as_yaml_to_string({"version": "3.1", **data}))  # Rasa's schema and checks
    problems = []
    real_forms = domain().forms
    for form, spec in (data.get("forms") or {}).items():
        required = list((spec or {}).get("required_slots") or [])
        problems += unknown_names(block, slots=required)
        if form in real_forms:  # an example that extends a form shows its real slots, in order
            real = list(real_forms[form].get("required_slots") or [])
            if [slot for slot in required if slot in real] != real:
                problems.append(f"{form} asks for {real} in domain/, the example for {required}")
    for spec in (data.get("slots") or {}).values():
        for mapping in spec.get("mappings") or []:
            problems += check_slot_mapping(block, mapping)
    return problems


def check_slot_mapping(block: Block, mapping: Dict) -> List[str]:
    intents = []
    for key in ("intent", "not_intent"):
        names = mapping.get(key) or []
        intents += [names] if isinstance(names, str) else names
    conditions = mapping.get("conditions") or []
    return unknown_names(block, intents=intents,
                         entities=[mapping["entity"]] if "entity" in mapping else [],
                         forms=[c["active_loop"] for c in conditions if c.get("active_loop")],
                         slots=[c["requested_slot"] for c in conditions if c.get("requested_slot")])


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.partial], ids=Block.id.fget)
def test_partial_examples_are_yaml_fragments(block: Block):
    """Skipped as examples, but marked on purpose: each is a few indented lines of a longer list."""
    assert block.language == "yaml"
    assert ALIAS.search(block.text) or block.text.startswith((" ", "-"))


# --- the commands --------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def makefile() -> Dict[str, List[str]]:
    """target -> recipe lines, with the Makefile's variables written out."""
    def expand(text: str) -> str:
        for variable, value in MAKE_VARIABLES.items():
            text = text.replace(variable, value)
        return text

    targets: Dict[str, List[str]] = {}
    prerequisites: Dict[str, List[str]] = {}
    current = None
    for line in (REPO / "Makefile").read_text().splitlines():
        rule = re.match(r"^([^\s:#=][^:=]*):(?!=)(.*)$", line)
        if rule and not line.startswith("\t"):
            current = None
            for target in expand(rule.group(1)).split():
                targets.setdefault(target, [])
                prerequisites[target] = expand(rule.group(2)).split()
                current = target
        elif line.startswith("\t") and current:
            targets[current].append(expand(line.strip().lstrip("@")))
        elif line and not line.startswith("#"):
            current = None
    # `make train` runs the recipe of the file it makes (models/supportbot.tar.gz)
    return {target: lines or [line for p in prerequisites[target] for line in targets.get(p, [])]
            for target, lines in targets.items()}


def runs(target: str, command: str) -> bool:
    squeeze = " ".join
    return squeeze(command.split()) in {squeeze(line.split()) for line in makefile().get(target, [])}


def commands(text: str) -> List[str]:
    return [line for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def check_command(line: str) -> List[str]:
    code, _, comment = line.partition("#")
    words = shlex.split(code)
    if not words:
        return []
    if words[0] == "make":
        target = words[1]
        if target not in makefile():
            return [f"no make target {target}"]
        said = comment.strip()
        if said.startswith("="):
            return [] if runs(target, said[1:].strip()) else [f"make {target} does not run {said[1:].strip()}"]
        return []
    if words[0] == ".venv/bin/supportbot":
        from supportbot.cli import parser

        try:
            parser().parse_args(words[1:])
        except SystemExit:
            return [f"supportbot rejects {words[1:]}"]
        return []
    if words[0] == ".venv/bin/rasa":
        from rasa.__main__ import create_argument_parser

        try:
            create_argument_parser().parse_args(words[1:])
        except SystemExit:
            return [f"rasa rejects {words[1:]}"]
        return []
    if words[0] == ".venv/bin/python" and words[1] == "-m":
        spec = importlib.util.find_spec(words[2])
        if spec is None:
            return [f"no module {words[2]}"]
        source = Path(spec.origin).read_text()
        options = [word for word in words[3:] if word.startswith("--")]
        return [f"{words[2]} has no option {option}" for option in options if f'"{option}"' not in source]
    return []  # curl and the like talk to a running server


@pytest.mark.parametrize("block", BASH_BLOCKS, ids=Block.id.fget)
def test_shell_example(block: Block):
    problems = [problem for line in commands(block.text) for problem in check_command(line)]
    assert not problems, f"{block.id} ({block.section}): {problems}"


def test_the_make_table_says_what_each_target_runs():
    rows = re.findall(r"^\| `make ([\w-]+)` \| `([^`|]+)` \|", GUIDE.read_text(), flags=re.M)
    assert len(rows) >= 6
    wrong = [f"make {target}: {command}" for target, command in rows if not runs(target, command)]
    assert not wrong, f"the Makefile runs something else for {wrong}"


def test_the_guide_has_examples_of_each_kind():
    kinds = {kind(read_block(block.text)) for block in YAML_BLOCKS if not block.partial}
    assert kinds == {"nlu", "faq answers", "rules", "stories", "domain"}
