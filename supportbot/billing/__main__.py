"""Command line: `python -m supportbot.billing [--host H] [--port P] [--db URL] [--reset]`.

Creates the tables, seeds the demo data when the database is empty (or after `--reset`, which
drops everything first), then serves the API. Refuses to start without env BILLING_API_KEYS
(docs/billing-service.md#authentication).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from supportbot import logs, settings
from supportbot.billing.auth import ApiKeys, ConfigError
from supportbot.billing.limits import Limits
from supportbot.billing.seed import prepare_database
from supportbot.billing.service import create_app
from supportbot.db import make_engine

logger = logging.getLogger("supportbot.billing")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m supportbot.billing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5056)
    parser.add_argument("--db", default=settings.get("BILLING_DB_URL"),
                        help="SQLAlchemy URL (env BILLING_DB_URL, default %(default)s)")
    parser.add_argument("--reset", action="store_true",
                        help="drop all tables and reseed the demo data before serving")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:  # before touching the database: a misconfigured service changes nothing
        api_keys, limits, json_logs = ApiKeys.from_env(), Limits.from_env(), logs.configure("billing")
    except (ConfigError, ValueError) as exc:
        sys.exit(f"billing service not started: {exc}")
    if not json_logs:
        # Sanic configures its own loggers; ours only needs to say what happened to the data.
        logger.addHandler(logging.StreamHandler())
    logger.setLevel(logging.INFO)
    engine = make_engine(args.db)
    try:
        seeded = prepare_database(engine, reset=args.reset)
    finally:
        engine.dispose()
    logger.info("database ready (%s); serving on http://%s:%s for %r",
                "seeded with demo data" if seeded else "existing data", args.host, args.port,
                api_keys)
    app = create_app(args.db, api_keys=api_keys, limits=limits)
    if json_logs:  # again: the app has just given Sanic's loggers handlers of their own
        logs.configure("billing")
    app.run(host=args.host, port=args.port, access_log=False, motd=False)


if __name__ == "__main__":
    main()
