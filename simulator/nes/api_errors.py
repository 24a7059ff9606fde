"""Errors of the NES HTTP API: the JSON error body, how each error becomes a status, and how
the OpenAPI document declares them.

Every error answer is ``{"error": "<message>", "detail": <structured detail or null>}``; the
document declares this body (:class:`ErrorBody`) for every error status an operation can give.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from nymi_device.errors import BandError, InvalidInputError
from nymi_device.protocol.nes.errors import NesConflict, NesError, NesRefusal
from simulator.nes.api_guard import BodyTooLarge, too_large_body

logger = logging.getLogger(__name__)


class FieldIssue(BaseModel):
    """One malformed field of a request (422)."""

    loc: list[str] = Field(description="Where: e.g. [\"body\", \"serial\"]")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: str = Field(description="One sentence for the person; for a refusal by the NES the "
                       "exact message of the product")
    detail: list[FieldIssue] | dict[str, Any] | None = Field(
        default=None, description="422: each malformed field; otherwise null or an object "
        "whose `type` names the error (with `code` and context for a refusal)")


Responses = dict[int | str, dict[str, Any]]


def _declared(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


UNAUTHENTICATED: Responses = {
    401: _declared("Not authenticated: no, unknown or wrong credentials, or an expired token "
                   "(with a WWW-Authenticate challenge)"),
    429: _declared("Too many failed sign-ins for the account or from this address (with "
                   "Retry-After)")}
MALFORMED: Responses = {
    413: _declared("The request body is larger than the server accepts"),
    422: _declared("A malformed body, path or query; `detail` lists each bad field")}
FORBIDDEN: Responses = {
    403: _declared("Not allowed: not an administrator, not the caller's own band, or refused by "
                   "the NES (`error` is the exact message)")}
NOT_FOUND: Responses = {404: _declared("Unknown user, band, policy, key or entry")}
CONFLICT: Responses = {
    409: _declared("Conflicts with the present state or a change made at the same time")}
PROTECTED: Responses = {
    **UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND, **CONFLICT, **MALFORMED}
"""What any call that needs credentials may answer besides success."""


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of this path accepts (for the ``Allow`` header of a 405): each
    method is tried against the app's routes as the router itself would match it."""
    routes = request.app.router.routes
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
                   for route in routes)]


def error_body(message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": message, "detail": detail}


def _status_for(exc: BandError) -> int:
    if isinstance(exc, NesRefusal):
        return 403
    if isinstance(exc, LookupError):
        return 404
    if isinstance(exc, NesConflict):
        return 409
    if isinstance(exc, InvalidInputError):
        return 422
    return 400


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    parts: list[str] = []
    detail: list[dict[str, Any]] = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        msg = str(err.get("msg", "invalid value"))
        parts.append(f"{'.'.join(loc) or 'request'}: {msg}")
        detail.append({"loc": loc, "msg": msg, "type": str(err.get("type", ""))})
    return "invalid request: " + "; ".join(parts), detail


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, detail = _validation_message(list(exc.errors()))
        return JSONResponse(error_body(message, detail), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot decode at all (e.g. bytes that are not
            # UTF-8): a malformed body like any other, so 422 with a readable message.
            detail = [{"loc": ["body"], "msg": str(exc.detail), "type": "body_unreadable"}]
            return JSONResponse(error_body(
                f"invalid request: body: {exc.detail} (send UTF-8 JSON)", detail), 422)
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(error_body(message), status_code=exc.status_code,
                            headers=headers or None)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(too_large_body(exc.limit), status_code=413, headers=exc.headers)

    @app.exception_handler(BandError)
    async def _band_error(request: Request, exc: BandError) -> JSONResponse:
        detail = exc.detail() if isinstance(exc, NesError) else {"type": type(exc).__name__}
        return JSONResponse(error_body(str(exc), detail), status_code=_status_for(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error in %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal server error"), status_code=500)
