"""The system's PC/SC daemon as a managed dependency of tests and of ``nymi-sim serve --vpcd``.

:func:`ensure_pcscd` makes sure a pcscd with the vsmartcard vpcd reader is serving: when one is
already running (a system service, socket activation, another test run) it is used as it is and
never stopped; otherwise one is started in the foreground (``pcscd -f``, no ``--auto-exit``) as
a child process, and :meth:`PcscdHandle.stop` later stops exactly that process, by its PID::

    with ensure_pcscd() as pcscd:          # or: handle = ensure_pcscd(); ...; handle.stop()
        ...                                # tap bands on "Virtual PCD 00 00" / "00 01"

Starting pcscd needs write access to its runtime directory (``/run/pcscd``), i.e. root, as on CI.
The vpcd reader must be configured (``/etc/reader.conf.d/vpcd``, installed with the Debian
package ``vsmartcard-vpcd`` by ``scripts/setup.sh``); readiness means pcscd's socket accepts
connections and the vpcd driver listens on its TCP port.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from nymi_device.errors import BandUnreachableError, UnreachableReason

__all__ = [
    "PCSCD_SOCKET",
    "VPCD_CONFIG",
    "PcscdHandle",
    "ensure_pcscd",
    "pcscd_running",
    "tcp_listening",
]

logger = logging.getLogger(__name__)

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
VPCD_CONFIG = Path("/etc/reader.conf.d/vpcd")
VPCD_PORT = 35963
_SETUP_HINT = "install pcscd and vsmartcard-vpcd (scripts/setup.sh)"


def pcscd_running(socket_path: Path = PCSCD_SOCKET) -> bool:
    """Whether a pcscd accepts connections on its socket (running, or socket-activated)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(socket_path))
        except OSError:
            return False
    return True


def tcp_listening(port: int) -> bool:
    """Whether some process listens on TCP ``port`` (read from /proc, without connecting).

    Connecting to the vpcd port would put a card on the reader, so this only looks.
    """
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(wanted) and fields[3] == "0A":
                return True
    return False


@dataclass
class PcscdHandle:
    """A pcscd that serves; :meth:`stop` ends it only if :func:`ensure_pcscd` started it."""

    started: bool
    pid: int | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def output(self) -> str:
        """What the started pcscd printed so far (empty if it was already running)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the pcscd this handle started (SIGTERM, then SIGKILL), and nothing else."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            logger.info("stopped pcscd (pid %d)", process.pid)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> PcscdHandle:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def ensure_pcscd(
    *,
    timeout: float = 10.0,
    vpcd_config: Path = VPCD_CONFIG,
    socket_path: Path = PCSCD_SOCKET,
    vpcd_port: int = VPCD_PORT,
    executable: str | None = None,
) -> PcscdHandle:
    """A serving pcscd with the vpcd reader: the running one, or one started now.

    :raises BandUnreachableError: (``NO_ADAPTER``) when pcscd or the vpcd reader is not
        installed, pcscd cannot be started by this user, or it does not come up in ``timeout``.
    """
    if pcscd_running(socket_path):
        if not _wait_listening(vpcd_port, 1.0):
            logger.warning("pcscd is running but nothing listens on the vpcd port %d "
                           "(was vsmartcard-vpcd installed after pcscd started?)", vpcd_port)
        return PcscdHandle(started=False)
    binary = executable or shutil.which("pcscd") or _sbin("pcscd")
    if binary is None:
        raise BandUnreachableError(f"pcscd is not installed; {_SETUP_HINT}",
                                   UnreachableReason.NO_ADAPTER)
    if not vpcd_config.is_file():
        raise BandUnreachableError(f"the vpcd reader is not configured ({vpcd_config} is "
                                   f"missing); {_SETUP_HINT}", UnreachableReason.NO_ADAPTER)
    runtime = socket_path.parent
    if not os.access(runtime if runtime.exists() else runtime.parent, os.W_OK):
        raise BandUnreachableError(
            f"pcscd is not running and this user cannot start it (no write access to {runtime});"
            " start the system service (systemctl start pcscd.socket) or run as root",
            UnreachableReason.NO_ADAPTER)
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([binary, "--foreground"], stdin=subprocess.DEVNULL,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    handle = PcscdHandle(started=True, pid=process.pid, _process=process, _log=log)
    deadline = time.monotonic() + timeout
    while not (pcscd_running(socket_path) and tcp_listening(vpcd_port)):
        if process.poll() is not None or time.monotonic() > deadline:
            output = handle.output().strip().splitlines()
            handle.stop()
            last = output[-1] if output else "no output"
            raise BandUnreachableError(f"pcscd did not come up with the vpcd reader: {last}",
                                       UnreachableReason.NO_ADAPTER)
        time.sleep(0.02)
    logger.info("started pcscd (pid %d)", process.pid)
    return handle


def _sbin(name: str) -> str | None:
    for directory in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        path = Path(directory) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def _wait_listening(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not tcp_listening(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
