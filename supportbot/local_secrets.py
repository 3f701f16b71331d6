"""The secrets the servers share, for the embedded default (`supportbot run`).

Each is read from the environment when set; otherwise one is generated once and kept in
`var/secrets.env` (mode 0600), so restarts keep working sessions and tokens, and commands
such as `supportbot resume` find the Rasa token. None is ever put on a command line, where
`ps` would show it. What each protects: docs/security.md.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Dict, Mapping, Optional

from supportbot import settings

SECRETS_FILE = Path("var") / "secrets.env"

# name -> what it protects (also the file's comments)
GENERATED = {
    "RASA_AUTH_TOKEN": "Rasa's HTTP API (it can rewrite conversations)",
    "ACTION_SERVER_TOKEN": "the action server: only Rasa may call it",
    "BILLING_API_KEY": "the billing service, as the assistant (refund and dispute limits apply)",
    "BILLING_AGENT_API_KEY": "the billing service, as support staff (may exceed the auto-limits)",
    "SUPPORTBOT_IDENTITY_SECRET": "signing the customer_token a host page gives the widget",
    "SUPPORTBOT_SESSION_SECRET": "binding a socket.io session to the browser that opened it",
    "BILLING_LINK_SECRET": "signing invoice, card-form and account links (the built-in default is public)",
}


# Which server needs which secret: `supportbot run` gives each only these (least privilege).
HELD_BY = {
    "billing": ("BILLING_API_KEYS", "BILLING_LINK_SECRET"),
    "actions": ("ACTION_SERVER_TOKEN", "BILLING_API_KEY", "SUPPORTBOT_IDENTITY_SECRET"),
    "rasa": ("ACTION_SERVER_TOKEN", "SUPPORTBOT_IDENTITY_SECRET", "SUPPORTBOT_SESSION_SECRET"),
    "demo": ("BILLING_API_KEY", "SUPPORTBOT_IDENTITY_SECRET"),
}


def held_by(server: str, values: Mapping[str, str]) -> Dict[str, str]:
    """The secrets of `values` that `server` uses (HELD_BY)."""
    return {name: values[name] for name in HELD_BY[server] if name in values}


def read_file(path: Path) -> Dict[str, str]:
    """The NAME=value lines of a secrets file (none if it does not exist)."""
    values: Dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                values[name.strip()] = value.strip()
    return values


def load(create: bool, path: Path = SECRETS_FILE,
         environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """Every secret in GENERATED: the environment's value, else the file's, else (with
    `create`) a new one written to the file. Without `create`, missing ones are left out."""
    stored = read_file(path)
    missing = [name for name in GENERATED if name not in stored]
    if create and missing:
        for name in missing:
            stored[name] = secrets.token_urlsafe(32)
        _write(path, stored)
    return {name: settings.given(name, environ) or stored[name] for name in GENERATED
            if settings.given(name, environ) or name in stored}


def _write(path: Path, values: Dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {GENERATED.get(name, '')}\n{name}={value}" for name, value in values.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def billing_api_keys(values: Mapping[str, str]) -> str:
    """BILLING_API_KEYS for the billing service: the assistant's key and the agents' key."""
    return f"assistant:assistant:{values['BILLING_API_KEY']},agents:agent:{values['BILLING_AGENT_API_KEY']}"
