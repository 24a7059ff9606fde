"""What every console route shares: templates, the session, forms, CSRF and refusals."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from simulator.nes.service import Nes
from simulator.nes.web.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleSession,
    Role,
    SessionStore,
)

HERE = Path(__file__).parent
MAX_FORM_BYTES = 64 * 1024
templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                        autoescape=select_autoescape(["html"], default=True),
                        trim_blocks=True, lstrip_blocks=True)


class Refused(Exception):
    """A request the console refuses: ``status`` and one line for the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def nes_of(request: Request) -> Nes:
    nes: Nes = request.app.state.nes
    return nes


def store_of(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


def base(request: Request) -> str:
    """The server's prefix (``/nes``, ``/enrollment``…), empty when served at the root."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def url(request: Request, path: str, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{base(request)}{path}" + (f"?{query}" if query else "")


def cookie_path(request: Request) -> str:
    return base(request) + "/"


def session_of(request: Request) -> ConsoleSession | None:
    return store_of(request).get(request.cookies.get(SESSION_COOKIE))


def require(request: Request, role: Role) -> ConsoleSession:
    """The session, whose role must be at least ``role``; :class:`Refused` otherwise."""
    session = session_of(request)
    if session is None:
        raise Refused(401, "Sign in to use the NES Administrator Console.")
    if session.role < role:
        raise Refused(403, f"Your role ({session.role.label}) may not do this; it needs the "
                           f"{role.label} role.")
    return session


async def read_form(request: Request) -> dict[str, str]:
    """The URL-encoded form of a POST (at most 64 KiB); the same origin only."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise Refused(403, "This form was sent from another site; nothing was changed.")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Refused(415, "Send the form as application/x-www-form-urlencoded.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, "The form is too large; nothing was changed.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "The form could not be read; nothing was changed.") from None
    return dict(pairs)


def check_csrf(session: ConsoleSession, form: dict[str, str]) -> None:
    if not session.csrf_ok(form.get("csrf")):
        raise Refused(403, "The form's security token is missing or wrong (the page may be "
                           "old): reload the page and try again. Nothing was changed.")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    session = context.pop("session", None) or session_of(request)
    flash = None
    if session is not None:
        flash = request.app.state.flashes.pop(session.token, None)
    html = templates.get_template(template).render(
        base=base(request), nes_name=nes_of(request).name, session=session, flash=flash,
        request_path=request.url.path, **context)
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def refused_page(request: Request, refused: Refused) -> Response:
    if refused.status == 401:
        return RedirectResponse(url(request, "/login", next=request.url.path), status_code=303)
    return render(request, "message.html", status=refused.status, title="Refused",
                  message=refused.message)


def redirect(request: Request, path: str, flash: str | None = None,
             session: ConsoleSession | None = None, **params: Any) -> RedirectResponse:
    if flash and session is not None:
        request.app.state.flashes[session.token] = flash
    return RedirectResponse(url(request, path, **params), status_code=303)


def login_nonce(request: Request) -> str:
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def set_cookie(request: Request, response: Response, name: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=cookie_path(request),
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
