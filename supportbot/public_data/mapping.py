"""The reviewed mapping of public data sets onto our intents (sources/public_datasets.yml).

Each source intent maps to one of our intents, `out_of_scope`, or `skip`, written either as the
target alone or as `{to: target, why: reason}`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional

DEFAULT_MAPPING = Path("sources/public_datasets.yml")
OUT_OF_SCOPE = "out_of_scope"
SKIP = "skip"
READERS = ("banking77", "clinc150")  # the sources split.py knows how to read


@dataclass(frozen=True)
class Source:
    name: str
    file: str  # relative to the data sets folder
    intents: Dict[str, str]  # source intent -> target
    reasons: Dict[str, str] = field(default_factory=dict)
    licence: str = ""
    validation_fraction: float = 0.2  # share of rows hashed to validation (sources without fixed splits)
    training_splits: tuple = ()
    validation_splits: tuple = ()

    def target(self, source_intent: str) -> Optional[str]:
        """Our intent for a source intent, None when skipped or not in the mapping."""
        target = self.intents.get(source_intent)
        return None if target in (None, SKIP) else target


@dataclass(frozen=True)
class Mapping:
    sources: Dict[str, Source]

    def targets(self) -> List[str]:
        return sorted({t for s in self.sources.values() for t in s.intents.values() if t != SKIP})


def _entry(value) -> tuple:
    if isinstance(value, str):
        return value, ""
    if isinstance(value, dict) and isinstance(value.get("to"), str):
        return value["to"], str(value.get("why", ""))
    raise ValueError(f"a mapping entry is a target or {{to: target, why: reason}}, got {value!r}")


def parse_mapping(raw: Dict) -> Mapping:
    sources = {}
    for name, spec in (raw.get("sources") or {}).items():
        if name not in READERS:
            raise ValueError(f"no reader for source {name!r} (known: {', '.join(READERS)})")
        intents, reasons = {}, {}
        for source_intent, value in (spec.get("intents") or {}).items():
            intents[str(source_intent)], why = _entry(value)
            if why:
                reasons[str(source_intent)] = why
        sources[name] = Source(
            name=name, file=spec["file"], intents=intents, reasons=reasons, licence=spec.get("licence", ""),
            validation_fraction=float(spec.get("validation_fraction", 0.2)),
            training_splits=tuple(spec.get("training_splits", ())),
            validation_splits=tuple(spec.get("validation_splits", ())))
    return Mapping(sources)


def load_mapping(path: Path = DEFAULT_MAPPING) -> Mapping:
    import yaml

    return parse_mapping(yaml.safe_load(Path(path).read_text()))


def unknown_targets(mapping: Mapping, our_intents: Iterable[str]) -> List[str]:
    """Targets that are neither one of our intents nor out_of_scope: a typo in the mapping."""
    known = set(our_intents) | {OUT_OF_SCOPE}
    return [t for t in mapping.targets() if t not in known]


def domain_intents(domain_dir: Path = Path("domain")) -> List[str]:
    from rasa.shared.core.domain import Domain

    return list(Domain.load(str(domain_dir)).intents)
