"""The production profile (profiles/production, supportbot/profile.py): configuration only, every
${VAR} its Rasa files use is set, its ports leave the embedded profile's alone, and the nginx
config it generates is valid, sticky for socket.io and round-robin for the rest."""
from __future__ import annotations

import re
import subprocess

import pytest
from rasa.utils.endpoints import read_endpoint_config

from supportbot import profile as profiles

EMBEDDED_PORTS = {5005, 5055, 5056, 5057, 5058}
VARIABLE = re.compile(r"\$\{([A-Z_]+)\}")


@pytest.fixture
def production(repo):
    return profiles.load("production", repo)


def test_production_runs_two_of_each_on_ports_of_its_own(production):
    assert (production.rasa_instances, production.action_servers) == (2, 2)
    single = [port for name, port in production.ports.items() if name not in ("rasa", "action_servers")]
    ports = [*single, *production.rasa_ports, *production.action_ports]
    assert len(set(ports)) == len(ports) and not EMBEDDED_PORTS & set(ports)


def test_every_variable_of_its_rasa_files_is_set(production, monkeypatch):
    variables = profiles.endpoint_variables(production, "postgresql://bot:pw@db.internal:5433/postgres",
                                            "redis://cache:6380/2", "amqp://u:p@mq:5673/")
    used = {name for file in ("endpoints.yml", "credentials.yml")
            for line in (production.directory / file).read_text().splitlines() if not line.lstrip().startswith("#")
            for name in VARIABLE.findall(line)}
    assert used - {"ACTION_SERVER_TOKEN"} == set(variables)  # the token comes from var/secrets.env
    for name, value in {**variables, "ACTION_SERVER_TOKEN": "t"}.items():
        monkeypatch.setenv(name, value)
    endpoints = str(production.directory / "endpoints.yml")
    tracker = read_endpoint_config(endpoints, "tracker_store")
    assert (tracker.url, tracker.kwargs["port"], tracker.kwargs["username"], tracker.kwargs["password"]) == (
        "db.internal", "5433", "bot", "pw")
    assert (tracker.kwargs["db"], tracker.kwargs["login_db"]) == ("supportbot_tracker", "postgres")
    lock = read_endpoint_config(endpoints, "lock_store")
    assert (lock.type, lock.url) == ("supportbot.lock_store.AtomicRedisLockStore", "redis://cache:6380/2")
    broker = read_endpoint_config(endpoints, "event_broker")
    assert (broker.type, broker.url, broker.kwargs["port"], broker.kwargs["queues"]) == (
        "pika", "mq", "5673", ["supportbot_events"])
    assert read_endpoint_config(endpoints, "action_endpoint").url == "http://127.0.0.1:8055/webhook"
    assert profiles.events_url(production, "amqp://u:p@mq:5673/") == "amqp://u:p@mq:5673/?queue=supportbot_events"


def test_an_unknown_profile_names_the_known_ones(repo):
    with pytest.raises(profiles.ProfileError, match="No profile 'staging'.*profiles: production"):
        profiles.load("staging", repo)


@pytest.fixture
def nginx() -> str:
    """nginx from Debian (`make nginx`, which `make test` runs first)."""
    try:
        return profiles.nginx_binary()
    except profiles.ProfileError as error:
        pytest.fail(str(error))


def test_nginx_config_is_sticky_for_socketio_and_round_robin_for_rest(production, tmp_path):
    config = profiles.nginx_config(production, tmp_path)
    text = config.read_text()
    sticky, rest = (re.search(r"upstream " + name + r" \{(.*?)\}", text, re.S).group(1)
                    for name in ("rasa_sticky", "rasa"))
    assert "ip_hash;" in sticky and "ip_hash" not in rest
    for port in production.rasa_ports:
        assert f"server 127.0.0.1:{port};" in sticky and f"server 127.0.0.1:{port};" in rest
    assert re.search(r"location /socket\.io/ \{\s*proxy_pass http://rasa_sticky;", text)
    assert "$http_upgrade" in text and "$$" not in text


def test_nginx_accepts_the_generated_config(production, tmp_path, nginx):
    config = profiles.nginx_config(production, tmp_path)
    checked = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(config)],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
