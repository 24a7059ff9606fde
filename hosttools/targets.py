"""Which commands work with which target, and the FIDO2 surface of any target.

A target's scheme decides what a command can reach:

- ``sim:SERIAL`` and ``ble:ADDRESS`` reach the whole band (identity, status, event log, the
  enrollment channel, FIDO2), so every command works with them;
- ``udp:HOST:PORT[/REPLYPORT]``, ``pcsc:[READER]`` and ``nfcpy:PATH`` reach only the band's
  FIDO2 authenticator: ``info`` and ``status`` show what that surface offers (getInfo: AAGUID,
  versions, options, firmware), the ``fido2`` commands work, and ``nfc`` reads a band on a reader.

A command that makes no sense for a target fails with one line naming the commands that work
with it (:func:`require_scheme`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nymi_device.errors import InvalidTargetError

if TYPE_CHECKING:
    from fido2.ctap import CtapDevice

__all__ = ["BAND_SCHEMES", "COMMANDS_FOR", "FIDO2_SCHEMES", "fido2_surface",
           "open_fido2_device", "require_scheme", "scheme_of"]

#: Schemes that reach the whole band.
BAND_SCHEMES = ("sim", "ble")
#: Schemes that reach only the band's FIDO2 authenticator.
FIDO2_SCHEMES = ("udp", "pcsc", "nfcpy")

_FIDO2_ONLY = ("info", "status", "fido2 info", "fido2 credentials", "nfc read")
#: scheme → the commands that work with a target of that scheme.
COMMANDS_FOR: dict[str, tuple[str, ...]] = {
    "sim": ("info", "status", "enroll", "register", "reenroll", "delete-user-data",
            "fido2 info", "fido2 credentials", "fido2 create-key", "fido2 verify"),
    "ble": ("info", "status", "scan", "watch", "enroll", "register", "reenroll",
            "delete-user-data", "fido2 info", "fido2 credentials", "fido2 create-key",
            "fido2 verify"),
    "udp": _FIDO2_ONLY[:4],
    "pcsc": _FIDO2_ONLY,
    "nfcpy": _FIDO2_ONLY,
}


def scheme_of(target: str) -> str:
    """The scheme of ``target`` (``pcsc:`` alone is the first reader holding a band)."""
    scheme, sep, _ = target.partition(":")
    if not sep or not scheme:
        raise InvalidTargetError(
            f"target {target!r} is not of the form SCHEME:ADDRESS (e.g. sim:AAAH-00125, "
            "ble:AA:BB:CC:DD:EE:FF, udp:127.0.0.1:8111, pcsc:)")
    scheme = scheme.lower()
    if scheme not in COMMANDS_FOR:
        raise InvalidTargetError(
            f"unknown target scheme {scheme!r} in {target!r} (known: "
            f"{', '.join(COMMANDS_FOR)})")
    return scheme


def require_scheme(target: str, command: str, allowed: tuple[str, ...]) -> str:
    """The scheme of ``target`` if ``command`` works with it; else one line naming the commands
    that do."""
    scheme = scheme_of(target)
    if scheme not in allowed:
        works = ", ".join(COMMANDS_FOR[scheme])
        raise InvalidTargetError(
            f"'{command}' does not work with a {scheme}: target ({target}), which reaches only "
            f"the band's FIDO2 authenticator; with {scheme}: use {works}")
    return scheme


@contextlib.contextmanager
def open_fido2_device(target: str, *, sim_dir: Path | None = None,
                      band_options: dict[str, Any] | None = None,
                      hci: str | None = None) -> Iterator[CtapDevice]:
    """The band's authenticator behind ``target`` as a python-fido2 ``CtapDevice``, any scheme.

    ``sim:`` and ``ble:`` targets open the band and ask it for its authenticator; the FIDO2
    schemes open the transport directly.
    """
    scheme = scheme_of(target)
    if scheme in BAND_SCHEMES:
        from nymi_device.sync import SyncBand

        with SyncBand(target, **(band_options or {})) as band:
            device = band.fido2_device()
            try:
                yield device
            finally:
                device.close()
        return
    from nymi_device.fido import open_ctap_device

    options = {"hci": hci} if hci and scheme == "ble" else {}
    device = open_ctap_device(target, **options)
    try:
        yield device
    finally:
        device.close()


def fido2_surface(device: CtapDevice, target: str) -> dict[str, Any]:
    """What a FIDO2-only target offers for ``info`` / ``status``: its getInfo, decoded."""
    from fido2.ctap2.base import Ctap2

    info = Ctap2(device).get_info()
    return {
        "target": target,
        "surface": "FIDO2 authenticator",
        "aaguid": str(info.aaguid),
        "versions": list(info.versions),
        "firmware_version": info.firmware_version,
        "options": {str(k): bool(v) for k, v in info.options.items()},
        "extensions": list(info.extensions),
        "transports": list(info.transports),
        "remaining_discoverable_credentials": info.remaining_disc_creds,
    }
