"""Choosing the ticketing adapter from the environment."""
from __future__ import annotations

import pytest

from supportbot.ticketing import ticketing_from_env
from supportbot.ticketing.rt import RtTicketing
from supportbot.ticketing.sql import SqlTicketing
from supportbot.ticketing.zendesk import ZendeskTicketing


def test_sqlite_is_the_default_on_the_assistants_database(db_url, tmp_path):
    adapter = ticketing_from_env({"SUPPORTBOT_DB_URL": db_url})
    assert isinstance(adapter, SqlTicketing) and adapter.db_url == db_url
    own = f"sqlite:///{tmp_path / 'tickets.db'}"
    assert own != db_url  # else the next line could not tell the two settings apart
    assert ticketing_from_env({"SUPPORTBOT_DB_URL": db_url, "SUPPORTBOT_TICKETING_DB_URL": own}).db_url == own


def test_rt_and_zendesk_come_from_their_variables(db_url):
    rt = ticketing_from_env({"SUPPORTBOT_TICKETING": "rt", "RT_URL": "http://rt.example:8080/",
                             "RT_PASSWORD": "pw", "RT_TIMEOUT": "2.5", "SUPPORTBOT_DB_URL": db_url})
    assert isinstance(rt, RtTicketing) and rt.api.base_url == "http://rt.example:8080/REST/2.0"
    assert rt.api.timeout == 2.5 and rt.api.session.auth == ("root", "pw") and rt.queue == "General"
    zendesk = ticketing_from_env({"SUPPORTBOT_TICKETING": "Zendesk", "ZENDESK_URL": "https://acme.zendesk.com",
                                  "ZENDESK_EMAIL": "bot@acme.com", "ZENDESK_API_TOKEN": "t",
                                  "SUPPORTBOT_DB_URL": db_url})
    assert isinstance(zendesk, ZendeskTicketing) and zendesk.api.session.auth == ("bot@acme.com/token", "t")


@pytest.mark.parametrize("env, missing", [
    ({"SUPPORTBOT_TICKETING": "jira"}, "expected one of sqlite, rt, zendesk"),
    ({"SUPPORTBOT_TICKETING": "rt"}, "RT_PASSWORD"),
    ({"SUPPORTBOT_TICKETING": "zendesk", "ZENDESK_URL": "https://x"}, "ZENDESK_EMAIL"),
])
def test_bad_configuration_says_what_is_wrong(env, missing, db_url):
    with pytest.raises(ValueError, match=missing):
        ticketing_from_env({**env, "SUPPORTBOT_DB_URL": db_url})
