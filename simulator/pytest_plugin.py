"""pytest fixtures for projects that test against simulated Nymi bands.

Installed with the package as a ``pytest11`` plugin, so every fixture below is there without an
import (``pytest --fixtures`` lists them with these docstrings):

``nymi_fleet``
    an empty fleet directory of simulated bands in ``tmp_path``;
``nymi_band``
    a fresh Nymi Band 3.0 in it (off the wrist, no user): for tests of enrollment itself;
``nymi_ready_band``
    a Nymi Band 3.0 that is worn, enrolled and authenticated on the wrist;
``nymi_live_band``
    that band running, its FIDO2 authenticator wired to its body, answering every request for
    the wearer's action at once (a matching finger on a worn band, as in unattended CI);
``nymi_ctap_device``
    its authenticator as a python-fido2 ``CtapDevice``, in process;
``nymi_ctaphid_udp``
    its authenticator served as CTAPHID over UDP on free ports (``.target``, ``.open()``);
``nymi_pcsc_device``
    the band on the vpcd reader of the system's pcscd, as a python-fido2 ``CtapDevice`` over
    PC/SC (skips when pcscd with vpcd is not installed);
``nymi_nes``
    an embedded enterprise server site in the fleet directory, set up like the demo's.

From nothing to a verified WebAuthn registration and assertion::

    from fido2.client import DefaultClientDataCollector, Fido2Client
    from fido2.server import Fido2Server

    def test_sign_in(nymi_ctap_device):
        rp = Fido2Server({"id": "example.com", "name": "Example"})
        client = Fido2Client(nymi_ctap_device, DefaultClientDataCollector("https://example.com"))
        options, state = rp.register_begin({"id": b"alice", "name": "alice"})
        credential = rp.register_complete(state, client.make_credential(options.public_key))
        options, state = rp.authenticate_begin([credential.credential_data])
        assertion = client.get_assertion(options.public_key).get_response(0)
        rp.authenticate_complete(state, [credential.credential_data], assertion)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from simulator.fleet import Fleet

if TYPE_CHECKING:
    from fido2.ctap import CtapDevice

    from simulator.nes import Site
    from simulator.serve import LiveBand

__all__ = ["DEMO_PASSWORD", "DEMO_USERS", "ServedCtap"]

#: The serial and fixture of the band the fixtures build.
SERIAL = "AAAH-00125"
FIXTURE = "nymi-band-3.0"
#: The directory users of :func:`nymi_nes` (account → first, last name) and their password.
DEMO_USERS = {"CORP\\tw-user1": ("Tw", "User1"), "CORP\\tw-user2": ("Tw", "User2")}
DEMO_ADMIN = "CORP\\nes-admin"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - a simulated directory; nothing real behind it
#: pcscd is one per machine, its vpcd reader one band at a time: with this variable naming a
#: file, :func:`nymi_pcsc_device` holds an exclusive lock on it while its band is on the reader
#: (for CI jobs sharing a machine; leave it unset when the whole run already holds that lock).
PCSCD_LOCK_ENV = "NYMI_PCSCD_LOCK"


@pytest.fixture
def nymi_fleet(tmp_path: Path) -> Fleet:
    """An empty fleet directory of simulated bands (``tmp_path / "nymi-sim"``); pass its
    ``root`` as ``--sim-dir`` to ``nymi-band`` / ``nymi-sim``."""
    return Fleet(tmp_path / "nymi-sim", durable=False)


@pytest.fixture
def nymi_band(nymi_fleet: Fleet) -> str:
    """The serial (``AAAH-00125``) of a fresh Nymi Band 3.0 in :func:`nymi_fleet`: off the
    wrist, no user enrolled (the band shows "No User"). Use ``nymi_ready_band`` for FIDO2."""
    nymi_fleet.add_band(FIXTURE, SERIAL)
    return SERIAL


@pytest.fixture
def nymi_ready_band(nymi_fleet: Fleet) -> str:
    """The serial of a Nymi Band 3.0 in :func:`nymi_fleet` that is worn, enrolled (a user's
    fingerprint captured, the default policy applied) and authenticated on the wrist: what a
    FIDO2 test needs (``--target sim:AAAH-00125``)."""
    from simulator.serve import make_ready

    nymi_fleet.add_band(FIXTURE, SERIAL)
    with nymi_fleet.open_band(SERIAL) as band:
        make_ready(band)
    return SERIAL


@pytest.fixture
def nymi_live_band(nymi_fleet: Fleet, nymi_ready_band: str) -> Iterator[LiveBand]:
    """:func:`nymi_ready_band` running: ``.band`` (the emulated band), ``.authenticator`` (its
    FIDO2 authenticator over the band's own flash) and ``.wearer``. Every request for the
    wearer's action is answered at once, as a matching finger on the worn band would."""
    from simulator.serve import live_band

    with live_band(nymi_fleet, nymi_ready_band, auto_presence=True) as live:
        yield live


@pytest.fixture
def nymi_ctap_device(nymi_live_band: LiveBand) -> CtapDevice:
    """The ready band's FIDO2 authenticator as a python-fido2 ``CtapDevice`` in this process:
    hand it to ``fido2.client.Fido2Client``, ``fido2.ctap2.Ctap2`` or ``ClientPin``."""
    from simulator.band.ctap.inprocess import InProcessCtapDevice

    return InProcessCtapDevice(nymi_live_band.authenticator)


@dataclass
class ServedCtap:
    """A band's authenticator served on a transport: where it is, and how to open it."""

    target: str
    """The ``nymi-band --target`` / :func:`nymi_device.fido.open_ctap_device` moniker."""
    port: int | None = None
    reply_port: int | None = None
    reader: str | None = None
    _opened: list[Any] = field(default_factory=list, repr=False)

    def open(self) -> CtapDevice:
        """A python-fido2 ``CtapDevice`` on it (closed when the fixture ends)."""
        from nymi_device.fido import open_ctap_device

        options: dict[str, Any] = {"timeout": 10} if self.reader else {}
        device = open_ctap_device(self.target, **options)
        self._opened.append(device)
        return device

    def close(self) -> None:
        for device in self._opened:
            with contextlib.suppress(Exception):
                device.close()
        self._opened.clear()


@pytest.fixture
def nymi_ctaphid_udp(nymi_live_band: LiveBand) -> Iterator[ServedCtap]:
    """The ready band's authenticator served as CTAPHID over UDP on 127.0.0.1, on a free port,
    answering on another free port: ``.target`` is ``udp:127.0.0.1:PORT/REPLYPORT`` (for
    ``nymi-band --target``), ``.open()`` gives a python-fido2 ``CtapDevice`` on it."""
    from nymi_device.sync import LoopThread
    from simulator.frontends.ctaphid_udp import serve_ctaphid_udp
    from simulator.serve import free_udp_port

    reply = free_udp_port()
    loop = LoopThread("nymi-ctaphid-udp")
    try:
        server = loop.run(serve_ctaphid_udp(nymi_live_band.authenticator, port=0,
                                            peer=("127.0.0.1", reply)))
        port = server.address[1]
        served = ServedCtap(f"udp:127.0.0.1:{port}/{reply}", port=port, reply_port=reply)
        try:
            yield served
        finally:
            served.close()
            loop.run(server.close())
    finally:
        loop.stop()


@contextlib.contextmanager
def _pcscd_lock() -> Iterator[None]:
    path = os.environ.get(PCSCD_LOCK_ENV)
    if not path:
        yield
        return
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def nymi_pcsc_device(nymi_live_band: LiveBand) -> Iterator[CtapDevice]:
    """The ready band held on the vpcd reader of the system's pcscd (started if needed), its
    authenticator as a python-fido2 ``CtapDevice`` over PC/SC — the way a real band is used
    over NFC. pcscd is one per machine: with ``$NYMI_PCSCD_LOCK`` naming a file, the fixture
    holds a lock on it while its band is on the reader. Skips the test when pcscd with vpcd is
    not installed."""
    from nymi_device.errors import BandUnreachableError
    from nymi_device.sync import LoopThread
    from simulator.band.nfc import build_card_os
    from simulator.frontends.vpcd import VpcdFrontend
    from simulator.pcscd import ensure_pcscd

    with _pcscd_lock():
        try:
            pcscd = ensure_pcscd()
        except BandUnreachableError as exc:
            pytest.skip(f"no PC/SC stack with the vpcd reader: {exc}")
        live = nymi_live_band
        card = build_card_os(live.band, live.authenticator, verified=live.wearer.is_verified)
        frontend = VpcdFrontend(card)
        loop = LoopThread("nymi-vpcd")
        served = ServedCtap(f"pcsc:{frontend.reader_name}", reader=frontend.reader_name)
        try:
            loop.run(frontend.tap())
            yield served.open()
        finally:
            served.close()
            with contextlib.suppress(Exception):
                loop.run(frontend.untap())
            loop.stop()
            card.close()
            pcscd.stop()


@pytest.fixture
def nymi_nes(nymi_fleet: Fleet) -> Iterator[Site]:
    """The embedded enterprise server (NES) of :func:`nymi_fleet`, set up like the demo's
    site: directory users ``CORP\\tw-user1`` and ``CORP\\tw-user2`` and the administrator
    ``CORP\\nes-admin``, all with the password ``demo-password``; self-service re-enrollment
    allowed. ``.server()`` is the NES (what ``nymi-band --sim-dir ROOT nes …`` opens)."""
    from simulator.nes import ADMIN_GROUP, DEFAULT_GROUP_POLICY, open_site

    with open_site(nymi_fleet.root) as site:
        for account, (first, last) in DEMO_USERS.items():
            site.directory.add_user(account, DEMO_PASSWORD, first_name=first, last_name=last)
        site.directory.add_user(DEMO_ADMIN, DEMO_PASSWORD, groups=[ADMIN_GROUP])
        site.server().update_policy(DEFAULT_GROUP_POLICY, {
            "Allow a user to re-enroll / re-register their Nymi Band": True,
            "Allow a user to re-enroll any active Nymi Band": True}, actor=DEMO_ADMIN)
        yield site
