"""``nymi-band nfc …``: readers, and what a band tapped on one of them shows.

``nymi-band nfc readers`` lists the PC/SC readers and which of them hold a card.
``nymi-band nfc read`` waits for a band (spinner, ``--timeout``), then reads its identifier
(PC/SC GET DATA ``FF CA 00 00 00``), selects each applet a band may carry (FIDO, Secure NFC,
SEOS), asks the FIDO applet for getInfo, and says which band model and fixture that looks like.
``--reader`` takes a PC/SC reader name substring, or ``nfcpy:PATH`` for a reader driven by nfcpy.

The reading itself is :func:`read_card` (any APDU exchange) and :func:`read_nfc` (open, read,
close), so tests and other tools use it without the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from nymi_device.cli_support import emit_json
from nymi_device.errors import InvalidInputError
from nymi_device.protocol.apdu import (
    KNOWN_AIDS,
    SW,
    ApduFormatError,
    CommandApdu,
    ResponseApdu,
    tlv_items,
)

if TYPE_CHECKING:
    from fido2.ctap2.base import Info

__all__ = ["AppletReading", "NfcReading", "nfc_app", "read_card", "read_nfc"]

nfc_app = typer.Typer(help="NFC: PC/SC readers and what a tapped band shows.",
                      no_args_is_help=True)
console = Console(highlight=False)
status_console = Console(stderr=True, highlight=False)
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

Exchange = Callable[[CommandApdu], ResponseApdu]


@dataclass
class AppletReading:
    """How one applet answered its SELECT."""

    name: str
    aid: str
    status: str  # "answers", "refuses" (band not authenticated), "absent"
    sw: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class NfcReading:
    """What a band on a reader shows."""

    reader: str
    atr: str | None
    uid: str | None
    applets: list[AppletReading]
    aaguid: str | None = None
    versions: list[str] = field(default_factory=list)
    looks_like: str = "unknown card"
    fixtures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fci_value(fci: bytes, tag: int) -> bytes | None:
    """Value of ``tag`` inside ``6F { A5 { ... } }``, or None."""
    try:
        for outer, body in tlv_items(fci):
            if outer != 0x6F:
                continue
            for inner, value in tlv_items(body):
                if inner == 0xA5:
                    for item, data in tlv_items(value):
                        if item == tag:
                            return data
    except ApduFormatError:
        return None
    return None


def _select(exchange: Exchange, aid: bytes) -> ResponseApdu:
    return exchange(CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, le=256))


def _fido_info(exchange: Exchange) -> Info | None:
    from fido2 import cbor
    from fido2.ctap2.base import Info

    answer = exchange(CommandApdu(0x80, 0x10, 0x00, 0x00, b"\x04", le=256))
    if answer.sw != SW.OK or not answer.data or answer.data[0] != 0:
        return None
    try:
        decoded = cbor.decode(answer.data[1:])
        return Info.from_dict(decoded) if isinstance(decoded, dict) else None
    except Exception:
        return None


def read_card(exchange: Exchange, *, reader: str, atr: bytes | None,
              uid: bytes | None = None) -> NfcReading:
    """Probe the card behind ``exchange`` (which follows ``61xx`` itself)."""
    if uid is None:
        answer = exchange(CommandApdu(0xFF, 0xCA, 0x00, 0x00, le=256))
        uid = answer.data if answer.sw == SW.OK and answer.data else None
    reading = NfcReading(reader, atr.hex().upper() if atr else None,
                         uid.hex().upper() if uid else None, [])
    for name, aid in KNOWN_AIDS.items():
        answer = _select(exchange, aid)
        status = {SW.OK: "answers", SW.SECURITY_STATUS_NOT_SATISFIED: "refuses"}.get(
            SW(answer.sw), "absent")
        applet = AppletReading(name, aid.hex().upper(), status, f"{answer.sw:04X}")
        if status == "answers":
            if name == "fido":
                applet.details["select"] = answer.data.decode(errors="replace")
                info = _fido_info(exchange)
                if info is not None:
                    reading.aaguid = str(info.aaguid)
                    reading.versions = list(info.versions)
            elif name == "secure-nfc":
                identifier = _fci_value(answer.data, 0xC1)
                applet.details["identifier"] = identifier.hex().upper() if identifier else None
            elif name == "seos":
                container = _fci_value(answer.data, 0xC1)
                applet.details["container_id"] = container.hex().upper() if container else None
                applet.details["bound_to_user"] = _fci_value(answer.data, 0xC2) is not None
        reading.applets.append(applet)
    _recognise(reading)
    return reading


def _recognise(reading: NfcReading) -> None:
    """Name the band model and the fixtures it is consistent with."""
    from hosttools.site import band_models  # the models a reading can be matched to

    present = {a.name for a in reading.applets if a.status != "absent"}
    candidates = []
    for fixture in band_models():
        caps = fixture.capabilities
        aaguid = fixture.ctap.aaguid if fixture.ctap else None
        if reading.aaguid is not None and aaguid != reading.aaguid:
            continue
        if ("fido" in present) != (fixture.ctap is not None):
            continue
        if ("seos" in present) != caps.seos or ("secure-nfc" in present) != caps.secure_nfc:
            continue
        candidates.append(fixture)
    reading.fixtures = [f.id for f in candidates]
    models = sorted({f.identity.model_name for f in candidates})
    if not present:
        reading.looks_like = ("a card with no band applet (a Nymi Band 2.0 shows only its UID; "
                              "so does any other contactless card)")
    elif models:
        reading.looks_like = " or ".join(models)
    elif reading.aaguid:
        reading.looks_like = f"a FIDO authenticator (AAGUID {reading.aaguid})"


def read_nfc(reader: str = "", *, timeout: float = 0.0) -> NfcReading:
    """Open the band on ``reader`` (PC/SC name substring, or ``nfcpy:PATH``), read, close."""
    if reader.startswith("nfcpy:"):
        from nymi_device.transport.nfcpy_transport import open_nfcpy

        with open_nfcpy(reader.removeprefix("nfcpy:"), timeout=max(timeout, 0.1)) as card:
            return read_card(card.exchange, reader=card.name, atr=None, uid=card.identifier)
    from nymi_device.transport.pcsc import open_connection, wait_for_card

    if timeout > 0:
        reader = wait_for_card(reader, timeout=timeout).name
    with open_connection(reader) as connection:
        return read_card(connection.exchange, reader=connection.reader, atr=connection.atr)


# -- commands ------------------------------------------------------------------------------------

def _default_reader(ctx: typer.Context, reader: str | None) -> str:
    if reader is not None:
        return reader
    target = getattr(ctx.obj, "target", None) or ""
    if target.startswith(("pcsc:", "nfcpy:")):
        return target.removeprefix("pcsc:")
    if target:
        raise InvalidInputError(f"nfc commands read a band on a reader; target {target!r} is "
                                "not pcsc:READER or nfcpy:PATH (use --reader)")
    return ""


@nfc_app.command("readers")
def nfc_readers(as_json: Json = False) -> None:
    """PC/SC readers, and which of them hold a card."""
    from nymi_device.transport.pcsc import list_readers

    readers = list_readers()
    if as_json:
        emit_json([r.to_dict() for r in readers])
        return
    if not readers:
        console.print("no PC/SC reader (is a reader plugged in, or the simulator's vpcd loaded?)")
        return
    table = Table(title="PC/SC readers", title_justify="left")
    table.add_column("reader")
    table.add_column("card")
    table.add_column("ATR")
    for r in readers:
        table.add_row(r.name, "yes" if r.has_card else "-", r.atr.hex().upper() if r.atr else "")
    console.print(table)


@nfc_app.command("read")
def nfc_read(
    ctx: typer.Context,
    reader: Annotated[str | None, typer.Option(
        "--reader", "-r", help="PC/SC reader name (substring; default: the first reader holding "
        "a card), or nfcpy:PATH.")] = None,
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for a band to be tapped.", min=0.0)] = 10.0,
    as_json: Json = False,
) -> None:
    """Identifier, applets and model of the band on a reader."""
    name = _default_reader(ctx, reader)
    where = name or "any reader"
    with status_console.status(f"Waiting for a band on {where}…", spinner="dots"):
        reading = read_nfc(name, timeout=timeout)
    if as_json:
        emit_json(reading.to_dict())
        return
    table = Table(show_header=False, title=f"Band on {reading.reader}", title_justify="left")
    table.add_row("identifier (UID)", reading.uid or "-")
    table.add_row("ATR", reading.atr or "-")
    for applet in reading.applets:
        detail = ", ".join(f"{k} {v}" for k, v in applet.details.items() if v is not None)
        text = {"answers": "answers", "refuses": "refuses (band not authenticated on the wrist)",
                "absent": "not present"}[applet.status]
        table.add_row(f"{applet.name} applet", f"{text}{'; ' + detail if detail else ''}")
    if reading.aaguid:
        table.add_row("FIDO AAGUID", reading.aaguid)
        table.add_row("FIDO versions", ", ".join(reading.versions))
    table.add_row("looks like", reading.looks_like)
    table.add_row("fixtures", ", ".join(reading.fixtures) or "-")
    console.print(table)
