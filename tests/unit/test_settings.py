"""supportbot.settings is the one place configuration is read: the README's table is generated
from it, every default it declares is the one the code uses, and no module reads the
environment around it."""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from supportbot import channels, settings
from supportbot.billing.limits import Limits as BillingLimits

REPO = Path(__file__).resolve().parents[2]
# Reading a variable: os.environ.get / os.getenv / environ["X"] / env.get("X").
ENV_READ = re.compile(r"""(getenv\(|environ(\.get)?\s*[\[(]\s*["']|\benv\.get\(\s*["'])""")
# Third-party variables we set or pass through, and a socket.io request's WSGI environ.
ALLOWED = re.compile(r"""os\.environ\.setdefault\(|\{\*\*os\.environ|environ\.get\("HTTP_""")


def test_readme_table_is_the_generated_one():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index(settings.README_START) + len(settings.README_START)
    end = readme.index(settings.README_END)
    assert readme[start:end].strip() == settings.markdown_table(), (
        "README's configuration table differs from supportbot/settings.py: paste the output of "
        "`python -m supportbot.settings` between the markers")


@pytest.mark.parametrize("group", settings.GROUPS, ids=lambda g: g.settings[0].name)
def test_the_readme_shows_every_declared_default(group):
    for setting in group.settings:
        if setting.default is not None:
            assert f"`{setting.default}`" in group.shown_default, setting.name
        if setting.falls_back_to is not None:
            assert f"`{setting.falls_back_to}`" in group.shown_default, setting.name


def test_no_module_reads_the_environment_around_settings():
    offenders = []
    for path in [*(REPO / "supportbot").rglob("*.py"), *(REPO / "actions").rglob("*.py")]:
        if path.name == "settings.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ENV_READ.search(line) and not ALLOWED.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "read these through supportbot.settings:\n" + "\n".join(offenders)


def test_the_scan_catches_each_way_of_reading():
    for line in ('os.environ.get("X")', 'os.getenv("X")', 'os.environ["X"]', 'env.get("RT_URL", "x")'):
        assert ENV_READ.search(line) and not ALLOWED.search(line), line
    assert ALLOWED.search('os.environ.setdefault("HF_HUB_OFFLINE", "1")')
    assert ALLOWED.search('origin = environ.get("HTTP_ORIGIN")')


def test_values_defaults_and_fallbacks():
    assert settings.get("BILLING_URL", {}) == "http://127.0.0.1:5056"
    assert settings.get("BILLING_URL", {"BILLING_URL": " http://x "}) == "http://x"
    assert settings.get("BILLING_URL", {"BILLING_URL": ""}) == "http://127.0.0.1:5056"  # empty = unset
    assert settings.get("SUPPORTBOT_TICKETING_DB_URL", {"SUPPORTBOT_DB_URL": "sqlite:///a.db"}) == "sqlite:///a.db"
    assert settings.get("SUPPORTBOT_SESSION_SECRET", {"SUPPORTBOT_IDENTITY_SECRET": "s"}) == "s"
    assert settings.given("SUPPORTBOT_SESSION_SECRET", {"SUPPORTBOT_IDENTITY_SECRET": "s"}) is None
    assert settings.get("RT_PASSWORD", {}) is None
    with pytest.raises(ValueError, match="RT_PASSWORD"):
        settings.require("RT_PASSWORD", {})
    with pytest.raises(KeyError, match="NOT_A_SETTING"):
        settings.get("NOT_A_SETTING", {})


def test_typed_values_say_which_variable_is_wrong():
    assert settings.integer("RASA_PORT", {}) == 5005
    assert settings.number("BILLING_TIMEOUT", {"BILLING_TIMEOUT": "2.5"}) == 2.5
    assert settings.amount("SUPPORTBOT_REFUND_AUTO_LIMIT", {}) == Decimal("200")
    assert settings.flag("SUPPORTBOT_RETENTION_OFFER", {"SUPPORTBOT_RETENTION_OFFER": "OFF"}) is False
    assert settings.flag("SUPPORTBOT_RETENTION_OFFER", {}) is True
    for name, function, bad in (("RASA_PORT", settings.integer, "50o5"),
                                ("BILLING_TIMEOUT", settings.number, "nan"),
                                ("BILLING_TIMEOUT", settings.number, "-1"),
                                ("SUPPORTBOT_REFUND_AUTO_LIMIT", settings.amount, "lots")):
        with pytest.raises(ValueError, match=name):
            function(name, {name: bad})


def test_dataclass_defaults_are_the_declared_ones():
    """Limits() in code and tests means the same as an unconfigured environment."""
    assert channels.Limits() == channels.Limits.from_env({})
    assert BillingLimits() == BillingLimits.from_env({})
