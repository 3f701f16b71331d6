"""`python -m supportbot.public_data import|report`: see supportbot/public_data/__init__.py."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from supportbot.public_data import importer
from supportbot.public_data.mapping import DEFAULT_MAPPING, domain_intents, load_mapping, unknown_targets


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m supportbot.public_data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser("import", help="write data/nlu/public/<source>.yml from the training pool")
    rep = commands.add_parser("report", help="score a model on the validation slice (no gate)")
    for sub in (imp, rep):
        sub.add_argument("--datasets", type=Path, required=True, help="folder holding banking77/, clinc150/")
        sub.add_argument("--mapping", type=Path, default=DEFAULT_MAPPING)
    imp.add_argument("--out", type=Path, default=importer.DEFAULT_OUT)
    imp.add_argument("--per-intent", type=int, default=importer.PER_INTENT)
    imp.add_argument("--out-of-scope", type=int, default=importer.OUT_OF_SCOPE_TOTAL)
    imp.add_argument("--seed", type=int, default=importer.SEED)
    rep.add_argument("--model", type=Path, required=True)
    rep.add_argument("--out", type=Path, default=Path("results/nlu/external"))
    args = parser.parse_args(argv)

    mapping = load_mapping(args.mapping)
    if args.command == "import":
        unknown = unknown_targets(mapping, domain_intents())
        if unknown:
            print(f"{args.mapping}: not intents of the domain: {', '.join(unknown)}", file=sys.stderr)
            return 1
        summary = importer.import_public_data(args.datasets, mapping, args.out, per_intent=args.per_intent,
                                              out_of_scope=args.out_of_scope, seed=args.seed)
        for source, counts in summary.items():
            print(f"{args.out / (source + '.yml')}: {sum(counts.values())} examples "
                  f"({', '.join(f'{k} {v}' for k, v in counts.items())})")
        return 0
    from supportbot.public_data.report import run_report

    run_report(args.model, args.datasets, mapping, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
