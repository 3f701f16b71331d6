"""`supportbot run --profile NAME`: the assistant as profiles/NAME/ describes it.

A profile is configuration only: `profile.yml` (how many Rasa instances and action servers,
their ports, the databases), `endpoints.yml` and `credentials.yml` for Rasa (every `${VAR}` in
them is set here, from SUPPORTBOT_POSTGRES_URL, SUPPORTBOT_REDIS_URL and SUPPORTBOT_RABBITMQ_URL)
and `nginx.conf.template`, the load balancer in front of the instances. The code that runs is
the same as `supportbot run`'s (docs/deploy.md).
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Dict, List, Mapping
from urllib.parse import quote, urlencode, urlsplit

import sqlalchemy
import yaml
from sqlalchemy.engine import make_url

from supportbot import local_secrets, processes, settings

PROFILES = Path("profiles")
NGINX = ("/usr/sbin/nginx", "nginx")


class ProfileError(ValueError):
    """A profile that does not exist or cannot be read; the message says what to fix."""


@dataclass
class Profile:
    name: str
    directory: Path
    rasa_instances: int
    action_servers: int
    ports: Dict[str, int]
    databases: Dict[str, str]
    rabbitmq_queue: str
    raw: Dict[str, Any] = field(default_factory=dict)

    def port_range(self, first: str, count: int) -> List[int]:
        return [self.ports[first] + i for i in range(count)]

    @property
    def rasa_ports(self) -> List[int]:
        return self.port_range("rasa", self.rasa_instances)

    @property
    def action_ports(self) -> List[int]:
        return self.port_range("action_servers", self.action_servers)


PORTS = ("public", "actions", "rasa", "action_servers", "billing", "demo", "admin")
DATABASES = ("tracker", "SUPPORTBOT_DB_URL", "BILLING_DB_URL")


def load(name: str, root: Path) -> Profile:
    directory = root / PROFILES / name
    path = directory / "profile.yml"
    if not path.is_file():
        known = sorted(p.name for p in (root / PROFILES).glob("*") if (p / "profile.yml").is_file())
        raise ProfileError(f"No profile {name!r} (no {path}); profiles: {', '.join(known) or 'none'}.")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        profile = Profile(name, directory, int(raw["rasa_instances"]), int(raw["action_servers"]),
                          {k: int(raw["ports"][k]) for k in PORTS},
                          {k: str(raw["databases"][k]) for k in DATABASES}, str(raw["rabbitmq_queue"]), raw)
    except (KeyError, TypeError, ValueError) as error:
        raise ProfileError(f"{path}: needs rasa_instances, action_servers, ports ({', '.join(PORTS)}), "
                           f"databases ({', '.join(DATABASES)}) and rabbitmq_queue: {error!r}") from None
    if profile.rasa_instances < 1 or profile.action_servers < 1:
        raise ProfileError(f"{path}: rasa_instances and action_servers must be at least 1.")
    for needed in ("endpoints.yml", "credentials.yml", "nginx.conf.template"):
        if not (directory / needed).is_file():
            raise ProfileError(f"Profile {name!r} lacks {directory / needed}.")
    return profile


def database_url(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


def ensure_database(server_url: str, database: str) -> None:
    """Create `database` on the Postgres server of `server_url` (logging in to its database)."""
    engine = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                        {"name": database}).scalar()
            if not exists:
                quoted = connection.dialect.identifier_preparer.quote(database)
                connection.execute(sqlalchemy.text(f"CREATE DATABASE {quoted}"))
    finally:
        engine.dispose()


def endpoint_variables(profile: Profile, postgres_url: str, redis_url: str, rabbitmq_url: str) -> Dict[str, str]:
    """Every ${VAR} of the profile's endpoints.yml and credentials.yml."""
    postgres, rabbitmq = make_url(postgres_url), urlsplit(rabbitmq_url)
    return {
        "ACTION_SERVER_URL": f"http://127.0.0.1:{profile.ports['actions']}/webhook",
        "TRACKER_DB_HOST": postgres.host or "127.0.0.1", "TRACKER_DB_PORT": str(postgres.port or 5432),
        "TRACKER_DB_USER": postgres.username or "postgres", "TRACKER_DB_PASSWORD": postgres.password or "",
        "TRACKER_DB_NAME": profile.databases["tracker"], "TRACKER_DB_LOGIN_DB": postgres.database or "postgres",
        "REDIS_URL": redis_url,
        "RABBITMQ_HOST": rabbitmq.hostname or "127.0.0.1", "RABBITMQ_PORT": str(rabbitmq.port or 5672),
        "RABBITMQ_USER": rabbitmq.username or "guest", "RABBITMQ_PASSWORD": rabbitmq.password or "guest",
        "RABBITMQ_QUEUE": profile.rabbitmq_queue,
    }


def events_url(profile: Profile, rabbitmq_url: str) -> str:
    """Where the learning collector reads Rasa's events: the profile's RabbitMQ queue."""
    return f"{rabbitmq_url.split('?')[0]}?{urlencode({'queue': profile.rabbitmq_queue}, quote_via=quote)}"


def nginx_config(profile: Profile, prefix: Path) -> Path:
    """var/<profile>/nginx.conf from the profile's template."""
    for directory in ("logs", "nginx-tmp"):
        (prefix / directory).mkdir(parents=True, exist_ok=True)
    source = profile.directory / "nginx.conf.template"
    try:
        text = Template(source.read_text(encoding="utf-8")).substitute(
            prefix=str(prefix.resolve()), public_port=profile.ports["public"],
            actions_port=profile.ports["actions"],
            rasa_servers="\n".join(f"        server 127.0.0.1:{port};" for port in profile.rasa_ports),
            action_servers="\n".join(f"        server 127.0.0.1:{port};" for port in profile.action_ports))
    except (KeyError, ValueError) as error:  # an unknown or malformed placeholder
        raise ProfileError(f"{source}: {error!r}; write nginx's own variables as $$name.") from None
    path = prefix / "nginx.conf"
    path.write_text(text, encoding="utf-8")
    return path


def nginx_binary() -> str:
    for candidate in NGINX:
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    raise ProfileError("nginx is not installed: `make nginx` (scripts/install-nginx.sh) installs it.")


def nginx_server(profile: Profile, prefix: Path) -> processes.ServerProcess:
    config = nginx_config(profile, prefix)
    command = [nginx_binary(), "-p", str(prefix.resolve()), "-c", str(config.resolve()), "-g", "daemon off;"]
    return processes.ServerProcess("nginx", command, f"http://127.0.0.1:{profile.ports['public']}/nginx-health",
                                   prefix / "logs" / "nginx.log")


def servers(profile: Profile, model: Path, root: Path, secrets: Mapping[str, str],
            admin_env: Mapping[str, str]) -> List[processes.ServerProcess]:
    """Every process of the profile, in start order: billing, the action servers, the Rasa
    instances, nginx, the demo store, the admin app and the learning collector."""
    postgres, redis_url, rabbitmq = (settings.get(name) for name in (
        "SUPPORTBOT_POSTGRES_URL", "SUPPORTBOT_REDIS_URL", "SUPPORTBOT_RABBITMQ_URL"))
    for variable in ("SUPPORTBOT_DB_URL", "BILLING_DB_URL"):
        ensure_database(postgres, profile.databases[variable])
    prefix = root / "var" / profile.name
    logs = prefix / "logs"
    public = f"http://127.0.0.1:{profile.ports['public']}"
    billing_url = f"http://127.0.0.1:{profile.ports['billing']}"
    demo_origin = f"http://127.0.0.1:{profile.ports['demo']}"
    env = {
        "BILLING_URL": billing_url, "RASA_TELEMETRY_ENABLED": "false",
        "SUPPORTBOT_DB_URL": database_url(postgres, profile.databases["SUPPORTBOT_DB_URL"]),
        "SUPPORTBOT_ALLOWED_ORIGINS": settings.given("SUPPORTBOT_ALLOWED_ORIGINS") or demo_origin,
        **endpoint_variables(profile, postgres, redis_url, rabbitmq),
    }

    def env_of(server: str) -> Dict[str, str]:
        return {**env, **local_secrets.held_by(server, secrets)}

    billing_db = database_url(postgres, profile.databases["BILLING_DB_URL"])
    result = [processes.billing_server(profile.ports["billing"], billing_db, logs, env_of("billing"))]
    result += [processes.action_server(port, logs / f"actions-{i}", env_of("actions"), root)
               for i, port in enumerate(profile.action_ports, 1)]
    result += [processes.rasa_server(port, model, profile.directory / "endpoints.yml",
                                     profile.directory / "credentials.yml", logs / f"rasa-{i}",
                                     secrets["RASA_AUTH_TOKEN"], env_of("rasa"), root)
               for i, port in enumerate(profile.rasa_ports, 1)]
    result += [
        nginx_server(profile, prefix),
        processes.demo_server(profile.ports["demo"], public, billing_url, logs, env_of("demo"), root),
        processes.admin_server(profile.ports["admin"], logs,
                               {**env, **admin_env, "RASA_URL": public,
                                "RASA_AUTH_TOKEN": secrets["RASA_AUTH_TOKEN"]}, root),
        processes.collector(logs, {**env, "SUPPORTBOT_EVENTS_DB_URL": events_url(profile, rabbitmq)}, root),
    ]
    return result


BANNER = """
The assistant is running, profile {name}: {instances} Rasa instances and {actions} action servers behind nginx.
  Web chat, REST, Rasa's API:  {public}   (socket.io sticky per client address, the rest round-robin)
                               curl -s -X POST {public}/webhooks/rest/webhook \\
                                 -H 'Content-Type: application/json' \\
                                 -d '{{"sender": "me", "message": "where is my order 4817263"}}'
  Rasa instances:              {rasa}
  Action servers (nginx):      {actions_url}  ->  {action_servers}
  Demo store with chat:        {demo}
  Designer page, agent inbox:  {admin}/inbox, {admin}/agents   ({admin_login})
  Billing service:             {billing}/openapi.yaml
  Stores:                      Postgres {postgres} (databases {databases}), Redis {redis}, RabbitMQ queue {queue}
Logs are in var/{name}/logs/. Press Ctrl-C to stop.
"""


def banner(profile: Profile, admin_login: str) -> str:
    ports = profile.ports
    return BANNER.format(
        name=profile.name, instances=profile.rasa_instances, actions=profile.action_servers,
        public=f"http://127.0.0.1:{ports['public']}",
        rasa=", ".join(f"http://127.0.0.1:{p}" for p in profile.rasa_ports),
        actions_url=f"http://127.0.0.1:{ports['actions']}",
        action_servers=", ".join(f"127.0.0.1:{p}" for p in profile.action_ports),
        demo=f"http://127.0.0.1:{ports['demo']}", admin=f"http://127.0.0.1:{ports['admin']}",
        admin_login=admin_login, billing=f"http://127.0.0.1:{ports['billing']}",
        postgres=_without_password(settings.get("SUPPORTBOT_POSTGRES_URL")),
        databases=", ".join(profile.databases.values()),
        redis=re.sub(r"//[^@/]*@", "//***@", settings.get("SUPPORTBOT_REDIS_URL")),
        queue=profile.rabbitmq_queue)


def _without_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
