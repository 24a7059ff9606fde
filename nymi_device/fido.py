"""FIDO2 access to a band, whatever carries it: a python-fido2 ``CtapDevice`` from a target moniker.

Everything above the transport (``fido2.ctap2.Ctap2``, ``ClientPin``, ``CredentialManagement``,
``fido2.client.Fido2Client``) sees only ``CtapDevice.call``, so the same code runs over every
transport::

    from fido2.ctap2 import Ctap2
    with open_ctap_device("udp:127.0.0.1:8111") as device:
        print(Ctap2(device).get_info().aaguid)

Supported schemes:

``udp:HOST:PORT[/REPLYPORT]``
    CTAPHID over UDP (the simulated band's ``--ctaphid-udp`` front end, or any FIDO2 simulator
    with the same contract). Reports come back to local UDP port ``REPLYPORT`` (default 7112, or
    option ``local_port``).

``pcsc:READER``
    CTAP over NFC through any PC/SC reader (python-fido2's ``fido2.pcsc.CtapPcscDevice``,
    unchanged): ``READER`` is a substring of the reader's name, ``pcsc:`` alone the first reader
    holding a card. Option ``timeout`` (seconds) waits for a band to be tapped.

``nfcpy:PATH``
    CTAP over NFC through a reader nfcpy drives directly (``nfcpy:usb``, ``nfcpy:tty:USB0:pn532``,
    ``nfcpy:udp:HOST:PORT`` for nfcpy's simulation link), again through ``CtapPcscDevice``.
    Option ``timeout`` (seconds, default 10) waits for a band to be tapped.

``ble:ADDRESS``
    FIDO over Bluetooth LE (CTAP 2.1 §11.4) with bleak: the operating system's stack by default,
    or a Bumble host on option ``hci`` (``tcp-client:127.0.0.1:PORT`` for the simulator's virtual
    radio, ``usb:0`` for a dongle). The band is found by its advertisement, connected and paired
    (LE Secure Connections) before this returns. Option ``timeout`` (seconds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fido2.ctap import CtapDevice
from fido2.ctap2.pin import ClientPin

from nymi_device.backend import parse_target
from nymi_device.errors import InvalidTargetError
from nymi_device.transport.udp_hid import (
    DEFAULT_LOCAL_PORT,
    DEFAULT_TIMEOUT,
    open_udp_hid_device,
)

__all__ = ["get_uv_token", "open_ctap_device", "parse_udp_address", "supported_schemes"]


def parse_udp_address(address: str) -> tuple[str, int, int | None]:
    """``HOST:PORT[/REPLYPORT]`` → (host, port, reply port or ``None``).

    :raises InvalidTargetError: if a port is missing or not a number in 1..65535.
    """
    rest, slash, reply_text = address.partition("/")
    host, sep, port_text = rest.rpartition(":")
    ports = [port_text] + ([reply_text] if slash else [])
    if not sep or not host or not all(p.isdigit() and 0 < int(p) < 65536 for p in ports):
        raise InvalidTargetError(
            f"udp target {address!r} is not of the form HOST:PORT[/REPLYPORT] "
            "(e.g. udp:127.0.0.1:8111, or udp:127.0.0.1:46211/46212 to be answered on 46212)"
        )
    return host, int(port_text), int(reply_text) if slash else None


def _open_pcsc(address: str, **options: Any) -> CtapDevice:
    from nymi_device.transport.pcsc import open_ctap_pcsc  # pyscard is needed only here

    return open_ctap_pcsc(address, **options)


def _open_ble(address: str, **options: Any) -> CtapDevice:
    from nymi_device.transport.ble import open_ble_ctap_device  # bleak and Bumble only here

    return open_ble_ctap_device(address, **options)


def _open_nfcpy(address: str, **options: Any) -> CtapDevice:
    from nymi_device.transport.nfcpy_transport import open_ctap_nfcpy  # nfcpy only here

    return open_ctap_nfcpy(address, **options)


def _open_udp(
    address: str,
    *,
    local_port: int = DEFAULT_LOCAL_PORT,
    timeout: float = DEFAULT_TIMEOUT,
    **unknown: Any,
) -> CtapDevice:
    if unknown:
        raise InvalidTargetError(f"unknown udp option(s): {', '.join(sorted(unknown))}")
    host, port, reply = parse_udp_address(address)
    return open_udp_hid_device(host, port, local_port=reply or local_port, timeout=timeout)


#: scheme → opener(address, **options). Each opener imports its transport's optional dependencies
#: itself, so a missing extra fails only when that scheme is used.
_OPENERS: dict[str, Callable[..., CtapDevice]] = {
    "ble": _open_ble,
    "nfcpy": _open_nfcpy,
    "pcsc": _open_pcsc,
    "udp": _open_udp,
}


def supported_schemes() -> list[str]:
    """Target schemes :func:`open_ctap_device` understands."""
    return sorted(_OPENERS)


def open_ctap_device(target: str, **options: Any) -> CtapDevice:
    """Open a python-fido2 ``CtapDevice`` on the band named by ``target``.

    :param target: a moniker ``SCHEME:ADDRESS``, e.g. ``udp:127.0.0.1:8111`` or ``pcsc:``.
    :param options: transport options (for ``udp``: ``local_port``, ``timeout``; for ``pcsc``:
        ``timeout``; for ``nfcpy``: ``timeout``; for ``ble``: ``hci``, ``timeout``).
    :raises InvalidTargetError: if the moniker cannot be parsed or its scheme is not supported.
    :raises BandUnreachableError: if the band does not answer.
    """
    if target.lower() == "pcsc:":  # the only scheme whose address may be empty
        scheme, address = "pcsc", ""
    else:
        scheme, address = parse_target(target)
    opener = _OPENERS.get(scheme)
    if opener is None:
        raise InvalidTargetError(
            f"no FIDO2 transport for {scheme!r} (supported: {', '.join(supported_schemes())})"
        )
    return opener(address, **options)


def get_uv_token(
    client_pin: ClientPin,
    permissions: ClientPin.PERMISSION,
    permissions_rpid: str | None = None,
) -> bytes:
    """A pinUvAuthToken from the authenticator's built-in user verification.

    Like python-fido2's ``ClientPin.get_uv_token``, but also for Nymi bands, which grant the token
    from their wrist authentication without listing ``pinUvAuthToken`` in getInfo (their metadata
    lists ``credMgmt`` and no ``clientPin``; see docs/fixtures.md).
    """
    peer = client_pin.ctap.client_pin(client_pin.protocol.VERSION,
                                      ClientPin.CMD.GET_KEY_AGREEMENT)
    key_agreement, shared_secret = client_pin.protocol.encapsulate(
        peer[ClientPin.RESULT.KEY_AGREEMENT])
    response = client_pin.ctap.client_pin(
        client_pin.protocol.VERSION,
        ClientPin.CMD.GET_TOKEN_USING_UV,
        key_agreement=key_agreement,
        permissions=permissions,
        permissions_rpid=permissions_rpid,
    )
    token_enc = response[ClientPin.RESULT.PIN_UV_TOKEN]
    return client_pin.protocol.validate_token(client_pin.protocol.decrypt(shared_secret, token_enc))
