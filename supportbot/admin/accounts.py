"""Who may use the admin app: people with a password (SUPPORTBOT_ADMIN_ACCOUNTS) and programs with
a bearer token (SUPPORTBOT_ADMIN_API_TOKENS), each with a role.

    SUPPORTBOT_ADMIN_ACCOUNTS="dana:designer:pbkdf2_sha256.600000.<salt>.<hash>,sam:agent:..."
    SUPPORTBOT_ADMIN_API_TOKENS="helpdesk:agent:<token of 16+ characters>"

Only password hashes are configured (PBKDF2-HMAC-SHA256, hashlib): make an entry with
`python -m supportbot.admin.accounts NAME ROLE` (it asks for the password). Roles: `designer`
reviews what the assistant learns (the NLU inbox); `agent` corrects a conversation's intent and,
later, takes handed-off chats. `supportbot run` without accounts makes one local designer and
keeps its hash in var/secrets.env (`local_defaults`), printing the password once.
"""
from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from supportbot import settings
from supportbot.local_secrets import SECRETS_FILE
from supportbot.local_secrets import read_file as read_secrets_file

ROLES = ("designer", "agent")
SCHEME = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's figure for PBKDF2-HMAC-SHA256 (2023)
MIN_ITERATIONS = 1_000  # tests make cheap hashes; a configured hash below this is refused
MIN_TOKEN_LENGTH = 16
MIN_SECRET_LENGTH = 32
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
TOKEN_RE = re.compile(r"^[\x21-\x2b\x2d-\x7e]+$")  # visible ASCII except the comma
LOCAL_DESIGNER = "designer"
# `supportbot run`'s local accounts: name -> role, one password for both (printed once).
LOCAL_ACCOUNTS = {LOCAL_DESIGNER: "designer", "agent": "agent"}


class ConfigError(ValueError):
    """Accounts, tokens or the session secret are missing or malformed: the app must not start."""


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str = ""  # empty for a token's caller

    @property
    def version(self) -> str:
        """Changes with the password: a session signed for the old one ends."""
        return hashlib.sha256(self.password_hash.encode("utf-8")).hexdigest()[:16]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, iterations: int = ITERATIONS, salt: Optional[bytes] = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{SCHEME}.{iterations}.{_b64(salt)}.{_b64(digest)}"


def _parse_hash(encoded: str) -> Tuple[int, bytes, bytes]:
    parts = encoded.split(".")
    if len(parts) != 4 or parts[0] != SCHEME or not parts[1].isdigit():
        raise ConfigError(f"a password hash must look like {SCHEME}.<iterations>.<salt>.<hash> "
                          "(python -m supportbot.admin.accounts)")
    iterations = int(parts[1])
    if iterations < MIN_ITERATIONS:
        raise ConfigError(f"a password hash needs at least {MIN_ITERATIONS} iterations")
    try:
        salt, digest = _unb64(parts[2]), _unb64(parts[3])
    except ValueError:
        raise ConfigError("a password hash's salt or hash is not base64") from None
    if len(salt) < 8 or len(digest) != 32:
        raise ConfigError("a password hash needs a salt of 8+ bytes and a 32-byte SHA-256 hash")
    return iterations, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    iterations, salt, digest = _parse_hash(encoded)
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(candidate, digest)


def _entries(spec: str, variable: str) -> List[Tuple[str, str, str]]:
    entries = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        name, _, rest = entry.partition(":")
        role, _, secret = rest.partition(":")
        if not NAME_RE.match(name):
            raise ConfigError(f"{variable}: {name[:64]!r} is not a name (letters, digits, _ . @ -)")
        if role not in ROLES:
            raise ConfigError(f"{variable}: {name}'s role must be one of {', '.join(ROLES)}, not {role!r}")
        if any(name == seen for seen, _, _ in entries):
            raise ConfigError(f"{variable}: {name} is named twice")
        entries.append((name, role, secret))
    return entries


def parse_accounts(spec: str) -> Dict[str, Account]:
    accounts = {}
    for name, role, encoded in _entries(spec, "SUPPORTBOT_ADMIN_ACCOUNTS"):
        try:
            _parse_hash(encoded)
        except ConfigError as error:
            raise ConfigError(f"SUPPORTBOT_ADMIN_ACCOUNTS: {name}: {error}") from None
        accounts[name] = Account(name, role, encoded)
    return accounts


def parse_tokens(spec: str) -> Dict[str, Account]:
    """token → its caller."""
    tokens: Dict[str, Account] = {}
    for name, role, token in _entries(spec, "SUPPORTBOT_ADMIN_API_TOKENS"):
        if len(token) < MIN_TOKEN_LENGTH or not TOKEN_RE.match(token):
            raise ConfigError(f"SUPPORTBOT_ADMIN_API_TOKENS: {name}'s token must be {MIN_TOKEN_LENGTH}+ "
                              "visible characters without commas")
        if token in tokens:
            raise ConfigError("SUPPORTBOT_ADMIN_API_TOKENS: two callers share one token")
        tokens[token] = Account(name, role)
    return tokens


@dataclass(frozen=True)
class Config:
    accounts: Dict[str, Account]
    tokens: Dict[str, Account]
    secret: str

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> Config:
        accounts = parse_accounts(settings.get("SUPPORTBOT_ADMIN_ACCOUNTS", environ) or "")
        tokens = parse_tokens(settings.get("SUPPORTBOT_ADMIN_API_TOKENS", environ) or "")
        if not accounts and not tokens:
            raise ConfigError("SUPPORTBOT_ADMIN_ACCOUNTS holds no accounts (python -m supportbot.admin.accounts)")
        secret = settings.get("SUPPORTBOT_ADMIN_SECRET", environ) or ""
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"SUPPORTBOT_ADMIN_SECRET must be set, {MIN_SECRET_LENGTH}+ characters")
        return cls(accounts, tokens, secret)

    def caller(self, token: str) -> Optional[Account]:
        """The caller holding `token`, compared with each in constant time."""
        found = None
        for known, account in self.tokens.items():
            if hmac.compare_digest(known.encode("utf-8"), token.encode("utf-8")):
                found = account
        return found


# What `supportbot run` keeps in var/secrets.env for the admin app, with the comment written above it.
LOCAL = {
    "SUPPORTBOT_ADMIN_SECRET": "signing the admin app's session cookies",
    "SUPPORTBOT_ADMIN_ACCOUNTS": "the admin app's local designer and agent (password hashes; the password was "
                                 "printed once)",
}


def local_defaults(path: Path = SECRETS_FILE,
                   environ: Optional[Mapping[str, str]] = None) -> Tuple[Dict[str, str], Optional[str]]:
    """The admin settings the environment lacks, from `path` or made there once; and the local
    designer's password when it was just made (shown once: only its hash is kept)."""
    stored = read_secrets_file(path)
    values, new, password = {}, {}, None
    for name in LOCAL:
        if settings.given(name, environ):
            continue
        if not stored.get(name):
            if name == "SUPPORTBOT_ADMIN_SECRET":
                new[name] = secrets.token_urlsafe(32)
            else:
                password = secrets.token_urlsafe(12)
                new[name] = ",".join(f"{account}:{role}:{hash_password(password)}"
                                     for account, role in LOCAL_ACCOUNTS.items())
        values[name] = stored.get(name) or new[name]
    if new:
        _append(path, new)
    return values, password


def login_hint(password: Optional[str], environ: Optional[Mapping[str, str]] = None) -> str:
    """How to log in to the admin app that `supportbot run` started, for its banner."""
    if settings.given("SUPPORTBOT_ADMIN_ACCOUNTS", environ):
        return "log in with an account of SUPPORTBOT_ADMIN_ACCOUNTS"
    if password:
        return (f"log in as {LOCAL_DESIGNER} (designer page) or agent (agent inbox), password {password} "
                f"(shown this once: only its hash is kept, in {SECRETS_FILE})")
    return (f"log in as {LOCAL_DESIGNER} or agent with the password shown at the first run; for a new one, "
            f"delete SUPPORTBOT_ADMIN_ACCOUNTS from {SECRETS_FILE} and run again")


def _append(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write("".join(f"# {LOCAL[name]}\n{name}={value}\n" for name, value in values.items()))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m supportbot.admin.accounts",
        description="Print a SUPPORTBOT_ADMIN_ACCOUNTS entry: the name, the role and a hash of the password.")
    parser.add_argument("name")
    parser.add_argument("role", choices=ROLES)
    args = parser.parse_args(argv)
    if not NAME_RE.match(args.name):
        print(f"{args.name!r} is not a name (letters, digits, _ . @ -, at most 64)", file=sys.stderr)
        return 2
    password = getpass.getpass(f"Password for {args.name}: ")
    if len(password) < 10:
        print("Choose a password of at least 10 characters.", file=sys.stderr)
        return 2
    if getpass.getpass("Again: ") != password:
        print("The two passwords differ.", file=sys.stderr)
        return 2
    print(f"{args.name}:{args.role}:{hash_password(password)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
