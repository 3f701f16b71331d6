"""The admin app around its pages: logging in and out, who may see what, CSRF, errors, templates.

Each page module (`inbox`: the NLU inbox; `agents`: the agent inbox) adds its routes with
`add_routes(app)` and names its pages in `app.ctx.pages`, so the navigation and the home page
list what a role may open. A route says which roles may use it with `@requires(...)`: a person
logged in with the session cookie, or a program with a bearer token (SUPPORTBOT_ADMIN_API_TOKENS);
a POST made with the cookie must carry the session's CSRF token. Pages answer errors as pages,
`/api/` routes as JSON `{"error": ...}`.
"""
from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Deque, Dict, FrozenSet, Optional, Tuple
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sanic import Sanic, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot.admin import sessions
from supportbot.admin.accounts import Account, Config, hash_password, verify_password
from supportbot.admin.sessions import Session

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MAX_PASSWORD_CHARS = 1024
LOGIN_FAILURES, LOGIN_WINDOW_SECONDS = 10, 15 * 60  # per name and address
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: with it, Chromium sends `Origin: null` on form posts, which check_csrf refuses.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_app_numbers = itertools.count(1)


@dataclass(frozen=True)
class Page:
    path: str
    title: str
    roles: Tuple[str, ...]


class ApiError(Exception):
    """An answer other than success: a page or `{"error": message}` with this status."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class LoggedOut:
    """Sessions ended by logging out, until they would have expired: a copy of the cookie kept
    elsewhere stops working too. In memory: a restart forgets them, never more than a working day."""

    def __init__(self) -> None:
        self.until: Dict[str, float] = {}

    def add(self, session: Session) -> None:
        now = time.time()
        self.until = {csrf: end for csrf, end in self.until.items() if end > now}
        self.until[session.csrf] = now + session.ttl

    def __contains__(self, session: Session) -> bool:
        return self.until.get(session.csrf, 0) > time.time()


class FailedLogins:
    """Refuses a name from an address after LOGIN_FAILURES wrong passwords in LOGIN_WINDOW_SECONDS."""

    def __init__(self) -> None:
        self.failures: Dict[Tuple[str, str], Deque[float]] = defaultdict(deque)

    def blocked(self, key: Tuple[str, str]) -> bool:
        times = self.failures[key]
        while times and times[0] < time.monotonic() - LOGIN_WINDOW_SECONDS:
            times.popleft()
        return len(times) >= LOGIN_FAILURES

    def record(self, key: Tuple[str, str]) -> None:
        self.failures[key].append(time.monotonic())


async def in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Database work and password hashing off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(function, *args, **kwargs))


def is_api(request: Request) -> bool:
    return request.path.startswith("/api/")


def user(request: Request) -> Optional[Account]:
    return getattr(request.ctx, "user", None)


def requires(*roles: str) -> Callable:
    """Only callers with one of `roles`; a POST with the session cookie needs its CSRF token."""

    def decorate(handler: Callable[..., Awaitable[HTTPResponse]]) -> Callable[..., Awaitable[HTTPResponse]]:
        @functools.wraps(handler)
        async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            caller = user(request)
            if caller is None:
                if not is_api(request) and request.method == "GET":
                    target = request.path + (f"?{request.query_string}" if request.query_string else "")
                    return response.redirect(f"/login?next={quote(target, safe='')}", status=303)
                raise ApiError(401, "log in, or send Authorization: Bearer <token>" if is_api(request)
                               else "your session has ended: log in again",
                               {"WWW-Authenticate": 'Bearer realm="supportbot-admin"'})
            if caller.role not in roles:
                raise ApiError(403, f"this is for {' and '.join(r + 's' for r in roles)}; "
                                    f"{caller.name} is a {caller.role}")
            if request.method == "POST" and not request.ctx.via_token:
                check_csrf(request)
            return await handler(request, *args, **kwargs)

        return guarded

    return decorate


def check_csrf(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != f"{request.scheme}://{request.host}":
        raise ApiError(403, "this request came from another site's page")
    presented = request.headers.get("x-csrf-token")
    if presented is None and request.content_type.startswith("application/x-www-form-urlencoded"):
        presented = request.form.get("csrf")
    if not request.ctx.session.checks(presented):
        raise ApiError(403, "the CSRF token is missing or out of date: reload the page and try again")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTTPResponse:
    caller = user(request)
    pages = [p for p in request.app.ctx.pages if caller and caller.role in p.roles]
    body = request.app.ctx.templates.get_template(template).render(
        user=caller, csrf=request.ctx.session.csrf, pages=pages, current=request.path, **context)
    return response.html(body, status=status)


def safe_next(target: Optional[str]) -> str:
    """Where to go after logging in: a path on this site only."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def create_app(config: Config, db_url: str, labels: FrozenSet[str]) -> Sanic:
    """The app; the learning store opens (and migrates) when the server starts."""
    from supportbot.admin import agents, inbox

    app = Sanic(f"supportbot_admin_{next(_app_numbers)}")  # Sanic wants one name per app in a process
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.REQUEST_MAX_SIZE = 1024 * 1024
    app.ctx.config, app.ctx.labels = config, labels
    app.ctx.failed_logins, app.ctx.logged_out = FailedLogins(), LoggedOut()
    # Unknown names are checked against a hash as costly as a real one: timing tells no names.
    iterations = next((int(a.password_hash.split(".")[1]) for a in config.accounts.values()), 1000)
    app.ctx.decoy_hash = hash_password("decoy", iterations)
    app.ctx.templates = Environment(loader=FileSystemLoader(HERE / "templates"), undefined=StrictUndefined,
                                    autoescape=select_autoescape(default=True))
    app.static("/static", str(HERE / "static"))
    _add_sessions(app)
    _add_login(app)
    app.ctx.pages = []
    inbox.add_routes(app)
    agents.add_routes(app)
    _add_errors(app)

    @app.before_server_start
    async def open_store(app: Sanic, _loop: Any) -> None:
        from supportbot.learning.store import LearningStore

        app.ctx.store = LearningStore(db_url)

    return app


def _add_sessions(app: Sanic) -> None:
    @app.middleware("request")
    async def identify(request: Request) -> None:
        config: Config = request.app.ctx.config
        cookie = sessions.decode(request.cookies.get(sessions.COOKIE), config.secret)
        if cookie is not None and cookie in request.app.ctx.logged_out:
            cookie = None
        request.ctx.session, request.ctx.renew = cookie or Session.new(), cookie is None
        request.ctx.user, request.ctx.via_token = None, False
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.strip().partition(" ")
            caller = config.caller(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
            if caller is None:
                raise ApiError(401, "the bearer token is not valid",
                               {"WWW-Authenticate": 'Bearer realm="supportbot-admin", error="invalid_token"'})
            request.ctx.user, request.ctx.via_token = caller, True
        elif cookie is not None and cookie.name:
            account = config.accounts.get(cookie.name)
            # A removed account, a new role or a new password ends the sessions signed before.
            if account and account.role == cookie.role and account.version == cookie.version:
                request.ctx.user = account
            else:
                request.ctx.session, request.ctx.renew = Session.new(), True

    @app.middleware("response")
    async def finish(request: Request, resp: HTTPResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            if not (name == "Cache-Control" and request.path.startswith("/static/")):
                resp.headers.setdefault(name, value)
        session = getattr(request.ctx, "session", None)
        if session is not None and getattr(request.ctx, "renew", False) and not request.ctx.via_token:
            sessions.set_cookie(resp, session, request.app.ctx.config.secret, request.scheme == "https")

    @app.get("/health")
    async def health(request: Request) -> HTTPResponse:
        return response.json({"status": "ok"})


def _add_login(app: Sanic) -> None:
    @app.get("/")
    async def home(request: Request) -> HTTPResponse:
        if user(request) is None:
            return response.redirect("/login", status=303)
        return render(request, "home.html", title="Home")

    @app.get("/login")
    async def login_form(request: Request) -> HTTPResponse:
        if user(request) is not None:
            return response.redirect(safe_next(request.args.get("next")), status=303)
        return render(request, "login.html", title="Log in", error=None, name="",
                      next=safe_next(request.args.get("next")))

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        form = {name: request.form.get(name) or "" for name in ("name", "password", "csrf", "next")}
        target = safe_next(form["next"])

        def again(status: int, error: str) -> HTTPResponse:
            return render(request, "login.html", status, title="Log in", error=error, name=form["name"][:64],
                          next=target)

        if not request.ctx.session.checks(form["csrf"]):
            request.ctx.session, request.ctx.renew = Session.new(), True
            return again(403, "The form had expired. Please log in again.")
        key = (form["name"].lower(), request.ip)
        if request.app.ctx.failed_logins.blocked(key):
            return again(429, "Too many wrong passwords: try again in 15 minutes.")
        account = request.app.ctx.config.accounts.get(form["name"])
        encoded = account.password_hash if account else request.app.ctx.decoy_hash
        password = form["password"][:MAX_PASSWORD_CHARS]
        if not await in_thread(verify_password, password, encoded) or account is None:
            request.app.ctx.failed_logins.record(key)
            logger.warning("failed login for %r from %s", form["name"][:64], request.ip)
            return again(401, "Wrong name or password.")
        request.ctx.session, request.ctx.renew = Session.new(account), True
        logger.info("%s logged in from %s", account.name, request.ip)
        return response.redirect(target, status=303)

    @app.post("/logout")
    async def logout(request: Request) -> HTTPResponse:
        check_csrf(request)
        if user(request) is not None:
            request.app.ctx.logged_out.add(request.ctx.session)
        request.ctx.session, request.ctx.renew = Session.new(), True
        return response.redirect("/login", status=303)


def _add_errors(app: Sanic) -> None:
    def answer(request: Request, status: int, message: str, headers: Optional[Dict[str, str]] = None
               ) -> HTTPResponse:
        if is_api(request) or not hasattr(request.ctx, "session"):
            return response.json({"error": message}, status=status, headers=headers)
        titles = {401: "Please log in", 403: "Not allowed", 404: "Not found"}
        page = render(request, "error.html", status, title=titles.get(status, "Something went wrong"),
                      message=message)
        page.headers.update(headers or {})
        return page

    @app.exception(ApiError)
    async def api_error(request: Request, error: ApiError) -> HTTPResponse:
        return answer(request, error.status, error.message, error.headers)

    @app.exception(SanicException)
    async def sanic_error(request: Request, error: SanicException) -> HTTPResponse:
        status = getattr(error, "status_code", 500) or 500
        return answer(request, status, str(error) if status < 500 else "internal error")

    @app.exception(Exception)
    async def internal_error(request: Request, error: Exception) -> HTTPResponse:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return answer(request, 500, "internal error: see the admin app's log")
