"""The service's own routes: liveness (`/health`) and the API contract (`/openapi.yaml`).

Both are public, and neither tells anything about customers.
"""

from __future__ import annotations

from pathlib import Path

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot.billing.routes.common import in_thread, json_response, store

OPENAPI_PATH = Path(__file__).parent.parent / "openapi.yaml"


def add_routes(app: Sanic) -> None:
    @app.get("/health", ctx_public=True)
    async def health(request: Request) -> HTTPResponse:
        await in_thread(store(request).ping)
        return json_response({"status": "ok"})

    @app.get("/openapi.yaml", ctx_public=True)
    async def openapi(request: Request) -> HTTPResponse:
        return HTTPResponse(OPENAPI_PATH.read_text(encoding="utf-8"),
                            content_type="application/yaml; charset=utf-8")
