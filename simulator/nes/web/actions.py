"""The console's forms (POST): sign-in and sign-out, and every administrator action.

Band and EAM actions go through a confirmation page; each form names the user whose page it
was, and the action is refused when the band or entry is not (or no longer) that user's, so a
stale page or an edited form changes nothing. Every change is made as the signed-in account,
which the audit trail records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from nymi_device.protocol.nes.errors import NesError
from nymi_device.protocol.nes.views import BandView
from simulator.nes.policy import self_service_changes
from simulator.nes.service import Nes
from simulator.nes.web.auth import LOGIN_COOKIE, SESSION_COOKIE, Role, role_of
from simulator.nes.web.common import (
    Refused,
    check_csrf,
    login_nonce,
    nes_of,
    read_form,
    redirect,
    refused_page,
    render,
    require,
    set_cookie,
    store_of,
)

router = APIRouter()
POLICY_SWITCHES = ("liveness_detection", "haptic_feedback", "band_label",
                   "band_label_customize", "corporate_credentials")
Run = Callable[[Nes, str, dict[str, str], str], Any]


@dataclass(frozen=True)
class BandAction:
    label: str
    question: str
    done: str
    run: Run
    notes: str | None = None
    """Default of the Notes field (None: the action takes no notes)."""
    needs_target: bool = False


BAND_ACTIONS: dict[str, BandAction] = {
    "suspend": BandAction(
        "Suspend", "Suspend {serial}? Is Active is cleared and Is Primary ticked: the band can "
        "no longer be used for tap tasks (its own fingerprint authentication is unaffected).",
        "Suspended {serial}.",
        lambda nes, s, f, a: nes.suspend(s, notes=f.get("notes") or None, actor=a), notes=""),
    "resume": BandAction(
        "Resume", "Resume {serial}? Is Active is ticked again (a user has one active band).",
        "Resumed {serial}.",
        lambda nes, s, f, a: nes.update_band(s, is_active=True, actor=a)),
    "disconnect": BandAction(
        "Disconnect", "Disconnect {serial} from its user? The association is deleted; the audit "
        "trail keeps its history.", "Disconnected {serial}.",
        lambda nes, s, f, a: nes.disconnect(s, actor=a)),
    "replace": BandAction(
        "Replace", "Replace {serial} (lost or broken)? Is Active and Is Primary are cleared; "
        "the band the user enrolls next becomes active and primary.",
        "{serial} is set aside as lost; the user can enroll a new band.",
        lambda nes, s, f, a: nes.replace_lost_band(s, notes=f.get("notes") or "Lost Band",
                                                   actor=a), notes="Lost Band"),
    "temporary": BandAction(
        "Temporary band", "Issue a temporary band in place of {serial}? It keeps Is Primary but "
        "is no longer active; the band the user enrolls next becomes active, not primary.",
        "{serial} is set aside; the user can enroll a temporary band.",
        lambda nes, s, f, a: nes.issue_temporary_band(
            s, notes=f.get("notes") or "Temporary band issued", actor=a),
        notes="Temporary band issued"),
    "restore": BandAction(
        "Restore", "Restore {serial}? The temporary band is disassociated and {serial} is "
        "active again.", "Restored {serial}.",
        lambda nes, s, f, a: nes.restore_original(s, actor=a)),
    "reassign": BandAction(
        "Reassign", "Reassign {serial} to another user? Do this only after Delete User Data on "
        "the band: it is disconnected and recorded as the new user's band.",
        "Reassigned {serial}.",
        lambda nes, s, f, a: nes.reassign(s, nes.resolve_account(f.get("to", "")), actor=a),
        needs_target=True),
}

EAM_ACTIONS: dict[str, tuple[str, str]] = {
    "blacklist": ("Blacklist", "Blacklist the {kind} entry {identifier}? An RFID or Wearable "
                  "entry takes its partner with it."),
    "delete": ("Delete", "Delete the {kind} entry {identifier}? An RFID or Wearable entry "
               "takes its blacklisted partner with it."),
}


def actions_for(band: Any) -> list[str]:
    """The actions that make sense for a row of User Properties (an AssignmentView)."""
    names = ["disconnect", "reassign"]
    if band.is_active:
        names[:0] = ["suspend", "replace", "temporary"]
    else:
        names[:0] = ["resume", "restore"] if band.is_primary else ["resume"]
    return names


def _owned(nes: Nes, serial: str, account: str) -> BandView:
    """The band, which must be ``account``'s (or nobody's when ``account`` is empty)."""
    band = nes.band(serial[:16])
    if (band.owner or "").casefold() != account.strip().casefold():
        whose = f"a Nymi Band of {account}" if account else "unassigned"
        raise Refused(409, f"The Nymi Band {band.serial} is not {whose} (the page may be "
                           "old): nothing was changed.")
    return band


def _back(band_owner: str | None, serial: str) -> tuple[str, dict[str, str]]:
    return ("/user", {"account": band_owner}) if band_owner else ("/band", {"serial": serial})


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    nonce = request.cookies.get(LOGIN_COOKIE)
    store = store_of(request)
    account = form.get("username", "").strip()[:200]

    def again(message: str, status: int) -> Response:
        response = render(request, "login.html", status, title="Sign in", error=message,
                          username=account, nonce=login_nonce(request),
                          next=form.get("next", ""))
        return response

    if not nonce or form.get("nonce") != nonce:
        return again("The sign-in form expired; please sign in again.", 403)
    if not account or store.locked(account):
        return again("Sign-in refused: unknown user, wrong password, or the account is locked "
                     "after repeated failures (try again later).", 401)
    user = nes_of(request).directory.authenticate(account, form.get("password", ""))
    if user is None:
        store.failed(account)
        return again("Sign-in refused: unknown user, wrong password, or the account is locked "
                     "after repeated failures (try again later).", 401)
    role = role_of(user)
    if role is None:
        return again(f"{user.account} is not a member of a group that may use the NES "
                     "Administrator Console.", 403)
    session = store.open(user.account, role)
    target = form.get("next", "")
    path = target[len(str(request.scope.get("root_path", ""))):] if target else "/users"
    if not path.startswith("/") or path.startswith("//") or path in ("/login", "/logout"):
        path = "/users"
    response = redirect(request, path)
    set_cookie(request, response, SESSION_COOKIE, session.token)
    response.delete_cookie(LOGIN_COOKIE, path=str(request.scope.get("root_path", "")) + "/")
    return response


@router.get("/login")
def login_page(request: Request, next: str = "") -> Response:
    nonce = login_nonce(request)
    response = render(request, "login.html", title="Sign in", nonce=nonce, next=next[:300],
                      username="", error=None, session=None)
    set_cookie(request, response, LOGIN_COOKIE, nonce, max_age=3600)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    try:
        form = await read_form(request)
        session = require(request, Role.READ_ONLY)
        check_csrf(session, form)
    except Refused as refused:
        return refused_page(request, refused)
    store_of(request).close(session.token)
    response = redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path=str(request.scope.get("root_path", "")) + "/")
    return response


@router.get("/confirm")
def confirm(request: Request, action: str = "", serial: str = "",
            account: str = "") -> Response:
    try:
        session = require(request, Role.ADMINISTRATOR)
        spec = BAND_ACTIONS.get(action)
        if spec is None:
            raise Refused(404, f"There is no band action {action!r}.")
        band = _owned(nes_of(request), serial, account)
    except Refused as refused:
        return refused_page(request, refused)
    except NesError as exc:
        return render(request, "message.html", 404, title="Not found", message=str(exc))
    return render(request, "confirm.html", session=session, title=f"{spec.label} {band.serial}",
                  action=action, spec=spec, band=band, account=account,
                  question=spec.question.format(serial=band.serial), error=None)


@router.post("/act")
async def act(request: Request) -> Response:
    form: dict[str, str] = {}
    try:
        form = await read_form(request)
        session = require(request, Role.ADMINISTRATOR)
        check_csrf(session, form)
        spec = BAND_ACTIONS.get(form.get("action", ""))
        if spec is None:
            raise Refused(404, f"There is no band action {form.get('action', '')!r}.")
        nes = nes_of(request)
        band = _owned(nes, form.get("serial", ""), form.get("account", ""))
        if spec.needs_target and not form.get("to", "").strip():
            raise Refused(422, "Name the user the band is reassigned to.")
        spec.run(nes, band.serial, form, session.account)
    except Refused as refused:
        return refused_page(request, refused)
    except NesError as exc:
        return render(request, "message.html", 409, title="Refused", message=str(exc))
    path, params = _back(band.owner, band.serial)
    return redirect(request, path, flash=spec.done.format(serial=band.serial), session=session,
                    **params)


def _checked(form: dict[str, str], name: str) -> bool:
    return form.get(name) == "on"


@router.post("/band/save")
async def band_save(request: Request) -> Response:
    try:
        form = await read_form(request)
        session = require(request, Role.ADMINISTRATOR)
        check_csrf(session, form)
        nes = nes_of(request)
        band = _owned(nes, form.get("serial", ""), form.get("account", ""))
        if band.owner is None:
            raise Refused(409, f"The Nymi Band {band.serial} is not assigned to anyone.")
        nes.update_band(band.serial, is_active=_checked(form, "is_active"),
                        is_primary=_checked(form, "is_primary"),
                        notes=form.get("notes", "")[:2000], actor=session.account)
    except Refused as refused:
        return refused_page(request, refused)
    except NesError as exc:
        return render(request, "message.html", 409, title="Refused", message=str(exc))
    return redirect(request, "/user", flash=f"Saved {band.serial}.", session=session,
                    account=band.owner)


def _entry(nes: Nes, account: str, entry: str) -> Any:
    try:
        wanted = int(entry)
    except ValueError:
        raise Refused(422, f"{entry!r} is not an EAM entry number.") from None
    found = next((e for e in nes.eam_entries(account) if e.id == wanted), None)
    if found is None:
        raise Refused(409, f"{account} has no EAM entry {wanted} (the page may be old): "
                           "nothing was changed.")
    return found


@router.get("/eam/confirm")
def eam_confirm(request: Request, action: str = "", entry: str = "",
                account: str = "") -> Response:
    try:
        session = require(request, Role.ADMINISTRATOR)
        if action not in EAM_ACTIONS:
            raise Refused(404, f"There is no EAM action {action!r}.")
        row = _entry(nes_of(request), account, entry)
    except Refused as refused:
        return refused_page(request, refused)
    except NesError as exc:
        return render(request, "message.html", 404, title="Not found", message=str(exc))
    label, question = EAM_ACTIONS[action]
    return render(request, "eam_confirm.html", session=session, title=f"{label} EAM entry",
                  action=action, label=label, entry=row, account=account,
                  question=question.format(kind=row.kind.value, identifier=row.identifier))


@router.post("/eam/act")
async def eam_act(request: Request) -> Response:
    try:
        form = await read_form(request)
        session = require(request, Role.ADMINISTRATOR)
        check_csrf(session, form)
        nes = nes_of(request)
        account = form.get("account", "")
        row = _entry(nes, account, form.get("entry", ""))
        if form.get("action") == "blacklist":
            nes.eam_blacklist(row.id, actor=session.account)
        elif form.get("action") == "delete":
            nes.eam_delete(row.id, actor=session.account)
        else:
            raise Refused(404, f"There is no EAM action {form.get('action', '')!r}.")
    except Refused as refused:
        return refused_page(request, refused)
    except NesError as exc:
        return render(request, "message.html", 409, title="Refused", message=str(exc))
    done = "Blacklisted" if form.get("action") == "blacklist" else "Deleted"
    return redirect(request, "/eam", flash=f"{done} the {row.kind.value} entry "
                    f"{row.identifier}.", session=session, account=row.account)


@router.post("/user/policy")
async def user_policy(request: Request) -> Response:
    try:
        form = await read_form(request)
        session = require(request, Role.ADMINISTRATOR)
        check_csrf(session, form)
        nes = nes_of(request)
        view = nes.user(form.get("account", ""))
        chosen = form.get("policy", "")
        nes.set_individual_policy(view.account, chosen or None, actor=session.account)
    except Refused as refused:
        return refused_page(request, refused)
    except NesError as exc:
        return render(request, "message.html", 409, title="Refused", message=str(exc))
    return redirect(request, "/user", flash="Individual User Policy saved; the policy status "
                    "is Pending until the user signs in wearing their band.", session=session,
                    account=view.account)


@router.post("/policies/save")
async def policy_save(request: Request) -> Response:
    try:
        form = await read_form(request)
        session = require(request, Role.ADMINISTRATOR)
        check_csrf(session, form)
        nes = nes_of(request)
        policy = nes.policy(form.get("name", ""))
        changes: dict[str, Any] = {}
        for name in POLICY_SWITCHES:
            value = form.get(name)
            if value in ("on", "off"):
                changes[name] = value == "on"
            elif value == "inherit":
                changes[name] = None
        mode = form.get("self_service")
        if mode == "inherit":
            changes.update(self_reenroll_own=None, self_reenroll_any=None)
        elif mode:
            changes.update(self_service_changes(mode))
        nes.update_policy(policy.name, changes, actor=session.account)
    except Refused as refused:
        return refused_page(request, refused)
    except NesError as exc:
        return render(request, "message.html", 409, title="Refused", message=str(exc))
    return redirect(request, "/policies", flash=f"Policy {policy.name!r} saved.",
                    session=session, name=policy.name)
