"""The admin app's accounts, tokens and session cookies (supportbot/admin/accounts.py,
sessions.py): only password hashes are configured, a bad entry stops the app from starting, and
`supportbot run` makes one local designer, once. The app itself: tests/web/test_admin_inbox.py."""
from __future__ import annotations

import pytest

from supportbot.admin import __main__ as admin_main
from supportbot.admin import sessions
from supportbot.admin.accounts import (
    Account,
    Config,
    ConfigError,
    hash_password,
    local_defaults,
    login_hint,
    parse_accounts,
    parse_tokens,
    verify_password,
)
from supportbot.local_secrets import load as load_local_secrets

SECRET = "s" * 32


def test_a_password_is_kept_only_as_a_salted_hash():
    encoded = hash_password("correct horse", iterations=1000)
    assert "correct horse" not in encoded and encoded.startswith("pbkdf2_sha256.1000.")
    assert verify_password("correct horse", encoded) and not verify_password("correct hors", encoded)
    assert hash_password("correct horse", iterations=1000) != encoded  # a new salt each time


@pytest.mark.parametrize("spec, problem", [
    ("dana:designer:plain-password", "must look like pbkdf2_sha256"),
    ("dana:owner:{hash}", "role must be one of designer, agent"),
    ("da na:designer:{hash}", "is not a name"),
    ("dana:designer:{hash},dana:agent:{hash}", "dana is named twice"),
    ("dana:designer:pbkdf2_sha256.10.c2FsdHNhbHQ.aGFzaA", "at least 1000 iterations"),
])
def test_a_bad_account_entry_is_refused_with_what_is_wrong(spec, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_accounts(spec.format(hash=hash_password("pw", 1000)))


def test_tokens_name_their_caller_and_must_be_long():
    tokens = parse_tokens("helpdesk:agent:a-token-of-16-chars")
    assert tokens == {"a-token-of-16-chars": Account("helpdesk", "agent")}
    with pytest.raises(ConfigError, match="16"):
        parse_tokens("helpdesk:agent:short")
    with pytest.raises(ConfigError, match="share one token"):
        parse_tokens("a:agent:a-token-of-16-chars,b:designer:a-token-of-16-chars")


def test_the_app_needs_accounts_and_a_long_secret():
    account = f"dana:designer:{hash_password('pw', 1000)}"
    with pytest.raises(ConfigError, match="no accounts"):
        Config.from_env({"SUPPORTBOT_ADMIN_SECRET": SECRET})
    with pytest.raises(ConfigError, match="SUPPORTBOT_ADMIN_SECRET"):
        Config.from_env({"SUPPORTBOT_ADMIN_ACCOUNTS": account, "SUPPORTBOT_ADMIN_SECRET": "short"})
    config = Config.from_env({"SUPPORTBOT_ADMIN_ACCOUNTS": account, "SUPPORTBOT_ADMIN_SECRET": SECRET,
                              "SUPPORTBOT_ADMIN_API_TOKENS": "bot:agent:a-token-of-16-chars"})
    assert config.accounts["dana"].role == "designer"
    assert config.caller("a-token-of-16-chars") == Account("bot", "agent") and config.caller("nope") is None


def test_the_server_refuses_to_start_without_accounts(monkeypatch):
    for name in ("SUPPORTBOT_ADMIN_ACCOUNTS", "SUPPORTBOT_ADMIN_API_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="admin app not started: SUPPORTBOT_ADMIN_ACCOUNTS holds no accounts"):
        admin_main.main(["--port", "1"])


def test_run_makes_a_local_designer_and_agent_and_keeps_only_their_hashes(tmp_path):
    path = tmp_path / "var" / "secrets.env"
    load_local_secrets(create=True, path=path, environ={})  # the other servers' secrets are there first
    values, password = local_defaults(path, environ={})
    accounts = [entry.split(":") for entry in values["SUPPORTBOT_ADMIN_ACCOUNTS"].split(",")]
    assert [(name, role) for name, role, _ in accounts] == [("designer", "designer"), ("agent", "agent")]
    assert all(verify_password(password, encoded) for _, _, encoded in accounts)
    assert password not in path.read_text() and len(values["SUPPORTBOT_ADMIN_SECRET"]) >= 32
    assert "password" in login_hint(password, environ={}) and password in login_hint(password, environ={})
    again, no_password = local_defaults(path, environ={})
    assert again == values and no_password is None  # the next run logs in with the same account
    assert "shown at the first run" in login_hint(None, environ={})
    assert "RASA_AUTH_TOKEN" in load_local_secrets(create=False, path=path, environ={})  # the others' stay
    assert (path.stat().st_mode & 0o777) == 0o600


def test_accounts_from_the_environment_win_over_the_local_designer(tmp_path):
    environ = {"SUPPORTBOT_ADMIN_ACCOUNTS": f"dana:designer:{hash_password('pw', 1000)}"}
    values, password = local_defaults(tmp_path / "secrets.env", environ=environ)
    assert "SUPPORTBOT_ADMIN_ACCOUNTS" not in values and password is None
    assert login_hint(None, environ=environ) == "log in with an account of SUPPORTBOT_ADMIN_ACCOUNTS"


def test_a_session_cookie_is_signed_and_names_its_purpose():
    account = Account("dana", "designer", hash_password("pw", 1000))
    session = sessions.Session.new(account)
    token = sessions.encode(session, SECRET)
    assert sessions.decode(token, SECRET) == session
    assert sessions.decode(token, "t" * 32) is None  # another secret
    assert sessions.decode(token[:-2] + "xx", SECRET) is None
    assert sessions.decode("not a token", SECRET) is None and sessions.decode(None, SECRET) is None
    assert session.checks(session.csrf) and not session.checks("guess") and not session.checks(None)
    assert sessions.Session.new(account).csrf != session.csrf
