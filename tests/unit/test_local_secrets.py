"""The embedded default's secrets (supportbot/local_secrets.py): made once, kept private,
overridden by the environment, and each server given only its own."""
from __future__ import annotations

import stat

from supportbot import local_secrets


def test_secrets_are_made_once_and_kept_private(tmp_path):
    path = tmp_path / "var" / "secrets.env"
    first = local_secrets.load(create=True, path=path, environ={})
    assert set(first) == set(local_secrets.GENERATED) and len(set(first.values())) == len(first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_secrets.load(create=True, path=path, environ={}) == first  # a restart keeps them
    assert local_secrets.load(create=False, path=tmp_path / "none.env", environ={}) == {}


def test_the_environment_wins(tmp_path):
    values = local_secrets.load(create=True, path=tmp_path / "s.env", environ={"RASA_AUTH_TOKEN": "mine"})
    assert values["RASA_AUTH_TOKEN"] == "mine"
    assert "mine" not in (tmp_path / "s.env").read_text()


def test_each_server_gets_only_its_secrets(tmp_path):
    values = local_secrets.load(create=True, path=tmp_path / "s.env", environ={})
    values["BILLING_API_KEYS"] = local_secrets.billing_api_keys(values)
    billing = local_secrets.held_by("billing", values)
    assert set(billing) == {"BILLING_API_KEYS", "BILLING_LINK_SECRET"}
    assert values["BILLING_API_KEY"] in billing["BILLING_API_KEYS"]
    for server in ("actions", "rasa", "demo"):
        assert "BILLING_API_KEYS" not in local_secrets.held_by(server, values)
        assert "RASA_AUTH_TOKEN" not in local_secrets.held_by(server, values)
