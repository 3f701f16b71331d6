"""EntityNormalizer: one entity per span, with the value actions read.

Three extractors see every message: RegexEntityExtractor (ids, emails), DIETEntityExtractor
(everything it was trained on) and SpacyNEREntityExtractor (MONEY, DATE). This component keeps,
for each span of text, the most trustworthy answer, renames spaCy's labels to the domain's
`amount` and `date`, widens spaCy's money spans to the currency the customer typed, and
normalises every value (supportbot.nlu.normalize). What cannot be normalised is dropped.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from supportbot.nlu import normalize
from supportbot.nlu.base import StatelessComponent

SPACY_LABELS = {"MONEY": "amount", "DATE": "date"}
# Lower rank wins when two extractors claim overlapping text.
SPACY_EXTRACTORS = {"SpacyEntityExtractor", "SpacyNEREntityExtractor"}
RANK = {"RegexEntityExtractor": 0, "DIETEntityExtractor": 1, "DIETClassifier": 1,
        **{name: 2 for name in SPACY_EXTRACTORS}}
_CURRENCY_BEFORE = re.compile(r"(?:[$€£]|usd|eur|gbp)\s?$", re.IGNORECASE)
_CURRENCY_AFTER = re.compile(
    r"^\s?(?:[$€£]|usd|eur|gbp|dollars?|euros?|bucks?|pounds?|quid)\b", re.IGNORECASE
)


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False
)
class EntityNormalizer(StatelessComponent, EntityExtractorMixin):
    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            merged = merge_entities(message.get(ENTITIES, []), message.get(TEXT) or "")
            for entity in merged:
                entity[EXTRACTOR] = self.name
            message.set(ENTITIES, merged, add_to_output=True)
        return messages


def merge_entities(entities: List[Dict[str, Any]], text: str) -> List[Dict[str, Any]]:
    candidates = [c for c in (_candidate(e, text) for e in entities) if c]
    candidates.sort(key=lambda e: (e["rank"], -(e[ENTITY_ATTRIBUTE_END] - e[ENTITY_ATTRIBUTE_START])))
    kept: List[Dict[str, Any]] = []
    for candidate in candidates:
        if not any(_overlaps(candidate, other) for other in kept):
            kept.append(candidate)
    for entity in kept:
        entity.pop("rank")
    return sorted(kept, key=lambda e: e[ENTITY_ATTRIBUTE_START])


def _candidate(entity: Dict[str, Any], text: str) -> Optional[Dict[str, Any]]:
    source = entity.get(EXTRACTOR, "")
    entity_type = entity.get(ENTITY_ATTRIBUTE_TYPE)
    start, end = entity.get(ENTITY_ATTRIBUTE_START), entity.get(ENTITY_ATTRIBUTE_END)
    if source in SPACY_EXTRACTORS:
        entity_type = SPACY_LABELS.get(entity_type)
        if entity_type == "amount":
            start, end = _widen_to_currency(text, start, end)
    normalizer = normalize.NORMALIZERS.get(entity_type)
    if normalizer is None or start is None or end is None:
        return None
    # Synonym mapping has already replaced the value where one applies; else read the text.
    raw = entity.get(ENTITY_ATTRIBUTE_VALUE)
    if not isinstance(raw, str) or source in SPACY_EXTRACTORS:
        raw = text[start:end]
    value = normalizer(raw)
    if value is None:
        return None
    candidate = {k: v for k, v in entity.items() if k not in (EXTRACTOR, "confidence_entity")}
    candidate.update(
        {
            ENTITY_ATTRIBUTE_TYPE: entity_type,
            ENTITY_ATTRIBUTE_START: start,
            ENTITY_ATTRIBUTE_END: end,
            ENTITY_ATTRIBUTE_VALUE: value,
            "source": source,
            "rank": RANK.get(source, 3),
        }
    )
    if "confidence_entity" in entity:
        candidate["confidence_entity"] = entity["confidence_entity"]
    return candidate


def _widen_to_currency(text: str, start: int, end: int):
    before = _CURRENCY_BEFORE.search(text[:start])
    if before:
        start = before.start()
    after = _CURRENCY_AFTER.match(text[end:])
    if after:
        end += after.end()
    return start, end


def _overlaps(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    return a[ENTITY_ATTRIBUTE_START] < b[ENTITY_ATTRIBUTE_END] and b[ENTITY_ATTRIBUTE_START] < a[
        ENTITY_ATTRIBUTE_END
    ]
