"""`supportbot bench`: the command line of the NLU benchmark (arguments, then one run).

Kept free of Rasa imports, so `supportbot --help` stays fast.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import List, Optional

EXAMPLES = """examples:
  supportbot bench --dataset banking77 --train ../shared/datasets/banking77/train.csv --shots 10
  supportbot bench --dataset banking77 --train PATH/train.csv --test PATH/test.csv
  supportbot bench --dataset nlupp --folds-dir ../shared/datasets/nlupp/banking --protocol mid --max-runs 2
  supportbot bench --dataset project
"""


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--dataset", required=True, choices=["banking77", "nlupp", "project"])
    parser.add_argument("--config", default="config.yml", help="the config to benchmark (default: %(default)s)")
    parser.add_argument("--baseline-config", help="default: Rasa's `rasa init` pipeline, "
                        "supportbot/benchmark/baseline_config.yml")
    parser.add_argument("--out", help="output directory (default: results/bench/<dataset>)")
    data = parser.add_argument_group("data")
    data.add_argument("--train", help="banking77: train.csv; project: NLU data (default data/nlu)")
    data.add_argument("--test", help="banking77: score on this CSV instead of a validation split; "
                      "project: held-out file (default tests/nlu/test_nlu.yml)")
    data.add_argument("--domain", help="project: domain file or directory (default domain)")
    data.add_argument("--folds-dir", help="nlupp: directory of fold<i>.json files")
    data.add_argument("--protocol", choices=["low", "mid", "large"], default="mid", help="nlupp (default: mid)")
    data.add_argument("--max-runs", type=int, help="nlupp: only the first N runs of the protocol")
    data.add_argument("--val-fraction", type=float, default=0.1,
                      help="banking77 without --test: stratified validation share (default: %(default)s)")
    data.add_argument("--folds", type=int, help="project: K-fold cross-validation over --train instead of "
                      "scoring on the held-out test file (out-of-sample predictions for every training "
                      "message, e.g. to calibrate fallback thresholds)")
    data.add_argument("--shots", type=int, help="banking77: N training examples per intent")
    data.add_argument("--subset-intents", type=int, help="banking77: N intents drawn with the seed")
    data.add_argument("--max-examples", type=int, help="at most N training examples (per run)")
    data.add_argument("--max-test", type=int, help="at most N test examples (per run)")
    run = parser.add_argument_group("run")
    run.add_argument("--epochs", type=int, help="override DIET/ResponseSelector epochs of --config")
    run.add_argument("--baseline-epochs", type=int, help="shorten the baseline (smoke runs; the report says so)")
    run.add_argument("--seed", type=int, default=42, help="(default: %(default)s)")
    run.add_argument("--http-requests", type=int, default=200,
                     help="sequential POST /model/parse requests to time; 0 skips HTTP (default: %(default)s)")
    return parser


def _path(value: Optional[str]) -> Optional[Path]:
    return Path(value).resolve() if value else None


def load_benchmark(args: argparse.Namespace):
    from supportbot.benchmark import datasets

    if args.folds is not None and args.dataset != "project":
        raise SystemExit("--folds is for --dataset project (NLU++ has its protocols, BANKING77 --val-fraction)")
    if args.dataset == "banking77":
        if not args.train:
            raise SystemExit("--dataset banking77 needs --train PATH/train.csv")
        return datasets.load_banking77(_path(args.train), _path(args.test), args.val_fraction, args.shots,
                                       args.subset_intents, args.max_examples, args.max_test, args.seed)
    if args.dataset == "nlupp":
        if not args.folds_dir:
            raise SystemExit("--dataset nlupp needs --folds-dir PATH (the fold<i>.json files)")
        return datasets.load_nlupp(_path(args.folds_dir), args.protocol, args.max_runs, args.max_examples,
                                   args.max_test, args.seed)
    if args.shots or args.subset_intents or args.max_examples or args.max_test:
        raise SystemExit("--dataset project trains on the whole data directory: no sampling options")
    if args.folds is not None:
        if args.test:
            raise SystemExit("--folds scores on the training data's own folds: no --test")
        if args.folds < 2:
            raise SystemExit("--folds needs at least 2")
        return datasets.load_project_folds(_path(args.train or "data/nlu"), _path(args.domain or "domain"),
                                           args.folds, args.seed)
    return datasets.load_project(_path(args.train or "data/nlu"), _path(args.test or "tests/nlu/test_nlu.yml"),
                                 _path(args.domain or "domain"))


def machine_info() -> dict:
    from importlib.metadata import version

    return {
        "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "rasa": version("rasa"), "load_average": [round(x, 2) for x in os.getloadavg()],
        "niceness": os.nice(0),
        "gpu": "no GPU" if shutil.which("nvidia-smi") is None else "nvidia-smi present (TensorFlow may use a GPU)",
    }


def command_line(args: argparse.Namespace) -> str:
    """The options that differ from the defaults, as a command to paste."""
    defaults = vars(add_arguments(argparse.ArgumentParser()).parse_args(["--dataset", args.dataset]))
    parts = ["supportbot", "bench"]
    for key, default in defaults.items():
        value = getattr(args, key, default)
        if key == "dataset" or value != default:
            parts += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from supportbot.benchmark import report, runner

    started, clock = datetime.datetime.now().isoformat(timespec="seconds"), time.monotonic()
    machine = machine_info()  # now, so that its load average is the one at the start
    out = Path(args.out or f"results/bench/{args.dataset}").resolve()
    runner.progress(f"loading {args.dataset}")
    benchmark = load_benchmark(args)
    baseline = _path(args.baseline_config) or runner.BASELINE_CONFIG
    try:
        result = runner.run_benchmark(benchmark, _path(args.config), baseline, out, args.epochs,
                                      args.baseline_epochs, args.seed, args.http_requests)
    except runner.BenchmarkError as error:
        print(error, file=sys.stderr)
        return 1
    result = {
        "schema_version": 1, "started": started, "command": command_line(args),
        "seed": args.seed, "machine": machine,
        "dataset": {"name": benchmark.name, "multi_label": benchmark.multi_label, "info": benchmark.info},
        **result,
    }
    result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    runner.progress("writing the report and plots")
    plots = report.write_plots(result, out)
    result["duration_seconds"] = time.monotonic() - clock
    result["files"] = {"json": "benchmark.json", "markdown": "benchmark.md", "plots": plots}
    report.write_markdown(result, out / "benchmark.md", plots)
    report.write_json(result, out / "benchmark.json")
    runner.progress(f"done: {out / 'benchmark.md'}")
    summary, ratios = result["results"]["candidate"]["summary"], result["ratios"]
    print(f"accuracy {summary['accuracy']:.3f} (x{report.fmt(ratios['accuracy'], '{:.2f}')} the baseline), "
          f"macro-F1 {summary['macro_f1']:.3f}; report: {out / 'benchmark.md'}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="supportbot bench", description=__doc__))
    return run(parser.parse_args(argv))
