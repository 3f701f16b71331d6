"""A private Request Tracker 5 for the tests: its own SQLite database (made by
rt-setup-database), its own site config, on a free port, started with Debian's rt-server.

Nothing is shared with an RT the machine may already run: RT_SITE_CONFIG and RT_SITE_CONFIG_DIR
point RT at a config in a temporary directory instead of /etc/request-tracker5.
"""
from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterable, Iterator

from supportbot import processes

RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_SETUP_DATABASE = Path("/usr/sbin/rt-setup-database-5")
USER, PASSWORD = "root", "password"  # what RT's initial data gives a fresh install
ROOT_NAME = "Enoch Root"  # root's RealName in RT's initial data: the name on its replies
RT_MAILGATE = Path("/usr/bin/rt-mailgate-5")
SITES: Dict[str, Path] = {}  # base URL -> the directory of its site config
AGENT, AGENT_NAME, AGENT_PASSWORD = "dana", "Dana", "dana-password"
# A privileged agent who may answer tickets of the General queue (not root), and what a real RT
# needs for customers' mail: Everyone may reply to tickets by email.
AGENTS = """\
@Users = ({{ Name => '{name}', RealName => '{real}', EmailAddress => '{name}@support.example',
            Password => '{password}', Privileged => 1 }});
@ACL = ((map {{ {{ UserId => '{name}', Right => $_, Queue => 'General' }} }}
             qw(SeeQueue ShowTicket ReplyToTicket CommentOnTicket)),
        {{ GroupDomain => 'SystemInternal', GroupType => 'Everyone', Right => 'ReplyToTicket',
           Queue => 'General' }});
1;
"""

SITE_CONFIG = """\
Set($rtname, 'supportbot.test');
Set($Organization, 'supportbot.test');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{db}');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {port});
Set($WebPath, '');
Set($WebBaseURL, 'http://127.0.0.1:{port}');
Set($Timezone, 'UTC');
Set($LogToSTDERR, 'warning');
Set($LogToSyslog, undef);
Set($LogToFile, undef);
# Outgoing mail goes to a temporary file, never to the network.
Set($MailCommand, 'testfile');
1;
"""


def installed() -> bool:
    return RT_SERVER.exists() and RT_SETUP_DATABASE.exists()


@contextmanager
def running_rt(workdir: Path, timeout: float = 120) -> Iterator[str]:
    """Yield the base URL of a fresh RT; stop it afterwards."""
    port = processes.free_port()
    site_dir = workdir / "RT_SiteConfig.d"
    site_dir.mkdir(parents=True, exist_ok=True)
    config = workdir / "RT_SiteConfig.pm"
    config.write_text(SITE_CONFIG.format(db=workdir / "rtdb", port=port))
    env = {"RT_SITE_CONFIG": str(config), "RT_SITE_CONFIG_DIR": str(site_dir)}
    started = time.monotonic()
    subprocess.run(["nice", str(RT_SETUP_DATABASE), "--action", "init", "--skip-create"],
                   env={**os.environ, **env}, cwd=workdir, check=True, capture_output=True, timeout=timeout)
    initialised = time.monotonic()
    health = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/REST/2.0/queues/all"
    server = processes.ServerProcess("Request Tracker", ["nice", str(RT_SERVER), "--port", str(port)],
                                     health, workdir / "rt.log", env, workdir)
    with processes.running([server], timeout=timeout):
        print(f"\nRT: database {initialised - started:.1f}s, server {time.monotonic() - initialised:.1f}s")
        SITES[f"http://127.0.0.1:{port}"] = workdir
        yield f"http://127.0.0.1:{port}"


_AGENTS_ADDED = set()


def add_agent(url: str) -> None:
    """Give the running RT at `url` the agent AGENT (and customers the right to answer by mail),
    with RT's own tool for initial data (about a second)."""
    workdir = SITES[url]
    if url in _AGENTS_ADDED:
        return
    datafile = workdir / "agents.pl"
    datafile.write_text(AGENTS.format(name=AGENT, real=AGENT_NAME, password=AGENT_PASSWORD))
    env = {**os.environ, "RT_SITE_CONFIG": str(workdir / "RT_SiteConfig.pm"),
           "RT_SITE_CONFIG_DIR": str(workdir / "RT_SiteConfig.d")}
    subprocess.run(["nice", str(RT_SETUP_DATABASE), "--action", "insert", "--datafile", str(datafile),
                    "--skip-create"], env=env, cwd=workdir, check=True, capture_output=True, timeout=60)
    _AGENTS_ADDED.add(url)


def mail_from(url: str, ticket_id: str, sender: str, text: str) -> None:
    """A customer's email answer to the ticket, through RT's mail gateway (as their MTA delivers it)."""
    mail = (f"From: {sender}\nTo: rt@supportbot.test\n"
            f"Subject: [supportbot.test #{ticket_id}] Re: your request\n\n{text}\n")
    subprocess.run([str(RT_MAILGATE), "--queue", "General", "--action", "correspond", "--url", url],
                   input=mail.encode(), check=True, capture_output=True, timeout=60)


def create_queues(url: str, names: Iterable[str]) -> None:
    """What an RT admin does once for each team's queue in routing.yml
    (docs/ticketing.md#queues-and-priorities)."""
    from supportbot.ticketing.http import JsonApi

    api = JsonApi("rt", url + "/REST/2.0", auth=(USER, PASSWORD))
    existing = {q.get("Name") for q in api.request("GET", "/queues/all", params={"fields": "Name",
                                                                                  "per_page": "100"})["items"]}
    for name in names:
        if name not in existing:
            api.request("POST", "/queue", body={"Name": name})
