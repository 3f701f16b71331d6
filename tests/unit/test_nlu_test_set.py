"""tests/nlu, the held-out NLU test set: none of its messages is in the training data, so the gate
measures understanding of new phrasing rather than memory, and none carries a card number."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import yaml

from supportbot.redact import mask_card_numbers

ROOT = Path(__file__).resolve().parents[2]
TRAINING = ROOT / "data" / "nlu"
HELD_OUT = ROOT / "tests" / "nlu"

# [text](entity), [text]{"entity": ...} and [text]{...}[...] annotations keep only their text.
_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")
_NOT_WORD = re.compile(r"[\W_]+")


def key(message: str) -> str:
    """The message without annotations, case, spaces or punctuation: "What's up?" == "whats up"."""
    return _NOT_WORD.sub("", _ANNOTATION.sub(r"\1", message).casefold())


def examples(folder: Path) -> Iterator[Tuple[str, str, str]]:
    """(file name, intent, message) of every intent example in the folder's YAML files."""
    for path in sorted(folder.rglob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for block in document.get("nlu") or []:
            if "intent" not in block:
                continue  # synonyms, regexes and lookup tables are not messages
            raw = block.get("examples") or ""
            items = raw if isinstance(raw, list) else raw.splitlines()
            for item in items:
                text = item.get("text", "") if isinstance(item, dict) else item
                text = re.sub(r"^\s*-\s?", "", text).strip()
                if text:
                    yield path.name, block["intent"], text


def overlaps(held_out: Path, training: Path) -> List[str]:
    seen: Dict[str, Tuple[str, str]] = {}
    for name, intent, text in examples(training):
        seen.setdefault(key(text), (f"data/nlu/{name}", intent))
    return [f"{text!r} ({intent}) is also in {seen[key(text)][0]} ({seen[key(text)][1]})"
            for _, intent, text in examples(held_out) if key(text) in seen]


def write_nlu(path: Path, intent: str, *messages: str) -> None:
    lines = "".join(f"    - {m}\n" for m in messages)
    path.write_text(f'version: "3.1"\nnlu:\n- intent: {intent}\n  examples: |\n{lines}'
                    f"- synonym: premium\n  examples: |\n    - pro\n", encoding="utf-8")


def test_key_ignores_case_spaces_punctuation_and_annotations():
    assert key("Where's  my order [4817263](order_id)?!") == key("wheres my ORDER 4817263")
    assert key('[pro]{"entity": "plan", "value": "premium"} plan') == key("Pro plan.")
    assert key("where is my order") != key("where is my refund")


def test_overlap_is_found_whatever_the_case_spacing_or_punctuation(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    write_nlu(tmp_path / "train" / "orders.yml", "order_status", "Where is my parcel?", "hi")
    write_nlu(tmp_path / "test" / "test_nlu.yml", "order_status", "where is  my PARCEL", "pro")
    assert overlaps(tmp_path / "test", tmp_path / "train") == [
        "'where is  my PARCEL' (order_status) is also in data/nlu/orders.yml (order_status)"]


def test_the_folders_hold_messages():
    assert sum(1 for _ in examples(HELD_OUT)) >= 500
    assert sum(1 for _ in examples(TRAINING)) >= 1000


def test_no_held_out_message_is_in_the_training_data():
    found = overlaps(HELD_OUT, TRAINING)
    assert not found, "Held-out messages also in the training data (reword the test one):\n" + \
        "\n".join(found)


def test_no_message_is_repeated_in_the_held_out_set():
    counts: Dict[str, List[str]] = {}
    for _, intent, text in examples(HELD_OUT):
        counts.setdefault(key(text), []).append(f"{text!r} ({intent})")
    assert [v for v in counts.values() if len(v) > 1] == []


def test_no_card_number_in_the_held_out_set():
    assert [text for _, _, text in examples(HELD_OUT) if mask_card_numbers(text)[1]] == []
