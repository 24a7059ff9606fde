"""A python-fido2 ``CtapDevice`` that talks to an :class:`Authenticator` in the same process.

``InProcessCtapDevice(authenticator)`` maps CTAPHID.CBOR to
:meth:`Authenticator.process_cbor` and CTAPHID.MSG to :meth:`Authenticator.process_u2f`, so
python-fido2's ``Ctap2``, ``ClientPin``, ``CredentialManagement``, ``LargeBlobs``, ``Ctap1`` and
``Fido2Client`` drive the band's authenticator unchanged, without any transport framing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

from fido2.ctap import STATUS, CtapDevice, CtapError
from fido2.hid import CAPABILITY, CTAPHID

from nymi_device.protocol import TRAFFIC

from .authenticator import Authenticator

logger = logging.getLogger(__name__)


class InProcessCtapDevice(CtapDevice):
    """A CTAP device whose "transport" is a direct call into the authenticator."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator
        caps = CAPABILITY.CBOR
        if authenticator.can_wink:
            caps |= CAPABILITY.WINK
        if not authenticator.fixture.ctap or not authenticator.fixture.ctap.u2f:
            caps |= CAPABILITY.NMSG
        self._capabilities = int(caps)

    @property
    def capabilities(self) -> int:
        return self._capabilities

    def call(
        self,
        cmd: int,
        data: bytes = b"",
        event: threading.Event | None = None,
        on_keepalive: Callable[[STATUS], None] | None = None,
    ) -> bytes:
        if logger.isEnabledFor(TRAFFIC):
            logger.log(TRAFFIC, "SEND cmd 0x%02x %s", cmd, bytes(data).hex())
        answer = self._call(cmd, data, event, on_keepalive)
        if logger.isEnabledFor(TRAFFIC):
            logger.log(TRAFFIC, "RECV %s", answer.hex())
        return answer

    def _call(self, cmd: int, data: bytes, event: threading.Event | None,
              on_keepalive: Callable[[STATUS], None] | None) -> bytes:
        if cmd == CTAPHID.CBOR:
            last: list[int] = []

            def keepalive(status: int) -> None:
                # Like a HID transport: report each status once while it stays the same.
                if on_keepalive is not None and (not last or last[-1] != status):
                    last.append(status)
                    on_keepalive(STATUS(status))

            return self.authenticator.process_cbor(
                bytes(data), cancel=event, keepalive=keepalive if on_keepalive else None
            )
        if cmd == CTAPHID.MSG:
            return self.authenticator.process_u2f(bytes(data))
        if cmd == CTAPHID.WINK and self.authenticator.can_wink:
            self.authenticator.wink()
            return b""
        if cmd == CTAPHID.PING:
            return bytes(data)
        raise CtapError(CtapError.ERR.INVALID_COMMAND)

    @classmethod
    def list_devices(cls) -> Iterator[InProcessCtapDevice]:
        """In-process devices are constructed around an authenticator, never discovered."""
        return iter(())
