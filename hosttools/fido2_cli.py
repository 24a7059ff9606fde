"""``nymi-band fido2 …``: the band's FIDO2 authenticator through python-fido2, any transport."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2
from fido2.ctap2.credman import CredentialManagement
from fido2.ctap2.pin import ClientPin
from rich.console import Console
from rich.table import Table

from nymi_device.errors import BandUnreachableError, InvalidInputError
from nymi_device.fido import get_uv_token, open_ctap_device
from simulator.cli_common import emit_json

fido2_app = typer.Typer(help="The band's FIDO2 authenticator (getInfo, credentials).",
                        no_args_is_help=True)
console = Console(highlight=False)
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _target(ctx: typer.Context) -> str:
    opts = ctx.obj
    target: str | None = getattr(opts, "target", None)
    if not target:
        raise InvalidInputError("fido2 commands need --target (e.g. --target udp:127.0.0.1:8111)")
    return target


def _open(ctx: typer.Context) -> Any:
    target = _target(ctx)
    hci = getattr(ctx.obj, "hci", None)
    options = {"hci": hci} if hci and target.startswith("ble:") else {}
    return open_ctap_device(target, **options)


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
    device = _open(ctx)
    try:
        data = _info_dict(Ctap2(device).get_info())
    finally:
        device.close()
    if as_json:
        emit_json(data)
        return
    table = Table(show_header=False, title="FIDO2 authenticator", title_justify="left")
    for key, value in data.items():
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)


@fido2_app.command("credentials")
def fido2_credentials(
    ctx: typer.Context,
    pin: Annotated[str | None, typer.Option(help="The authenticator's PIN, if it has one.")]
    = None,
    as_json: Json = False,
) -> None:
    """Discoverable credentials per relying party (credential management)."""
    device = _open(ctx)
    try:
        ctap2 = Ctap2(device)
        info = ctap2.get_info()
        if not CredentialManagement.is_supported(info):
            raise InvalidInputError("this authenticator does not support credential management")
        permissions = ClientPin.PERMISSION.CREDENTIAL_MGMT
        client_pin = ClientPin(ctap2)
        if pin is not None:
            token = client_pin.get_pin_token(pin, permissions)
        elif info.options.get("uv"):
            token = get_uv_token(client_pin, permissions)
        else:
            raise InvalidInputError("credential management needs --pin on this authenticator")
        credman = CredentialManagement(ctap2, client_pin.protocol, token)
        meta = credman.get_metadata()
        rows: list[dict[str, Any]] = []
        for rp in credman.enumerate_rps() if meta.get(1, 0) else []:
            rp_entity, rp_hash = rp[3], rp[4]
            for cred in credman.enumerate_creds(rp_hash):
                user = cred[6]
                rows.append({"rp_id": rp_entity["id"], "user_name": user.get("name"),
                             "user_id": bytes(user["id"]).hex(),
                             "credential_id": bytes(cred[7]["id"]).hex()})
    except CtapError as exc:
        raise BandUnreachableError(f"the authenticator refused: {exc}") from None
    finally:
        device.close()
    if as_json:
        emit_json({"existing": meta.get(1, 0), "remaining": meta.get(2), "credentials": rows})
        return
    table = Table("Relying party", "User", "Credential id")
    for row in rows:
        table.add_row(row["rp_id"], str(row["user_name"]), row["credential_id"][:32] + "…")
    console.print(table if rows else "no discoverable credentials")
    console.print(f"{meta.get(2)} more can be stored")
