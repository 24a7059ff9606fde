"""``nymi-band fido2 …``: the band's FIDO2 authenticator through python-fido2, any transport.

Every target reaches it: ``sim:`` and ``ble:`` through the band, ``udp:``, ``pcsc:`` and
``nfcpy:`` directly. Credential IDs and user IDs are shown base64url, as WebAuthn shows them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nymi_device.cli_support import emit_json, human
from nymi_device.errors import BandUnreachableError, FeatureUnavailableError, InvalidInputError

if TYPE_CHECKING:
    from fido2.ctap import CtapDevice

fido2_app = typer.Typer(help="The band's FIDO2 authenticator (getInfo, credentials).",
                        no_args_is_help=True)
console = Console(highlight=False)
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _target(ctx: typer.Context) -> str:
    opts = ctx.obj
    target: str | None = getattr(opts, "target", None)
    if not target:
        raise InvalidInputError("fido2 commands need --target (e.g. --target sim:AAAH-00125, "
                                "udp:127.0.0.1:8111 or pcsc:)")
    return target


@contextlib.contextmanager
def _open(ctx: typer.Context) -> Iterator[CtapDevice]:
    from hosttools.targets import open_fido2_device

    opts = ctx.obj
    band_options = opts.band_options() if hasattr(opts, "band_options") else {}
    with open_fido2_device(_target(ctx), band_options=band_options,
                           hci=getattr(opts, "hci", None)) as device:
        yield device


def _info_dict(info: Any) -> dict[str, Any]:
    return {
        "versions": list(info.versions),
        "extensions": list(info.extensions),
        "aaguid": str(info.aaguid),
        "options": dict(info.options),
        "max_msg_size": info.max_msg_size,
        "pin_uv_protocols": list(info.pin_uv_protocols),
        "max_creds_in_list": info.max_creds_in_list,
        "max_cred_id_length": info.max_cred_id_length,
        "transports": list(info.transports),
        "algorithms": [a.get("alg") for a in info.algorithms or []],
    }


@fido2_app.command("info")
def fido2_info(ctx: typer.Context, as_json: Json = False) -> None:
    """authenticatorGetInfo, decoded."""
    from fido2.ctap2.base import Ctap2

    with _open(ctx) as device:
        data = _info_dict(Ctap2(device).get_info())
    if as_json:
        emit_json(data)
        return
    table = Table(show_header=False, title="FIDO2 authenticator", title_justify="left")
    for key, value in data.items():
        table.add_row(key.replace("_", " "), escape(human(value)))
    console.print(table)


def _token(ctap2: Any, info: Any, pin: str | None) -> tuple[Any, bytes]:
    """The client PIN protocol and a credential-management token (PIN, or built-in UV)."""
    from fido2.ctap2.pin import ClientPin

    from nymi_device.fido import get_uv_token

    permissions = ClientPin.PERMISSION.CREDENTIAL_MGMT
    if pin is not None and "clientPin" not in info.options:
        raise FeatureUnavailableError(
            "this authenticator has no PIN (its getInfo lists no clientPin): run "
            "'fido2 credentials' without --pin; it verifies the user itself")
    client_pin = ClientPin(ctap2)
    if pin is not None:
        return client_pin.protocol, client_pin.get_pin_token(pin, permissions)
    if info.options.get("uv"):
        return client_pin.protocol, get_uv_token(client_pin, permissions)
    raise InvalidInputError("credential management needs --pin on this authenticator")


@fido2_app.command("credentials")
def fido2_credentials(
    ctx: typer.Context,
    pin: Annotated[str | None, typer.Option(help="The authenticator's PIN, if it has one.")]
    = None,
    as_json: Json = False,
) -> None:
    """Discoverable credentials per relying party (credential management)."""
    from fido2.ctap import CtapError
    from fido2.ctap2.base import Ctap2
    from fido2.ctap2.credman import CredentialManagement

    from nymi_device.protocol.text import b64url

    with _open(ctx) as device:
        try:
            ctap2 = Ctap2(device)
            info = ctap2.get_info()
            if not CredentialManagement.is_supported(info):
                raise FeatureUnavailableError(
                    "this authenticator does not support credential management")
            protocol, token = _token(ctap2, info, pin)
            credman = CredentialManagement(ctap2, protocol, token)
            meta = credman.get_metadata()
            rows: list[dict[str, Any]] = []
            for rp in credman.enumerate_rps() if meta.get(1, 0) else []:
                rp_entity, rp_hash = rp[3], rp[4]
                for cred in credman.enumerate_creds(rp_hash):
                    user = cred[6]
                    rows.append({"rp_id": rp_entity["id"], "user_name": user.get("name"),
                                 "user_id": b64url(bytes(user["id"])),
                                 "credential_id": b64url(bytes(cred[7]["id"]))})
        except CtapError as exc:
            raise BandUnreachableError(f"the authenticator refused: {_ctap_text(exc)}"
                                       f"{_ctap_hint(exc, pin)}") from None
    if as_json:
        emit_json({"existing": meta.get(1, 0), "remaining": meta.get(2), "credentials": rows})
        return
    table = Table("Relying party", "User", "Credential ID (base64url)")
    for row in rows:
        table.add_row(escape(row["rp_id"]), escape(human(row["user_name"])),
                      row["credential_id"])
    console.print(table if rows else "no discoverable credentials")
    console.print(f"{human(meta.get(2))} more can be stored")


def _ctap_text(exc: Any) -> str:
    code = getattr(exc, "code", None)
    name = getattr(code, "name", None)
    return f"{name} (0x{int(code):02X})" if name and code is not None else str(exc)


def _ctap_hint(exc: Any, pin: str | None) -> str:
    name = getattr(getattr(exc, "code", None), "name", "")
    if name == "PIN_NOT_SET":
        return "; its PIN is not set: set one first, or run without --pin"
    if name == "PIN_INVALID":
        return "; the PIN is wrong (a few more wrong PINs block the authenticator)"
    if name in ("PIN_BLOCKED", "PIN_AUTH_BLOCKED"):
        return "; the PIN is blocked: power-cycle the band, or reset the authenticator"
    if name in ("OPERATION_DENIED", "UV_INVALID", "NOT_ALLOWED"):
        return "; the band must be worn and authenticated (put it on and touch the sensor)"
    return ""
