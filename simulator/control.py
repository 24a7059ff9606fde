"""The control API: how the physical world of a band is moved, in-process or in a running daemon.

Every physical action (wear, remove, charge, hold a button, present a finger, set the battery,
let time pass, power-cycle) is one entry of :data:`ACTIONS`. ``nymi-sim`` applies it to the band
in its fleet directory — or, while ``nymi-sim serve`` keeps that band running, sends it to the
daemon over the control socket: JSON lines over TCP on 127.0.0.1, the port published in the
band's ``control.json``. Either way the answer is :func:`simulator.fleet.describe` of the band.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nymi_device.errors import (
    BandError,
    BandUnreachableError,
    InvalidInputError,
    PhysicalActionError,
    UnreachableReason,
)
from nymi_device.protocol.model import Button
from simulator.band.band import EmulatedBand
from simulator.band.records import BandPolicy
from simulator.band.storage import atomic_write
from simulator.clock import check_duration
from simulator.fleet import describe

CONTROL_FILE = "control.json"
Action = Callable[[EmulatedBand, dict[str, Any]], None]
DaemonAction = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _button(params: dict[str, Any]) -> Button:
    try:
        return Button(str(params.get("button")))
    except ValueError:
        raise InvalidInputError(f"no button {params.get('button')!r} (top or bottom)") from None


def _text(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {value!r}")
    return value


def _set_label(band: EmulatedBand, params: dict[str, Any]) -> None:
    band.set_label(None if params.get("label") is None else _text(params, "label"))


def _seconds(params: dict[str, Any], name: str = "seconds") -> float:
    return check_duration(params.get(name), name)


def _percent(params: dict[str, Any]) -> float:
    value = params.get("percent")
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not 0 <= value <= 100):
        raise InvalidInputError(f"percent must be a number from 0 to 100, got {value!r}")
    return float(value)


ACTIONS: dict[str, Action] = {
    "wear": lambda b, p: b.put_on(),
    "remove": lambda b, p: b.take_off(),
    "charge": lambda b, p: b.attach_charger(),
    "uncharge": lambda b, p: b.detach_charger(),
    "hold": lambda b, p: b.hold(_button(p), _seconds(p)),
    "finger": lambda b, p: b.place_finger(match=bool(p.get("match", True)),
                                          ecg_ok=bool(p.get("ecg", True))),
    "battery": lambda b, p: b.set_battery(_percent(p)),
    "wait": lambda b, p: b.clock.advance(_seconds(p)),
    "power-cycle": lambda b, p: b.power_cycle(),
    "status": lambda b, p: None,
    # What the Nymi Band Application asks of a band during enrollment. On a real band these go
    # through the vendor's channel; for simulated bands they are served here (and, later, by the
    # band management protocol over BLE).
    "enter-setup-code": lambda b, p: b.enter_setup_code(_text(p, "code")),
    "start-capture": lambda b, p: b.start_capture(),
    "set-label": lambda b, p: _set_label(b, p),
    "add-corporate-authenticator": lambda b, p: b.add_corporate_authenticator(),
    "apply-policy": lambda b, p: b.apply_policy(BandPolicy(
        liveness=bool(p.get("liveness", True)), haptics=bool(p.get("haptics", True)))),
    "update-policy": lambda b, p: b.apply_policy_update(BandPolicy(
        liveness=bool(p.get("liveness", True)), haptics=bool(p.get("haptics", True)))),
    "corporate-login": lambda b, p: b.corporate_login(bool(p.get("ok", True))),
}


def apply_action(band: EmulatedBand, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """Apply one action and settle the band; the band's report covers only this action."""
    if action == "info":
        return {"info": band.info().to_dict()}
    if action == "events":
        since = params.get("since", 0)
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            raise InvalidInputError(f"since must be an event index >= 0, got {since!r}")
        with band.lock:
            return {"events": [e.to_dict() for e in band.events[since:]],
                    "end": len(band.events)}
    handler = ACTIONS.get(action)
    if handler is None:
        raise InvalidInputError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
    mark = len(band.events)
    with band.lock:
        handler(band, params)
        band.settle()
        return describe(band, since=mark)


# -- daemon side --------------------------------------------------------------------------------

class ControlServer:
    """Serves :data:`ACTIONS` for one running band on 127.0.0.1 (an ephemeral port)."""

    def __init__(self, band: EmulatedBand, band_dir: Path,
                 extra: dict[str, Callable[[], None]] | None = None,
                 meta: dict[str, Any] | None = None,
                 daemon_actions: dict[str, DaemonAction] | None = None) -> None:
        self.band = band
        self.band_dir = band_dir
        #: Actions only a running daemon can do (tap the band on a reader, take it away).
        self.daemon_actions = daemon_actions or {}
        #: Published next to the port, e.g. where the band's front ends listen.
        self.meta = meta or {}
        #: Actions the daemon adds (e.g. "power-cycle" also resets the CTAPHID channels).
        self.extra = extra or {}
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0, limit=MAX_LINE)
        port = int(self._server.sockets[0].getsockname()[1])
        published = {**self.meta, "port": port, "pid": os.getpid()}
        atomic_write(self.band_dir / CONTROL_FILE, json.dumps(published).encode(), durable=False)
        return port

    async def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.band_dir / CONTROL_FILE).unlink()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (line := await read_request(reader)) is not None:
                if line is _OVERLONG:
                    answer = _refusal(InvalidInputError(
                        f"control request longer than {MAX_LINE} bytes"))
                else:
                    answer = await self.handle_async(line)
                writer.write(encode_answer(answer))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def handle_async(self, line: bytes) -> dict[str, Any]:
        """Daemon-only actions first (they may wait on I/O), then the shared ones."""
        try:
            action, params = parse_request(line)
            if action not in self.daemon_actions:
                return self.handle(line)
            extra = await self.daemon_actions[action](params)
            with self.band.lock:
                return {"ok": True, "result": {**describe(self.band, len(self.band.events)),
                                               **extra}}
        except BandError as exc:
            return _refusal(exc)

    def handle(self, line: bytes) -> dict[str, Any]:
        try:
            action, params = parse_request(line)
            result = apply_action(self.band, action, params)
            if action in self.extra:
                self.extra[action]()
            return {"ok": True, "result": result}
        except BandError as exc:
            return _refusal(exc)


#: The longest request line the control socket reads (longer ones are answered with an error).
MAX_LINE = 64 * 1024
_OVERLONG = b"<overlong>"


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """The next request line; :data:`_OVERLONG` for one over :data:`MAX_LINE` (dropped whole);
    None at the end of the stream."""
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial or None
    except asyncio.LimitOverrunError as exc:
        consumed = exc.consumed
    while True:  # drop the rest of the overlong line, up to and with its newline
        await reader.readexactly(consumed)
        try:
            await reader.readuntil(b"\n")
            return _OVERLONG
        except asyncio.IncompleteReadError:
            return _OVERLONG
        except asyncio.LimitOverrunError as exc:
            consumed = exc.consumed


def _no_constant(name: str) -> object:
    raise InvalidInputError(f"{name} is not a number (give a finite number of seconds)")


def parse_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """A control request ``{"action": ..., "params": {...}}``; InvalidInputError otherwise."""
    try:
        request = json.loads(line.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise InvalidInputError("control request is not UTF-8 text") from None
    except RecursionError:
        raise InvalidInputError("control request is nested too deeply") from None
    except json.JSONDecodeError:
        raise InvalidInputError("control request is not JSON") from None
    if not isinstance(request, dict) or not isinstance(request.get("action"), str):
        raise InvalidInputError("a control request is a JSON object with an 'action'")
    params = request.get("params") or {}
    if not isinstance(params, dict):
        raise InvalidInputError("'params' must be a JSON object")
    return request["action"], params


def _refusal(exc: BandError) -> dict[str, Any]:
    kind = "invalid-input" if isinstance(exc, InvalidInputError) else "refused"
    return {"ok": False, "kind": kind, "error": str(exc)}


def encode_answer(answer: dict[str, Any]) -> bytes:
    """One answer line; strictly JSON (an answer that is not becomes an error answer)."""
    try:
        return json.dumps(answer, allow_nan=False).encode() + b"\n"
    except (ValueError, TypeError) as exc:
        return json.dumps(_refusal(PhysicalActionError(
            f"the band's answer cannot be sent: {exc}"))).encode() + b"\n"


# -- client side --------------------------------------------------------------------------------

def daemon_port(band_dir: Path) -> int | None:
    """The control port of a daemon serving this band, or None if none is running."""
    try:
        info = json.loads((band_dir / CONTROL_FILE).read_text())
        port = int(info["port"])
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return port


def send_action(port: int, action: str, params: dict[str, Any] | None = None,
                timeout: float = 30.0) -> dict[str, Any]:
    """Send one action to a daemon; raise the matching error on a refusal."""
    request = json.dumps({"action": action, "params": params or {}}).encode() + b"\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request)
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise BandUnreachableError(f"the band's daemon does not answer: {exc}",
                                   UnreachableReason.TRANSPORT_FAILED) from None
    try:
        answer = json.loads(data)
    except json.JSONDecodeError:
        raise BandUnreachableError("the band's daemon answered garbage",
                                   UnreachableReason.TRANSPORT_FAILED) from None
    if not answer.get("ok"):
        if answer.get("kind") == "invalid-input":
            raise InvalidInputError(str(answer.get("error")))
        raise PhysicalActionError(str(answer.get("error")))
    result = answer["result"]
    assert isinstance(result, dict)
    return result
