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
from typing import Iterator

from supportbot import processes

RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_SETUP_DATABASE = Path("/usr/sbin/rt-setup-database-5")
USER, PASSWORD = "root", "password"  # what RT's initial data gives a fresh install

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
        yield f"http://127.0.0.1:{port}"
