"""The NES Administrator Console on the web: server-rendered pages beside the HTTP API.

``create_console(nes)`` is an ASGI app for one NES. :func:`simulator.nes.api.create_app`
mounts it at the server's root, so ``nymi-sim nes serve`` serves the console at ``/nes/`` (IT/OT:
``/enrollment/`` and ``/registration/``) and the API under ``/<server>/api/v1`` on the same port.
Pages are rendered by Jinja2 with autoescaping; one small script of our own
(``static/console.js``) refreshes a page when the server's data change. Sessions, roles, CSRF
and lockout: :mod:`simulator.nes.web.auth`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from simulator.nes.service import Nes
from simulator.nes.web import actions, pages
from simulator.nes.web.auth import HELP_DESK_GROUP, READ_ONLY_GROUP, Role, SessionStore
from simulator.nes.web.common import HERE, Refused, refused_page, render

__all__ = ["HELP_DESK_GROUP", "READ_ONLY_GROUP", "Role", "SessionStore", "create_console"]


def create_console(nes: Nes, *, idle_seconds: float = 300.0, max_failures: int = 5,
                   lockout_seconds: float = 900.0) -> FastAPI:
    """The console of ``nes`` (see the module docstring)."""
    app = FastAPI(title=f"NES Administrator Console — {nes.name}", openapi_url=None,
                  docs_url=None, redoc_url=None)
    app.state.nes = nes
    app.state.sessions = SessionStore(idle_seconds=idle_seconds, max_failures=max_failures,
                                      lockout_seconds=lockout_seconds)
    app.state.flashes = {}
    app.include_router(actions.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        return refused_page(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith(str(request.scope.get("root_path", "")) + "/api/"):
            return JSONResponse({"error": "not found", "detail": None}, exc.status_code)
        return render(request, "message.html", exc.status_code, title="Not found"
                      if exc.status_code == 404 else "Refused", message=str(exc.detail))

    return app
