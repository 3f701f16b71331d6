"""Marks `slow` every test that starts a server or a browser, or needs Postgres or the trained
model, so that `pytest -m "not slow"` (`make test-fast`) is a quick suite that needs none of
them, and a new test cannot forget the mark. A test starts a server when it uses one of
SERVER_FIXTURES or SERVER_PARAMS, or when it (or a fixture or helper of its module) calls one of
SERVER_STARTERS or builds a `socketserver` server, as the in-process fakes do."""
from __future__ import annotations

import inspect
import socketserver
from types import CodeType
from typing import Any, Iterator, List, Set

import pytest

SERVER_FIXTURES = frozenset({
    "model", "stack", "slack_api",  # the trained model, the assistant's processes (plugins/stack.py)
    "billing_server", "billing_url", "postgres_billing_server", "postgres_billing_url",
    "any_billing_server", "any_billing_url",  # tests/billing/conftest.py
    "rt_url", "fake_zendesk",  # tests/ticketing/conftest.py
    "demo", "browser",  # tests/web/conftest.py
    "redis_url", "rabbitmq_url",  # tests/conftest.py: the real Redis and RabbitMQ servers
    "nginx",  # tests/unit/test_profile.py: nginx from Debian (`make nginx`)
})
# Parametrised fixtures, and the parameters of theirs that need Postgres or a ticketing server.
SERVER_PARAMS = {"db_url": {"postgres"}, "backend": {"postgres", "rt", "zendesk"}}
# What starts a server: supportbot.processes and rt_server's launchers, the fakes and Chromium.
SERVER_STARTERS = frozenset({"running", "running_rt", "billing_process", "FakeSlack", "FakeZendesk",
                             "HungServer", "Browser"})


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        if starts_a_server(item):
            item.add_marker(pytest.mark.slow)


def starts_a_server(item: pytest.Item) -> bool:
    if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    if any(isinstance(params.get(name), str) and params[name] in values
           for name, values in SERVER_PARAMS.items()):
        return True
    fixtures = getattr(item, "_fixtureinfo", None)
    functions = [getattr(item, "function", None)] + [
        definition.func for definitions in (fixtures.name2fixturedefs.values() if fixtures else ())
        for definition in definitions]
    seen: Set[CodeType] = set()
    return any(_calls_a_server_starter(function, seen) for function in functions if function)


def _calls_a_server_starter(function: Any, seen: Set[CodeType]) -> bool:
    function = inspect.unwrap(function)
    code = getattr(function, "__code__", None)
    if code is None or code in seen:
        return False
    seen.add(code)
    for name in _names(code):
        value = function.__globals__.get(name)
        if name in SERVER_STARTERS or (inspect.isclass(value) and issubclass(value, socketserver.BaseServer)):
            return True
        # A helper of the same module (e.g. `_action_server`) counts as the test's own code.
        if (inspect.isfunction(value) and value.__module__ == function.__module__
                and _calls_a_server_starter(value, seen)):
            return True
    return False


def _names(code: CodeType) -> Iterator[str]:
    """The global and attribute names the code uses, nested functions and lambdas included."""
    yield from code.co_names
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from _names(constant)
