"""`rasa run` with its secrets and limits taken from the environment.

`python -m supportbot.rasa_run run --model ... --enable-api` is `rasa run ...` plus:
- `--auth-token` from RASA_AUTH_TOKEN, so the token never appears on a command line (`ps`);
- `--cors` limited to the configured store origins (SUPPORTBOT_ALLOWED_ORIGINS), never `*`;
- a 1 MB cap on any request body (Sanic's default is 100 MB), SANIC_REQUEST_MAX_SIZE to change;
- card numbers masked in every log line (supportbot.redact.install_log_masking);
- with SUPPORTBOT_LOG_FORMAT=json, JSON log lines (supportbot.logs) instead of Rasa's colored
  console ones. The channels (supportbot.channels) add `/metrics` to the server;
- a tracker database outage reaches the channels, which tell the customer, instead of Rasa's
  silent in-memory stand-in (supportbot.tracker_store.install_outage_handling).
"""
from __future__ import annotations

import logging
import os
import sys
from typing import List, Optional

from supportbot import logs, settings
from supportbot.redact import install_log_masking

REQUEST_MAX_SIZE = 1024 * 1024


def rasa_arguments(argv: List[str], environ: Optional[dict] = None) -> List[str]:
    if "--auth-token" in argv or "--cors" in argv:
        raise SystemExit("Pass the token in RASA_AUTH_TOKEN and origins in SUPPORTBOT_ALLOWED_ORIGINS, "
                         "not on the command line.")
    from supportbot.channels import allowed_origins  # imports Rasa: after the logs are set up

    extra = ["--cors", *allowed_origins(environ)]
    token = settings.get("RASA_AUTH_TOKEN", environ)
    if token:
        extra += ["--auth-token", token]
    return argv + extra


def main() -> None:
    install_log_masking()
    try:
        json_logs = logs.configure("rasa")
    except ValueError as error:
        raise SystemExit(str(error)) from None
    sys.argv = ["rasa", *rasa_arguments(sys.argv[1:])]
    os.environ.setdefault("SANIC_REQUEST_MAX_SIZE", str(REQUEST_MAX_SIZE))
    if json_logs:
        import rasa.utils.io

        # Rasa would replace our handler on the root logger with its colored console one.
        rasa.utils.io.configure_colored_logging = _log_level_only
    from rasa.__main__ import main as rasa_main

    from supportbot.tracker_store import install_outage_handling

    install_outage_handling()
    rasa_main()


def _log_level_only(loglevel: Optional[str]) -> None:
    """What Rasa's configure_colored_logging does to levels, without its handler."""
    # Rasa has set its own logger's level (--debug, --quiet, LOG_LEVEL) by then.
    logging.getLogger().setLevel(loglevel or logging.getLogger("rasa").getEffectiveLevel())


if __name__ == "__main__":
    main()
