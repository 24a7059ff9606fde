"""The NES HTTP API (FastAPI); OpenAPI at ``/openapi.json``, interactive docs at ``/docs``.

``create_app(nes)`` serves one NES; ``create_site_app(site)`` serves every NES of a site, each
under ``/<name>`` (``/nes`` for the single server, the documented default service mapping name;
``/enrollment`` and ``/registration`` in the IT/OT layout).

Authentication and roles: :mod:`simulator.nes.api_auth`. Errors always have a JSON body
``{"error": "<message>", "detail": <structured detail or null>}``:

- 401 — not authenticated (with a ``WWW-Authenticate`` challenge);
- 403 — authenticated, but not allowed: not an administrator, not the caller's own band, or
  refused by the NES (``error`` is then the exact message for the person, e.g. "Cannot perform
  re-enrollment because …");
- 404 — unknown user, band, policy or entry; 409 — conflicts with the present state;
- 422 — malformed body, path or query, with a readable message naming each bad field;
- 500 — an unexpected error (logged); the body says only "internal server error".
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, HTTPException, Path, Query, Request
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Scope

from nymi_device.protocol.nes.errors import NotFound
from nymi_device.protocol.text import from_b64url
from simulator.nes import api_models as m
from simulator.nes.api_auth import Admin, Caller, TokenStore, unauthenticated
from simulator.nes.api_errors import MALFORMED, PROTECTED, UNAUTHENTICATED, install_error_handlers
from simulator.nes.api_guard import (
    ApiLimits,
    AuthGuard,
    BodyLimit,
    Clock,
)
from simulator.nes.models import PolicyKind
from simulator.nes.servers import Site
from simulator.nes.service import Nes

logger = logging.getLogger(__name__)
PREFIX = "/api/v1"
SerialPath = Annotated[str, Path(pattern=m.SERIAL_PATTERN, description="e.g. AAAH-00125")]
AccountPath = Annotated[str, Path(min_length=1, max_length=200,
                                  description="CORP\\username (URL-encoded) or a bare username")]
NamePath = Annotated[str, Path(min_length=1, max_length=128)]


def _nes(request: Request) -> Nes:
    nes: Nes = request.app.state.nes
    return nes


def _session_routes() -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["session"])

    @router.get("/health")
    def health(request: Request) -> dict[str, Any]:
        """Liveness of the server (no authentication)."""
        return {"status": "ok", "nes": _nes(request).name}

    @router.post("/login", responses={**UNAUTHENTICATED, **MALFORMED})
    def login(request: Request, body: m.LoginBody) -> dict[str, Any]:
        """Exchange directory credentials for a bearer token."""
        nes = _nes(request)
        guard: AuthGuard = request.app.state.guard
        user = guard.authenticate(request, nes.directory, body.username, body.password)
        if user is None:
            raise unauthenticated("unknown user or wrong password")
        tokens: TokenStore = request.app.state.tokens
        return {"access_token": tokens.issue(user.account), "token_type": "bearer",
                "expires_in": int(tokens.idle_seconds), "account": user.account,
                "is_admin": user.is_admin}

    @router.post("/logout", responses={**UNAUTHENTICATED, **MALFORMED})
    def logout(request: Request, caller: Caller) -> dict[str, Any]:
        if caller.token is not None:
            request.app.state.tokens.revoke(caller.token)
        return {"account": caller.account, "signed_out": caller.token is not None}

    return router


def _nba_routes() -> APIRouter:
    """The calls a Nymi Band Application makes for the signed-in user."""
    router = APIRouter(prefix=f"{PREFIX}/me", tags=["nymi band application"],
                       responses=PROTECTED)

    @router.get("")
    def me(request: Request, caller: Caller) -> dict[str, Any]:
        """The caller's directory entry and, once the NES knows them, User Properties."""
        nes = _nes(request)
        try:
            user = nes.user(caller.account).to_json()
        except NotFound:
            user = None
        return {"directory": caller.user.to_json(), "nes_user": user}

    @router.put("")
    def sign_in_user(request: Request, caller: Caller) -> dict[str, Any]:
        """The NBA's sign-in: the NES imports the caller from the directory if it does not know
        them yet. Returns their User Properties."""
        return _nes(request).ensure_user(caller.account, actor=caller.account).to_json()

    @router.get("/policy")
    def my_policy(request: Request, caller: Caller) -> dict[str, Any]:
        """The caller's effective policy (individual over group) and policy status."""
        nes = _nes(request)
        return {"settings": nes.effective_policy(caller.account).to_json(),
                "policy_status": nes.policy_status(caller.account).value}

    @router.post("/enrollment-checks")
    def check(request: Request, caller: Caller, body: m.EnrollmentCheckBody) -> dict[str, Any]:
        """May the caller enroll this band? (The NBA asks when the band is tapped.)"""
        return _nes(request).check_enrollment(caller.account, body.serial).to_json()

    @router.post("/enrollments", status_code=201)
    def enroll(request: Request, caller: Caller, body: m.BandBody) -> dict[str, Any]:
        """Record the caller's enrollment (or self-service re-enrollment) of a band."""
        return _nes(request).enroll(
            caller.account, body.facts(), nba_version=body.nba_version, label=body.label,
            expected_band_version=body.expected_band_version).to_json()

    @router.post("/registrations", status_code=201)
    def register(request: Request, caller: Caller, body: m.RegistrationBody) -> dict[str, Any]:
        """Record the caller's registration of an enrolled band (IT/OT Registration NES)."""
        return _nes(request).register(
            caller.account, body.facts(), enrolled_at_nes=body.enrolled_at_nes,
            nba_version=body.nba_version, label=body.label,
            expected_band_version=body.expected_band_version).to_json()

    @router.post("/sign-ins")
    def sign_in(request: Request, caller: Caller, body: m.SignInBody) -> dict[str, Any]:
        """The caller signed in wearing their authenticated band: the policy reaches it."""
        status = _nes(request).nba_sign_in(caller.account, body.serial,
                                           nba_version=body.nba_version)
        return {"account": caller.account, "serial": body.serial, "policy_status": status.value}

    @router.get("/fido2-keys")
    def my_keys(request: Request, caller: Caller) -> list[dict[str, Any]]:
        nes = _nes(request)
        try:
            return [k.to_json() for k in nes.fido2_keys(caller.account)]
        except NotFound:
            return []

    @router.post("/fido2-keys", status_code=201)
    def record_key(request: Request, caller: Caller, body: m.Fido2KeyBody) -> dict[str, Any]:
        """Record a FIDO2 security key the caller created on their active band."""
        return _nes(request).record_fido2_key(
            caller.account, body.serial, body.rp_id, body.credential_bytes(),
            body.public_key_bytes()).to_json()

    return router


def _admin_user_routes() -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["administrator: users"], responses=PROTECTED)

    @router.get("/users")
    def users(request: Request, admin: Admin,
              q: Annotated[str, Query(max_length=200)] = "",
              limit: Annotated[int, Query(ge=1, le=1000)] = 10,
              offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> list[dict[str, Any]]:
        """Search → Users (username, first or last name; 10 per page by default)."""
        return [u.to_json() for u in _nes(request).users(q, limit=limit, offset=offset)]

    @router.post("/users", status_code=201)
    def add_user(request: Request, admin: Admin, body: m.UserCreateBody) -> dict[str, Any]:
        """Create the NES record of a directory user."""
        return _nes(request).ensure_user(body.account, actor=admin.account).to_json()

    @router.get("/users/{account}")
    def user(request: Request, admin: Admin, account: AccountPath) -> dict[str, Any]:
        """User Properties."""
        return _nes(request).user(account).to_json()

    @router.put("/users/{account}/individual-policy")
    def set_policy(request: Request, admin: Admin, account: AccountPath,
                   body: m.IndividualPolicyBody) -> dict[str, Any]:
        return _nes(request).set_individual_policy(account, body.policy,
                                                   actor=admin.account).to_json()

    @router.get("/users/{account}/fido2-keys")
    def user_keys(request: Request, admin: Admin, account: AccountPath) -> list[dict[str, Any]]:
        return [k.to_json() for k in _nes(request).fido2_keys(account)]

    @router.get("/users/{account}/eam-entries")
    def user_eam(request: Request, admin: Admin, account: AccountPath) -> list[dict[str, Any]]:
        return [e.to_json() for e in _nes(request).eam_entries(account)]

    @router.post("/eam-entries/{entry_id}/blacklist")
    def blacklist(request: Request, admin: Admin,
                  entry_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> list[dict[str, Any]]:
        """Blacklist an EAM entry (the Wearable blacklists both RFID-tab entries)."""
        return [e.to_json() for e in _nes(request).eam_blacklist(entry_id, actor=admin.account)]

    @router.delete("/eam-entries/{entry_id}")
    def delete_entry(request: Request, admin: Admin,
                     entry_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> dict[str, Any]:
        """Delete a blacklisted EAM entry."""
        return _nes(request).eam_delete(entry_id, actor=admin.account).to_json()

    @router.get("/audit")
    def audit(request: Request, admin: Admin,
              table: Annotated[str | None, Query(max_length=64)] = None,
              account: Annotated[str | None, Query(max_length=200)] = None,
              key: Annotated[str | None, Query(max_length=255)] = None,
              limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> list[dict[str, Any]]:
        return [e.to_json() for e in _nes(request).audit(table=table, account=account, key=key,
                                                         limit=limit)]

    @router.delete("/fido2-keys/{credential_id}", status_code=204)
    def delete_key(request: Request, admin: Admin,
                   credential_id: Annotated[str, Path(min_length=1, max_length=1400)]) -> None:
        try:
            raw = from_b64url(credential_id)
        except ValueError as exc:
            raise HTTPException(422, "credential_id must be base64url") from exc
        _nes(request).delete_fido2_key(raw, actor=admin.account)

    return router


def _admin_band_routes() -> APIRouter:
    router = APIRouter(prefix=f"{PREFIX}/bands", tags=["administrator: bands"],
                       responses=PROTECTED)

    @router.get("")
    def bands(request: Request, admin: Admin,
              q: Annotated[str, Query(max_length=16)] = "") -> list[dict[str, Any]]:
        """Search → Nymi Bands by serial number."""
        return [b.to_json() for b in _nes(request).bands(q)]

    @router.get("/{serial}")
    def band(request: Request, admin: Admin, serial: SerialPath) -> dict[str, Any]:
        return _nes(request).band(serial).to_json()

    @router.patch("/{serial}")
    def update(request: Request, admin: Admin, serial: SerialPath,
               body: m.BandUpdateBody) -> dict[str, Any]:
        """The "Nymi Band" page: Is Active, Is Primary, Notes → Save."""
        return _nes(request).update_band(serial, is_active=body.is_active,
                                         is_primary=body.is_primary, notes=body.notes,
                                         actor=admin.account).to_json()

    @router.post("/{serial}/suspend")
    def suspend(request: Request, admin: Admin, serial: SerialPath,
                body: Annotated[m.NotesBody | None, Body()] = None) -> dict[str, Any]:
        notes = None if body is None else body.notes
        return _nes(request).suspend(serial, notes=notes, actor=admin.account).to_json()

    @router.post("/{serial}/disconnect")
    def disconnect(request: Request, admin: Admin, serial: SerialPath) -> dict[str, Any]:
        return _nes(request).disconnect(serial, actor=admin.account).to_json()

    @router.post("/{serial}/replace")
    def replace(request: Request, admin: Admin, serial: SerialPath,
                body: Annotated[m.NotesBody | None, Body()] = None) -> dict[str, Any]:
        notes = "Lost Band" if body is None or body.notes is None else body.notes
        return _nes(request).replace_lost_band(serial, notes=notes,
                                               actor=admin.account).to_json()

    @router.post("/{serial}/temporary")
    def temporary(request: Request, admin: Admin, serial: SerialPath,
                  body: Annotated[m.NotesBody | None, Body()] = None) -> dict[str, Any]:
        notes = "Temporary band issued" if body is None or body.notes is None else body.notes
        return _nes(request).issue_temporary_band(serial, notes=notes,
                                                  actor=admin.account).to_json()

    @router.post("/{serial}/restore")
    def restore(request: Request, admin: Admin, serial: SerialPath) -> dict[str, Any]:
        return _nes(request).restore_original(serial, actor=admin.account).to_json()

    @router.post("/{serial}/reassign")
    def reassign(request: Request, admin: Admin, serial: SerialPath,
                 body: m.ReassignBody) -> dict[str, Any]:
        return _nes(request).reassign(serial, body.to, nba_version=body.nba_version,
                                      label=body.label, actor=admin.account).to_json()

    return router


def _admin_policy_routes() -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["administrator: policies"], responses=PROTECTED)

    @router.get("/policies")
    def policies(request: Request, admin: Admin) -> list[dict[str, Any]]:
        return [p.to_json() for p in _nes(request).policies()]

    @router.post("/policies", status_code=201)
    def create(request: Request, admin: Admin, body: m.PolicyCreateBody) -> dict[str, Any]:
        return _nes(request).create_policy(
            body.name, PolicyKind(body.kind), values=body.settings, copy_of=body.copy_of,
            description=body.description, actor=admin.account).to_json()

    @router.get("/policies/{name}")
    def policy(request: Request, admin: Admin, name: NamePath) -> dict[str, Any]:
        return _nes(request).policy(name).to_json()

    @router.patch("/policies/{name}")
    def update(request: Request, admin: Admin, name: NamePath,
               body: m.PolicyUpdateBody) -> dict[str, Any]:
        return _nes(request).update_policy(name, body.settings, actor=admin.account).to_json()

    @router.post("/policies/{name}/activate")
    def activate(request: Request, admin: Admin, name: NamePath) -> dict[str, Any]:
        return _nes(request).activate_group_policy(name, actor=admin.account).to_json()

    @router.delete("/policies/{name}", status_code=204)
    def delete(request: Request, admin: Admin, name: NamePath) -> None:
        _nes(request).delete_policy(name, actor=admin.account)

    @router.get("/policy-status")
    def statuses(request: Request, admin: Admin,
                 policy: Annotated[str | None, Query(max_length=128)] = None
                 ) -> list[dict[str, Any]]:
        """The policy-membership search: each user's policy status."""
        return [{"account": a, "policy_status": s.value}
                for a, s in _nes(request).policy_statuses(policy)]

    return router


def create_app(nes: Nes, *, token_idle_seconds: float = 300.0, limits: ApiLimits | None = None,
               clock: Clock | None = None, guard: AuthGuard | None = None) -> FastAPI:
    """The HTTP API of ``nes``.

    :param limits: body size, lockout, throttling and token bounds (:class:`ApiLimits`).
    :param clock: monotonic seconds, for lockouts and token idle time (tests pass their own).
    :param guard: share one lockout state between servers (the site app does).
    """
    app = FastAPI(
        title=f"Nymi Enterprise Server simulator — {nes.name}",
        version="1",
        description=(__doc__ or "").split("\n\n", 1)[-1],
    )
    guard = guard or AuthGuard(limits, clock)
    app.state.nes = nes
    app.state.guard = guard
    app.state.tokens = TokenStore(token_idle_seconds, per_account=guard.limits.tokens_per_user,
                                  clock=guard.clock)
    app.add_middleware(BodyLimit, max_bytes=guard.limits.max_body_bytes)
    install_error_handlers(app)
    for router in (_session_routes(), _nba_routes(), _admin_user_routes(),
                   _admin_band_routes(), _admin_policy_routes()):
        app.include_router(router)
    from simulator.nes.web import create_console  # the console, beside the API

    app.router.routes.append(_ConsoleMount(list(app.router.routes),
                                           create_console(nes, idle_seconds=token_idle_seconds)))
    return app


class _ConsoleMount(Mount):
    """The console at ``/``, behind the API: a path the API knows (whatever the method) stays
    the API's, so a wrong method there is still a 405 with its ``Allow`` header."""

    def __init__(self, api_routes: list[BaseRoute], console: ASGIApp) -> None:
        super().__init__("/", app=console)
        self._api_routes = api_routes

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if any(route.matches(scope)[0] is not Match.NONE for route in self._api_routes):
            return Match.NONE, {}
        return super().matches(scope)


def create_site_app(site: Site, *, token_idle_seconds: float = 300.0,
                    limits: ApiLimits | None = None, clock: Clock | None = None) -> FastAPI:
    """Every NES of ``site`` under ``/<name>`` (e.g. ``/nes/api/v1/...``); the servers share
    one directory, so they share one lockout state too."""
    app = FastAPI(title="Nymi Enterprise Server simulator", version="1")
    guard = AuthGuard(limits, clock)
    app.add_middleware(BodyLimit, max_bytes=guard.limits.max_body_bytes)
    install_error_handlers(app)
    for name, nes in site.servers.items():
        app.mount(f"/{name}", create_app(nes, token_idle_seconds=token_idle_seconds,
                                         guard=guard))

    @app.get("/")
    def index() -> dict[str, Any]:
        return {"layout": site.layout.value,
                "servers": {name: f"/{name}{PREFIX}" for name in site.servers}}

    return app


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``app`` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info")
