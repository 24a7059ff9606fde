"""The console's pages (GET): Users, User Properties, Nymi Band, Bands, Policies, EAM, Audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from nymi_device.protocol.nes.errors import NesError, NotFound
from simulator.nes.models import PolicyKind
from simulator.nes.policy import OPTION_LABELS, SELF_SERVICE_MODES, self_service_mode
from simulator.nes.web.actions import BAND_ACTIONS, EAM_ACTIONS, POLICY_SWITCHES, actions_for
from simulator.nes.web.auth import Role
from simulator.nes.web.common import Refused, nes_of, redirect, refused_page, render, require
from simulator.nes.web.queries import (
    AUDIT_OPS,
    BAND_STATES,
    AuditFilter,
    audit_csv,
    audit_rows,
    live_stamp,
    search_bands,
)

PAGE_SIZES = (10, 20, 50)
router = APIRouter()


def _int(text: str | None, default: int, allowed: tuple[int, ...] | None = None) -> int:
    try:
        value = int(text or default)
    except ValueError:
        return default
    if allowed is not None and value not in allowed:
        return default
    return max(value, 0)


def _time(text: str | None, field: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Refused(422, f"{field}: {text!r} is not a date and time "
                           "(YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("/")
def home(request: Request) -> Response:
    try:
        session = require(request, Role.READ_ONLY)
    except Refused as refused:
        return refused_page(request, refused)
    return redirect(request, "/users", session=session)


@router.get("/users")
def users(request: Request, q: str = "", size: str = "10", page: str = "0") -> Response:
    try:
        session = require(request, Role.READ_ONLY)
        per_page, number = _int(size, 10, PAGE_SIZES), _int(page, 0)
        found = nes_of(request).users(q[:200], limit=per_page + 1, offset=number * per_page)
    except Refused as refused:
        return refused_page(request, refused)
    return render(request, "users.html", session=session, title="Users", q=q,
                  users=found[:per_page], more=len(found) > per_page, size=per_page,
                  page=number, sizes=PAGE_SIZES)


@router.get("/user")
def user(request: Request, account: str = "") -> Response:
    try:
        session = require(request, Role.READ_ONLY)
        nes = nes_of(request)
        view = nes.user(account)
        keys = nes.fido2_keys(view.account)
        policies = [p.name for p in nes.policies() if p.kind is PolicyKind.INDIVIDUAL]
    except Refused as refused:
        return refused_page(request, refused)
    except NotFound as exc:
        return render(request, "message.html", 404, title="Not found", message=str(exc))
    return render(request, "user.html", session=session, title=f"User Properties: "
                  f"{view.account}", user=view, keys=keys, policies=policies,
                  actions=BAND_ACTIONS, actions_for=actions_for,
                  can_act=session.role >= Role.ADMINISTRATOR,
                  can_see_eam=session.role >= Role.HELP_DESK)


@router.get("/band")
def band(request: Request, serial: str = "") -> Response:
    try:
        session = require(request, Role.READ_ONLY)
        view = nes_of(request).band(serial[:16])
    except Refused as refused:
        return refused_page(request, refused)
    except NesError as exc:
        return render(request, "message.html", 404, title="Not found", message=str(exc))
    return render(request, "band.html", session=session, title=f"Nymi Band {view.serial}",
                  band=view, actions=BAND_ACTIONS, actions_for=actions_for,
                  can_act=session.role >= Role.ADMINISTRATOR)


@router.get("/bands")
def bands(request: Request, serial: str = "", owner: str = "", state: str = "") -> Response:
    try:
        session = require(request, Role.READ_ONLY)
        state = state if state in BAND_STATES else ""
        found = search_bands(nes_of(request), serial=serial[:16], owner=owner[:200],
                             state=state)
    except Refused as refused:
        return refused_page(request, refused)
    return render(request, "bands.html", session=session, title="Nymi Bands", bands=found,
                  serial=serial, owner=owner, state=state, states=BAND_STATES)


@router.get("/policies")
def policies(request: Request, name: str = "") -> Response:
    try:
        session = require(request, Role.READ_ONLY)
        nes = nes_of(request)
        listed = nes.policies()
        chosen = next((p for p in listed if p.name == name), None) or next(
            p for p in listed if p.kind is PolicyKind.GROUP and p.is_active)
    except Refused as refused:
        return refused_page(request, refused)
    return render(request, "policies.html", session=session, title="Policies",
                  policies=listed, policy=chosen, labels=OPTION_LABELS,
                  switches=POLICY_SWITCHES, modes=SELF_SERVICE_MODES,
                  mode=self_service_mode(chosen.values),
                  can_act=session.role >= Role.ADMINISTRATOR)


@router.get("/eam")
def eam(request: Request, account: str = "") -> Response:
    try:
        session = require(request, Role.HELP_DESK)
        nes = nes_of(request)
        view = nes.user(account)
        entries = nes.eam_entries(view.account)
    except Refused as refused:
        return refused_page(request, refused)
    except NotFound as exc:
        return render(request, "message.html", 404, title="Not found", message=str(exc))
    return render(request, "eam.html", session=session, title=f"EAM registry: {view.account}",
                  user=view, entries=entries, actions=EAM_ACTIONS,
                  can_act=session.role >= Role.ADMINISTRATOR)


def _audit_filter(params: dict[str, str]) -> AuditFilter:
    return AuditFilter(user=params.get("user", "")[:200], band=params.get("band", "")[:16],
                       action=params.get("action", ""), table=params.get("table", "")[:64],
                       since=_time(params.get("since"), "From"),
                       until=_time(params.get("until"), "To"))


@router.get("/audit")
def audit(request: Request) -> Response:
    try:
        session = require(request, Role.HELP_DESK)
        params = dict(request.query_params)
        rows = audit_rows(nes_of(request), _audit_filter(params))
    except Refused as refused:
        return refused_page(request, refused)
    return render(request, "audit.html", session=session, title="Audit", rows=rows,
                  f=params, ops=AUDIT_OPS, csv_query=request.url.query)


@router.get("/audit.csv")
def audit_export(request: Request) -> Response:
    try:
        require(request, Role.HELP_DESK)
        rows = audit_rows(nes_of(request), _audit_filter(dict(request.query_params)),
                          limit=100_000)
    except Refused as refused:
        return refused_page(request, refused)
    name = f"nes-audit-{nes_of(request).name}.csv"
    return PlainTextResponse(audit_csv(rows), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"',
                                      "Cache-Control": "no-store"})


@router.get("/live")
def live(request: Request) -> Response:
    """What the pages poll: a stamp that changes whenever anything audited changes."""
    try:
        require(request, Role.READ_ONLY)
    except Refused as refused:
        return JSONResponse({"error": refused.message}, status_code=refused.status)
    body: dict[str, Any] = {"stamp": live_stamp(nes_of(request))}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
