"""Command line: `python -m supportbot.admin [--host H] [--port P] [--db URL]`.

Refuses to start without accounts and a session secret (SUPPORTBOT_ADMIN_ACCOUNTS and
SUPPORTBOT_ADMIN_SECRET; `supportbot run` makes local ones). The intents a message may be given
are read from domain/ and data/ in the working directory when it starts.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from supportbot import settings
from supportbot.admin.accounts import Config, ConfigError
from supportbot.admin.app import create_app
from supportbot.handoff import routing
from supportbot.learning.labels import known_labels


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m supportbot.admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.integer("SUPPORTBOT_ADMIN_PORT"))
    parser.add_argument("--db", default=settings.get("SUPPORTBOT_LEARNING_DB_URL"),
                        help="the learning store (default SUPPORTBOT_LEARNING_DB_URL)")
    args = parser.parse_args(argv)
    # Sanic logs requests and errors itself; ours says who logged in and what failed.
    logger = logging.getLogger("supportbot.admin")
    logger.addHandler(logging.StreamHandler())
    logger.setLevel(logging.INFO)
    try:
        config = Config.from_env()
    except ConfigError as error:
        sys.exit(f"admin app not started: {error}")
    labels = known_labels()
    if not labels:
        sys.exit("admin app not started: no intents in domain/ (run it from the project's folder)")
    try:  # the agent inbox's teams
        routing.from_env()
    except routing.RoutingError as error:
        sys.exit(f"admin app not started: {error}")
    app = create_app(config, args.db, labels)
    print(f"Admin app on http://{args.host}:{args.port} ({len(config.accounts)} accounts)", flush=True)
    app.run(host=args.host, port=args.port, access_log=False, motd=False)


if __name__ == "__main__":
    main()
