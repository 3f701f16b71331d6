"""The labels a message may be given: the domain's intents and the FAQ topics (`faq/<topic>`,
one per `utter_faq/<topic>` answer in data/nlu), as a designer writes them in domain/ and data/."""
from __future__ import annotations

from pathlib import Path
from typing import FrozenSet

import yaml

# Set by NLU or used only inside multi-intents: never a label on its own.
NOT_LABELS = frozenset({"nlu_fallback", "faq"})


def known_labels(domain: Path = Path("domain"), data: Path = Path("data")) -> FrozenSet[str]:
    labels = set()
    for path in sorted(domain.rglob("*.yml")):
        for intent in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("intents") or []:
            name = intent if isinstance(intent, str) else next(iter(intent))
            if "+" not in name and name not in NOT_LABELS:
                labels.add(name)
    for path in sorted(data.rglob("*.yml")):
        responses = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("responses") or {}
        labels.update("faq/" + name[len("utter_faq/"):] for name in responses if name.startswith("utter_faq/"))
    return frozenset(labels)
