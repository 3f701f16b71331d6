"""Run every test story, write every failure, then fail: `make test-core`.

`rasa test core --fail-on-prediction-errors` stops at the first story that goes wrong and writes
nothing to its --out folder. This runs `rasa test core` without that flag, so every story is run
and Rasa 3.6 writes its files (names in rasa/core/constants.py):

  failed_test_stories.yml     each failed story, every wrong step marked `# predicted: <action>`
  story_report.json           scores per action, and how many stories passed
  stories_with_warnings.yml   stories where UnexpecTEDIntentPolicy objected (not in our config)
  rasa-test-core.log          Rasa's output

then lists the failed stories with their wrong steps and exits 1 if there is any (2 if Rasa
could not run them). Test stories check the dialogue only: Rasa takes each user turn's intent
and entities as the story writes them; recognising the message is the NLU gate's job
(docs/designer-guide.md, "Reading make test-core").

    python -m supportbot.designer.test_stories      # = make test-core
    python -m supportbot.designer.test_stories --model /tmp/candidate.tar.gz --stories tests/stories
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

FAILED = "failed_test_stories.yml"  # rasa.core.constants.FAILED_STORIES_FILE
REPORT = "story_report.json"  # rasa.core.constants.REPORT_STORIES_FILE
WARNINGS = "stories_with_warnings.yml"  # rasa.core.constants.STORIES_WITH_WARNINGS_FILE
LOG = "rasa-test-core.log"
WRONG = "# predicted:"  # how Rasa marks a wrong step (WronglyPredictedAction.inline_comment)


@dataclass
class FailedStory:
    name: str  # Rasa adds the source file: "refund, the bot asks (tests/stories/test_refunds.yml)"
    wrong_steps: List[str] = field(default_factory=list)


def failed_stories(text: str) -> List[FailedStory]:
    """The stories in a failed_test_stories.yml, with the steps Rasa marked wrong. Read as text:
    the marks are YAML comments. A file with no story says so in a comment only."""
    stories: List[FailedStory] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("- story:"):
            stories.append(FailedStory(stripped[len("- story:"):].strip().strip("'\"")))
        elif WRONG in stripped and stories:
            stories[-1].wrong_steps.append(stripped.lstrip("- "))
    return stories


def run_rasa_test(model: Path, stories: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for name in (FAILED, REPORT, WARNINGS):  # never read a stale one
        (out / name).unlink(missing_ok=True)
    command = [
        str(Path(sys.executable).with_name("rasa")), "test", "core", "--model", str(model),
        "--stories", str(stories), "--out", str(out), "--no-plot",
    ]
    env = {"RASA_TELEMETRY_ENABLED": "false", **os.environ}
    with open(out / LOG, "w") as handle:
        return subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env).returncode


def stories_run(out: Path) -> Optional[int]:
    """How many stories ran, from the story report (None when Rasa wrote no count)."""
    path = out / REPORT
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("conversation_accuracy", {}).get("total")


def report(stories: List[FailedStory], total: Optional[int], out: Path) -> str:
    ran = f"{total} test stories" if total is not None else "The test stories"
    if not stories:
        return f"{ran}: all passed. Results in {out}/."
    lines = [f"{ran}: {len(stories)} failed. Each wrong step is marked `{WRONG} …` in {out / FAILED}:"]
    for story in stories:
        lines.append(f"  - {story.name}")
        lines += [f"      {step}" for step in story.wrong_steps]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m supportbot.designer.test_stories", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/supportbot.tar.gz"),
                        help="(default: %(default)s)")
    parser.add_argument("--stories", type=Path, default=Path("tests/stories"),
                        help="test story file or directory (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("results/core"), help="(default: %(default)s)")
    args = parser.parse_args(argv)
    for path in (args.model, args.stories):
        if not path.exists():  # Rasa would quietly test the newest model in models/ instead
            print(f"{path} does not exist", file=sys.stderr)
            return 2
    code = run_rasa_test(args.model, args.stories, args.out)
    failed_file = args.out / FAILED
    if code != 0 or not failed_file.exists():
        log = (args.out / LOG).read_text(errors="replace")
        print(log[-4000:], file=sys.stderr)
        print(f"rasa test core did not finish (exit {code}); log: {args.out / LOG}", file=sys.stderr)
        return 2
    stories = failed_stories(failed_file.read_text())
    print(report(stories, stories_run(args.out), args.out))
    return 1 if stories else 0


if __name__ == "__main__":
    sys.exit(main())
