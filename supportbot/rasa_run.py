"""`rasa run` with its secrets and limits taken from the environment.

`python -m supportbot.rasa_run run --model ... --enable-api` is `rasa run ...` plus:
- `--auth-token` from RASA_AUTH_TOKEN, so the token never appears on a command line (`ps`);
- `--cors` limited to the configured store origins (SUPPORTBOT_ALLOWED_ORIGINS), never `*`;
- a 1 MB cap on any request body (Sanic's default is 100 MB), SANIC_REQUEST_MAX_SIZE to change;
- card numbers masked in every log line (supportbot.redact.install_log_masking).
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional

from supportbot import settings
from supportbot.channels import allowed_origins
from supportbot.redact import install_log_masking

REQUEST_MAX_SIZE = 1024 * 1024


def rasa_arguments(argv: List[str], environ: Optional[dict] = None) -> List[str]:
    if "--auth-token" in argv or "--cors" in argv:
        raise SystemExit("Pass the token in RASA_AUTH_TOKEN and origins in SUPPORTBOT_ALLOWED_ORIGINS, "
                         "not on the command line.")
    extra = ["--cors", *allowed_origins(environ)]
    token = settings.get("RASA_AUTH_TOKEN", environ)
    if token:
        extra += ["--auth-token", token]
    return argv + extra


def main() -> None:
    sys.argv = ["rasa", *rasa_arguments(sys.argv[1:])]
    os.environ.setdefault("SANIC_REQUEST_MAX_SIZE", str(REQUEST_MAX_SIZE))
    install_log_masking()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
