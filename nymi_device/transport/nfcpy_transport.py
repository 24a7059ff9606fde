"""ISO-DEP through nfcpy: the band on a USB reader that nfcpy drives directly (no pcscd).

nfcpy talks to a reader's chip itself (PN533, RC-S380, ACR122U, ... by path ``usb``,
``usb:VID:PID``, ``tty:USB0:pn532``) and does ISO/IEC 14443-4 framing in Python, so a band can be
read where no PC/SC stack is installed. nfcpy's UDP simulation link (``udp:HOST:PORT``) carries
the same frames between two processes, which is how this module is tested against the simulated
band's ISO-DEP layer::

    with open_nfcpy("usb", timeout=10) as band:        # waits for a tap
        print(band.identifier.hex(), band.transmit(bytes.fromhex("00A4040008A0000006472F0001")))

    device = open_ctap_nfcpy("usb")                     # python-fido2's CtapPcscDevice over it

Failures are :class:`~nymi_device.errors.BandUnreachableError`: ``NO_ADAPTER`` when nfcpy finds
no reader at the path, ``NOT_ON_READER`` when no ISO-DEP card is tapped in time or the card went
away, ``UNSUPPORTED`` when the tapped tag is not ISO-DEP (a MIFARE Classic or NTAG sticker).
"""

from __future__ import annotations

import errno
import logging
import time
from types import TracebackType
from typing import Any, cast

from fido2.pcsc import CtapPcscDevice
from smartcard.CardConnection import CardConnection

from nymi_device.errors import BandUnreachableError, InvalidTargetError, UnreachableReason
from nymi_device.protocol import TRAFFIC
from nymi_device.protocol.apdu import CommandApdu, ResponseApdu, contactless_atr

__all__ = [
    "DEFAULT_PATH",
    "NfcpyCardConnection",
    "NfcpyIsoDep",
    "open_ctap_nfcpy",
    "open_nfcpy",
]

logger = logging.getLogger(__name__)

DEFAULT_PATH = "usb"
#: NFC-A and NFC-B at 106 kbit/s: the technologies an ISO-DEP band answers on.
DEFAULT_TARGETS = ("106A", "106B")


class NfcpyIsoDep:
    """An activated ISO-DEP card on an nfcpy reader.

    :ivar identifier: the card's NFCID (the UID a PC/SC reader reports for ``FF CA``).
    """

    def __init__(self, frontend: Any, tag: Any, path: str) -> None:
        self._clf = frontend
        self._tag = tag
        self.path = path
        self.identifier = bytes(tag.identifier)

    @property
    def name(self) -> str:
        return f"nfcpy:{self.path}"

    def transmit(self, apdu: bytes | CommandApdu) -> bytes:
        """One command APDU over ISO-DEP; the response APDU (data + SW1 SW2)."""
        import nfc.clf
        import nfc.tag

        raw = bytes(apdu)
        logger.log(TRAFFIC, "SEND: %s", raw.hex())
        try:
            answer = self._tag.transceive(bytearray(raw))
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError, OSError) as exc:
            raise BandUnreachableError(f"the band on {self.name} stopped answering ({exc})",
                                       UnreachableReason.NOT_ON_READER) from None
        if answer is None or len(answer) < 2:
            raise BandUnreachableError(f"the band on {self.name} sent no status word",
                                       UnreachableReason.TRANSPORT_FAILED)
        logger.log(TRAFFIC, "RECV: %s", bytes(answer).hex())
        return bytes(answer)

    def exchange(self, command: CommandApdu) -> ResponseApdu:
        """Send ``command`` and follow ``61xx`` with GET RESPONSE."""
        response = ResponseApdu.parse(self.transmit(command))
        data = response.data
        while response.sw1 == 0x61:
            response = ResponseApdu.parse(
                self.transmit(CommandApdu(0x00, 0xC0, 0x00, 0x00, le=response.sw2 or 256)))
            data += response.data
        return ResponseApdu(data, response.sw)

    def close(self) -> None:
        try:
            self._clf.close()
        except Exception:
            logger.debug("closing %s failed", self.name, exc_info=True)

    def __enter__(self) -> NfcpyIsoDep:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_nfcpy(
    path: str = DEFAULT_PATH, *, timeout: float = 10.0,
    targets: tuple[str, ...] = DEFAULT_TARGETS,
) -> NfcpyIsoDep:
    """Open the nfcpy reader at ``path`` and wait up to ``timeout`` s for an ISO-DEP card.

    :raises InvalidTargetError: for an empty path or an unknown technology in ``targets``.
    :raises BandUnreachableError: ``NO_ADAPTER``, ``NOT_ON_READER`` or ``UNSUPPORTED``.
    """
    if not path:
        raise InvalidTargetError("an nfcpy path is needed (usb, usb:VID:PID, tty:PORT:DRIVER, "
                                 "udp:HOST:PORT)")
    unknown = [t for t in targets if t not in ("106A", "106B", "212F", "424F")]
    if unknown or not targets:
        raise InvalidTargetError(f"unknown nfcpy target technology: {', '.join(unknown) or '-'}")
    import nfc
    import nfc.tag.tt4

    try:
        frontend = nfc.ContactlessFrontend(path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EACCES:
            reason = "permission denied (udev rule or group membership missing?)"
        elif exc.errno == errno.EBUSY:
            reason = "device busy (claimed by pcscd or another process?)"
        raise BandUnreachableError(f"no nfcpy reader at {path!r}: {reason}",
                                   UnreachableReason.NO_ADAPTER) from None
    except ValueError as exc:  # nfcpy rejects a malformed path this way
        raise InvalidTargetError(f"bad nfcpy path {path!r}: {exc}") from None
    deadline = time.monotonic() + timeout
    try:
        tag = frontend.connect(
            rdwr={"targets": list(targets), "on-connect": lambda tag: False,
                  "interval": 0.1, "iterations": 1},
            terminate=lambda: time.monotonic() > deadline)
    except Exception:
        frontend.close()
        raise
    if not tag:
        frontend.close()
        raise BandUnreachableError(f"no band tapped on the nfcpy reader at {path!r} within "
                                   f"{timeout:g} s", UnreachableReason.NOT_ON_READER)
    if not isinstance(tag, nfc.tag.tt4.Type4Tag):
        frontend.close()
        raise BandUnreachableError(f"the tag on {path!r} is not an ISO-DEP card ({tag})",
                                   UnreachableReason.UNSUPPORTED)
    return NfcpyIsoDep(frontend, tag, path)


class NfcpyCardConnection(CardConnection):  # type: ignore[misc]
    """A pyscard ``CardConnection`` over nfcpy ISO-DEP, so python-fido2's ``CtapPcscDevice``
    runs over an nfcpy reader unchanged."""

    def __init__(self, card: NfcpyIsoDep) -> None:
        super().__init__(card.name)
        self._card = card

    def connect(self, protocol: Any = None, mode: Any = None, disposition: Any = None) -> None:
        """The card is activated already (RATS done when it was found)."""

    def disconnect(self) -> None:
        self._card.close()

    def getATR(self) -> list[int]:
        return list(contactless_atr(b""))

    def getProtocol(self) -> int:
        return int(CardConnection.T1_protocol)

    def doTransmit(
        self, command: list[int], protocol: Any = None
    ) -> tuple[list[int], int, int]:
        answer = self._card.transmit(bytes(command))
        return list(answer[:-2]), answer[-2], answer[-1]


def open_ctap_nfcpy(address: str = DEFAULT_PATH, *, timeout: float = 10.0,
                    **unknown: Any) -> CtapPcscDevice:
    """python-fido2's ``CtapPcscDevice`` over the band on the nfcpy reader at ``address``."""
    if unknown:
        raise InvalidTargetError(f"unknown nfcpy option(s): {', '.join(sorted(unknown))}")
    card = open_nfcpy(address or DEFAULT_PATH, timeout=timeout)
    try:
        return CtapPcscDevice(cast(Any, NfcpyCardConnection(card)), card.name)
    except ValueError as exc:
        card.close()
        raise BandUnreachableError(f"the card on {card.name} is not a FIDO authenticator "
                                   f"({exc})", UnreachableReason.UNSUPPORTED) from None
