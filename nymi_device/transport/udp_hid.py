"""CTAPHID over UDP, host side: a python-fido2 ``CtapHidConnection`` on a UDP socket.

python-fido2's own :class:`fido2.hid.CtapHidDevice` does all CTAPHID framing over this connection,
so ``Ctap2``, ``ClientPin``, ``CredentialManagement`` and ``Fido2Client`` work unchanged against a
CTAPHID-over-UDP authenticator (the simulated band, or any FIDO2 simulator using the same
contract: the authenticator on 127.0.0.1:8111 sends its reports to 127.0.0.1:7112)::

    with open_udp_hid_device() as device:            # a fido2.hid.CtapHidDevice
        info = Ctap2(device).get_info()

Each datagram carries exactly one 64-byte report. A read that gets no report within ``timeout``
seconds raises :class:`~nymi_device.errors.BandUnreachableError` instead of hanging; while a
request waits for the user, the authenticator sends keepalives every 100 ms or less, so a timeout
of a second or two never cuts a legitimate wait short.
"""

from __future__ import annotations

import logging
import socket
import time

from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor

from nymi_device.errors import BandUnreachableError, UnreachableReason
from nymi_device.protocol import TRAFFIC
from nymi_device.protocol.ctaphid import REBOOT_DATAGRAM, REPORT_SIZE

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_LOCAL_PORT",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "UdpCtapHidConnection",
    "open_udp_hid_device",
    "udp_hid_descriptor",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: Port the authenticator listens on.
DEFAULT_PORT = 8111
#: Port the authenticator sends its reports to; the host binds it.
DEFAULT_LOCAL_PORT = 7112
#: Seconds to wait for the next report before declaring the band unreachable.
DEFAULT_TIMEOUT = 2.0


def udp_hid_descriptor(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> HidDescriptor:
    """The HID descriptor python-fido2 sees for a CTAPHID-over-UDP authenticator."""
    return HidDescriptor(
        path=f"udp:{host}:{port}",
        vid=0,
        pid=0,
        report_size_in=REPORT_SIZE,
        report_size_out=REPORT_SIZE,
        product_name="CTAPHID over UDP",
        serial_number=None,
    )


class UdpCtapHidConnection(CtapHidConnection):
    """One UDP socket carrying CTAPHID reports to and from an authenticator.

    :param host: the authenticator's address.
    :param port: the authenticator's port.
    :param local_host: address to bind.
    :param local_port: port to bind, where the authenticator sends its reports; 0 picks a free
        one (useful when the authenticator answers each sender).
    :param timeout: seconds :meth:`read_packet` waits for a report.
    :raises BandUnreachableError: if the local port cannot be bound (reason TRANSPORT_FAILED).
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        local_host: str = DEFAULT_HOST,
        local_port: int = DEFAULT_LOCAL_PORT,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.remote = (host, port)
        self.timeout = timeout
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((local_host, local_port))
            # Connected: only the authenticator's datagrams are received, and an ICMP
            # port-unreachable (nobody listening) surfaces as ConnectionRefusedError.
            self._sock.connect(self.remote)
        except OSError as exc:
            self._sock.close()
            raise BandUnreachableError(
                f"cannot open UDP {local_host}:{local_port} -> {host}:{port}: {exc}",
                UnreachableReason.TRANSPORT_FAILED,
            ) from exc

    @property
    def local_address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return (str(host), int(port))

    def write_packet(self, data: bytes) -> None:
        if len(data) != REPORT_SIZE:
            raise ValueError(f"a CTAPHID report is {REPORT_SIZE} bytes, got {len(data)}")
        if logger.isEnabledFor(TRAFFIC):
            logger.log(TRAFFIC, "SEND %s", data.hex())
        try:
            self._sock.send(data)
        except OSError as exc:
            raise self._unreachable(exc) from exc

    def read_packet(self) -> bytes:
        """The next 64-byte report; datagrams of any other size are skipped.

        :raises BandUnreachableError: if nothing arrives within :attr:`timeout` seconds
            (reason TRANSPORT_FAILED), or nothing listens on the authenticator's port (NOT_FOUND).
        """
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BandUnreachableError(
                    f"no CTAPHID report from udp:{self.remote[0]}:{self.remote[1]} "
                    f"within {self.timeout:g} s",
                    UnreachableReason.TRANSPORT_FAILED,
                )
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(REPORT_SIZE + 1)
            except TimeoutError:
                continue
            except OSError as exc:
                raise self._unreachable(exc) from exc
            if logger.isEnabledFor(TRAFFIC):
                logger.log(TRAFFIC, "RECV %s", data.hex())
            if len(data) == REPORT_SIZE:
                return data
            logger.debug("ignoring a datagram of %d bytes", len(data))

    def power_cycle(self) -> None:
        """Ask a simulated authenticator to restart (the reboot datagram; no reply)."""
        self._sock.send(REBOOT_DATAGRAM)

    def close(self) -> None:
        self._sock.close()

    def _unreachable(self, exc: OSError) -> BandUnreachableError:
        target = f"udp:{self.remote[0]}:{self.remote[1]}"
        if isinstance(exc, ConnectionRefusedError):
            return BandUnreachableError(
                f"nothing listens on {target}", UnreachableReason.NOT_FOUND
            )
        return BandUnreachableError(f"{target}: {exc}", UnreachableReason.TRANSPORT_FAILED)


def open_udp_hid_device(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    local_host: str = DEFAULT_HOST,
    local_port: int = DEFAULT_LOCAL_PORT,
    timeout: float = DEFAULT_TIMEOUT,
) -> CtapHidDevice:
    """Open a python-fido2 ``CtapHidDevice`` on a CTAPHID-over-UDP authenticator.

    The device allocates its channel (CTAPHID_INIT) before this returns.

    :raises BandUnreachableError: if the authenticator does not answer.
    """
    connection = UdpCtapHidConnection(
        host, port, local_host=local_host, local_port=local_port, timeout=timeout
    )
    try:
        return CtapHidDevice(udp_hid_descriptor(host, port), connection)
    except BaseException:
        connection.close()
        raise
