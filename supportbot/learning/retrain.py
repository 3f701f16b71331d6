"""`supportbot learn retrain`: export what was accepted, train a candidate, score it beside the
served model, promote it only if it is no worse, and swap it into the running servers.

The gate (docs/learning.md#gated-retrain): on tests/nlu and on the held-out learned file, the
candidate may not get more messages wrong than the served model beyond chance (McNemar, WORSE_P),
no intent with at least MIN_SUPPORT test messages may lose more than MAX_DROP F1 with at least
MIN_EXTRA_MISTAKES more mistakes, and every test story must pass. A report (Markdown with PNG plots)
says why. The served model is touched only after the candidate passed: a failed training,
scoring or gate leaves it as it was. Promotion keeps the previous model in `models/previous/`,
which `supportbot learn rollback` restores.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import requests

from supportbot import nlu_gate
from supportbot.designer import test_stories
from supportbot.learning import export as exporter
from supportbot.learning.store import LearningStore

MAX_DROP = 0.02
MIN_SUPPORT = 5
# One test message more or less right moves an intent's F1 by 1/(2n) to 1/n: with tests/nlu's ~18
# messages per intent, 3 to 5 points, the noise of any retrain. An intent's drop counts when it is
# more than MAX_DROP *and* at least MIN_EXTRA_MISTAKES more of its messages are wrong or taken for it.
MIN_EXTRA_MISTAKES = 2
# Overall, the candidate may not get more test messages wrong than the served model beyond chance:
# McNemar's exact test on the messages exactly one of them gets wrong, one-sided, at this level.
WORSE_P = 0.05
SERVED = Path("models/supportbot.tar.gz")
PREVIOUS = Path("models/previous")
SWAP_TIMEOUT = 600


@dataclass
class Verdict:
    promoted: bool
    reasons: List[str] = field(default_factory=list)
    report: Optional[Path] = None
    swaps: Dict[str, str] = field(default_factory=dict)  # server → "4.2 s" its model load took, or the error
    notes: List[str] = field(default_factory=list)  # what was not checked, and why; what was reused


@dataclass(frozen=True)
class Paths:
    work: Path = Path("results/learn")
    served: Path = SERVED
    previous: Path = PREVIOUS
    config: Path = Path("config.yml")
    domain: Path = Path("domain")
    data: Path = Path("data")
    test_nlu: Path = Path("tests/nlu")
    stories: Path = Path("tests/stories")
    heldout: Path = exporter.HELDOUT_FILE
    training_file: Path = exporter.TRAINING_FILE


DEFAULT_PATHS = Paths()


def train(paths: Paths, out: Path) -> Path:
    """A full model (NLU and dialogue) from the current data; raises RuntimeError on failure."""
    out.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).with_name("rasa")), "train", "--config", str(paths.config),
               "--domain", str(paths.domain), "--data", str(paths.data), "--out", str(out),
               "--fixed-model-name", "candidate"]
    log = out / "rasa-train.log"
    with open(log, "w") as handle:
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT,
                                env={"RASA_TELEMETRY_ENABLED": "false", **os.environ})
    model = out / "candidate.tar.gz"
    if result.returncode != 0 or not model.exists():
        raise RuntimeError(f"training failed (exit {result.returncode}); log: {log}")
    return model


def restored_components(log: Path) -> List[str]:
    """The components `rasa train` restored from its training cache rather than trained, from its
    log. After an NLU-only change these are the dialogue policies (their inputs are the stories, the
    domain and the config), provided the retrain sees the cache of the training that made them:
    RASA_CACHE_DIRECTORY, else `.rasa/cache` under the working directory (the Makefile pins it)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return re.findall(r"Restored component '([^']+)' from cache", text)


def _intents(path: Path) -> int:
    """How many intents a test file has examples of (0 if there is no file)."""
    if not path.exists():
        return 0
    from rasa.shared.nlu.training_data.loading import load_data

    return len({example.get("intent") for example in load_data(str(path)).intent_examples})


def score(model: Path, test_set: Path, out: Path) -> nlu_gate.Scores:
    nlu_gate.run_rasa_test(model, test_set, out)
    return nlu_gate.collect_scores(out)


def confusions(out: Path) -> Dict[Tuple[str, str], int]:
    """(true intent, predicted intent) → how many test messages, from Rasa's intent_errors.json."""
    path = out / "intent_errors.json"
    counts: Dict[Tuple[str, str], int] = {}
    for error in json.loads(path.read_text()) if path.exists() else []:
        pair = (error["intent"], (error.get("intent_prediction") or {}).get("name") or "none")
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def mistakes(scores: nlu_gate.Scores, label: str) -> Optional[float]:
    """How many test messages of `label` were taken for another (FN) plus others taken for it
    (FP), from its precision, recall and support; None when precision 0 hides the FPs."""
    row = scores["intents"].get(label) or scores["faq_topics"].get(label)
    if row is None:
        return None
    right = row["recall"] * row["support"]
    if row["precision"] == 0:
        return None if right == 0 else row["support"] - right
    return row["support"] - right + right / row["precision"] - right


def wrong_messages(out: Path) -> FrozenSet[Tuple[str, str]]:
    """(text, true intent) of each test message a model got wrong, from Rasa's intent_errors.json."""
    path = out / "intent_errors.json"
    return frozenset((error["text"], error["intent"]) for error in (json.loads(path.read_text())
                                                                     if path.exists() else []))


def worse_beyond_chance(current_wrong: FrozenSet, candidate_wrong: FrozenSet) -> Optional[str]:
    """Why the candidate is worse overall, or None: of the messages exactly one model gets wrong,
    the candidate's share is tested against half (exact binomial: McNemar's test)."""
    from scipy.stats import binomtest

    lost, won = len(candidate_wrong - current_wrong), len(current_wrong - candidate_wrong)
    if lost <= won:
        return None
    p = binomtest(lost, lost + won, 0.5, alternative="greater").pvalue
    if p >= WORSE_P:
        return None
    return f"{lost} messages newly wrong, {won} newly right (McNemar p = {p:.3f} < {WORSE_P})"


def gate(name: str, current: nlu_gate.Scores, candidate: nlu_gate.Scores,
         wrong: Tuple[FrozenSet, FrozenSet] = (frozenset(), frozenset())) -> List[str]:
    """Why `candidate` may not replace `current` on one test set; `wrong` holds the messages each
    got wrong (wrong_messages)."""
    reasons = []
    worse = worse_beyond_chance(*wrong)
    if worse:
        before, after = current["summary"]["intent_macro_f1"], candidate["summary"]["intent_macro_f1"]
        reasons.append(f"{name}: worse overall: {worse}; intent macro-F1 {before:.4f} → {after:.4f}")
    limits = nlu_gate.Thresholds(max_drop=MAX_DROP, min_support=MIN_SUPPORT)
    for delta in nlu_gate.compare(candidate, current):
        if not delta.fails(limits):
            continue
        was, now = mistakes(current, delta.label), mistakes(candidate, delta.label)
        if was is not None and now is not None and now - was < MIN_EXTRA_MISTAKES - 0.01:
            continue  # one message's worth: noise
        reasons.append(f"{name}: {delta.label} F1 fell {-delta.change:.3f} "
                       f"({delta.reference_f1:.3f} → {delta.f1:.3f}, n={delta.support})")
    return reasons


def stories_pass(model: Path, paths: Paths, out: Path) -> List[str]:
    code = test_stories.run_rasa_test(model, paths.stories, out)
    failed_file = out / test_stories.FAILED
    failed = test_stories.failed_stories(failed_file.read_text()) if failed_file.exists() else []
    if code != 0:
        return [f"test stories: rasa test core failed (exit {code}); log: {out / test_stories.LOG}"]
    return [f"test story fails: {story.name}" for story in failed]


def retrain(store: LearningStore, paths: Paths = DEFAULT_PATHS, rasa_urls: Sequence[str] = (),
            token: Optional[str] = None) -> Verdict:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = paths.work / stamp
    learned = exporter.export(store, paths.data, paths.training_file, paths.heldout)
    verdict = Verdict(promoted=False)
    if not paths.served.exists():
        verdict.reasons.append(f"no served model at {paths.served} to compare with: run `make train`")
        return verdict
    try:
        candidate = train(paths, work / "candidate")
    except RuntimeError as error:
        verdict.reasons.append(str(error))
        return verdict
    restored = restored_components(work / "candidate" / "rasa-train.log")
    verdict.notes.append(f"restored from Rasa's training cache, not retrained: {', '.join(restored) or 'nothing'}")
    sets = [("tests/nlu", paths.test_nlu)]
    held_out = _intents(paths.heldout)
    if held_out >= 2:
        sets.append(("held-out learned", paths.heldout))
    elif held_out:
        # Rasa's `test nlu` writes no intent report for a single intent (rasa/nlu/test.py).
        verdict.notes.append(f"{paths.heldout} not scored: it holds one intent, and Rasa's evaluation needs two")
    results = {}
    for name, test_set in sets:
        slug = name.replace("/", "_").replace(" ", "_")
        current = score(paths.served, test_set, work / "current" / slug)
        new = score(candidate, test_set, work / "candidate" / slug)
        results[name] = (current, new, work / "current" / slug, work / "candidate" / slug)
        wrong = (wrong_messages(work / "current" / slug), wrong_messages(work / "candidate" / slug))
        verdict.reasons += gate(name, current, new, wrong)
    verdict.reasons += stories_pass(candidate, paths, work / "candidate" / "core")
    verdict.promoted = not verdict.reasons
    if verdict.promoted:
        promote(candidate, paths)
        verdict.swaps = swap(rasa_urls, paths.served, token)
    from supportbot.learning.report import write_report

    verdict.report = write_report(work, learned, results, verdict)
    return verdict


def promote(candidate: Path, paths: Paths) -> Path:
    """The candidate becomes the served model; the served one moves to `previous/`. Each step is
    a rename on one file system, so a reader sees one model or the other, never half of one."""
    paths.previous.mkdir(parents=True, exist_ok=True)
    kept = paths.previous / f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}-{paths.served.name}"
    shutil.copy2(paths.served, kept)
    staged = paths.served.with_name(f".{paths.served.name}.staged")
    shutil.copy2(candidate, staged)
    os.replace(staged, paths.served)
    return kept


def rollback(paths: Paths = DEFAULT_PATHS, rasa_urls: Sequence[str] = (), token: Optional[str] = None) -> Verdict:
    """The newest model in `previous/` is served again (and taken out of `previous/`)."""
    kept = sorted(paths.previous.glob(f"*-{paths.served.name}")) if paths.previous.exists() else []
    if not kept:
        return Verdict(promoted=False, reasons=[f"no previous model in {paths.previous}"])
    os.replace(kept[-1], paths.served)
    return Verdict(promoted=True, swaps=swap(rasa_urls, paths.served, token))


def swap(rasa_urls: Sequence[str], model: Path, token: Optional[str]) -> Dict[str, str]:
    """Load `model` into every running Rasa server with its HTTP API (`PUT /model`), one after
    another, so that at most one server is busy loading at a time. Returns how long each took, or
    why it failed (that server keeps its model until it is swapped again or restarted): Rasa holds
    a server's requests while it loads (RasaHQ/rasa#3910)."""
    outcome = {}
    for url in rasa_urls:
        started = time.monotonic()
        try:
            response = requests.put(f"{url.rstrip('/')}/model", params={"token": token} if token else None,
                                    json={"model_file": str(model.resolve())}, timeout=SWAP_TIMEOUT)
        except requests.RequestException as error:
            outcome[url] = f"failed: {type(error).__name__}"
            continue
        if response.status_code != 204:
            outcome[url] = f"failed: HTTP {response.status_code} {response.text[:200]}"
        else:
            outcome[url] = f"{time.monotonic() - started:.1f} s"
    return outcome
