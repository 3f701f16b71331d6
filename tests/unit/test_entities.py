"""EntityNormalizer's merge: one entity per span, the most trustworthy extractor wins."""
from supportbot.nlu.entities import merge_entities


def entity(kind, start, end, text, extractor, value=None):
    return {"entity": kind, "start": start, "end": end, "value": value or text[start:end], "extractor": extractor}


def test_spacy_money_is_renamed_widened_and_normalised():
    text = "refund $49.99 please"
    merged = merge_entities([entity("MONEY", 8, 13, text, "SpacyEntityExtractor")], text)
    assert merged == [{"entity": "amount", "start": 7, "end": 13, "value": "49.99 USD",
                       "source": "SpacyEntityExtractor"}]


def test_regex_beats_spacy_date_on_an_order_number():
    text = "order 4817263 from last Tuesday"
    found = merge_entities([
        entity("DATE", 6, 13, text, "SpacyEntityExtractor"),
        entity("order_id", 6, 13, text, "RegexEntityExtractor"),
        entity("DATE", 19, 31, text, "SpacyEntityExtractor"),
    ], text)
    assert [e["entity"] for e in found] == ["order_id", "date"]
    assert found[0]["value"] == "4817263" and found[1]["end"] == 31


def test_durations_and_unknown_labels_are_dropped():
    text = "within 30 days, says Acme Corp"
    found = merge_entities([
        entity("DATE", 7, 14, text, "SpacyEntityExtractor"),
        entity("ORG", 21, 30, text, "SpacyEntityExtractor"),
    ], text)
    assert found == []


def test_synonym_value_is_kept_for_diet_entities():
    text = "switch me to pro"
    found = merge_entities([entity("plan", 13, 16, text, "DIETClassifier", value="premium")], text)
    assert found[0]["value"] == "premium"
