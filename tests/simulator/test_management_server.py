"""The management protocol end to end: ManagementClient and ManagementServer back to back.

The GATT transport is a pair of asyncio queues (tests/simulator/management_helpers.py); taps on
them replay, reorder, tamper with and drop fragments in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from nymi_device.errors import (
    BandCommandError,
    BandUnreachableError,
    SecureSessionError,
    StatusCode,
)
from nymi_device.management_client import ManagementClient
from nymi_device.protocol.management import (
    Command,
    Record,
    Request,
    Response,
    encode_message,
)
from nymi_device.protocol.management_bodies import PolicySettings
from nymi_device.protocol.management_cbor import encode
from nymi_device.protocol.management_frames import Fragmenter, fragment_message
from nymi_device.protocol.management_session import HostHandshake
from nymi_device.protocol.model import AuthState, Button, EnrollmentState, EventKind
from simulator.band.band import EmulatedBand
from simulator.band.management_identity import (
    IDENTITY_KEY_RECORD,
    IdentityIssuer,
    load_management_identity,
    simulation_root,
)
from simulator.band.management_server import ManagementServer
from simulator.fixtures import fixture_dir, load_fixture
from tests.simulator.band_helpers import FIXTURES, enroll, make_band
from tests.simulator.management_helpers import (
    GattLoopback,
    MessageTap,
    arbitrary_fragments,
    plain_request,
    refused_events,
    responses,
)

BAND_3 = load_fixture("nymi-band-3.0")


@pytest.fixture
def band(tmp_path: Path) -> EmulatedBand:
    return make_band(BAND_3, tmp_path)


# -- before a session ---------------------------------------------------------------------------


async def test_identity_is_served_before_a_session(band: EmulatedBand) -> None:
    async with GattLoopback(band) as gatt:
        info = await gatt.client.identity()
    assert info == band.info()


@pytest.mark.parametrize("command", [c for c in Command if c not in (Command.HELLO,
                                                                     Command.GET_INFO)])
def test_every_other_command_needs_a_session(band: EmulatedBand, command: Command) -> None:
    server = ManagementServer.for_band(band)
    before = (band.status(), len(band.events))
    (response,) = responses(server.receive(plain_request(command)[0]))
    assert isinstance(response, Response)
    assert (response.request_id, response.command, response.status) == (
        1, command, StatusCode.SESSION_REQUIRED)
    assert (band.status(), len(band.events)) == before


def test_a_record_without_a_session_is_refused(band: EmulatedBand) -> None:
    server = ManagementServer.for_band(band)
    fragments = fragment_message(encode_message(Record(0, bytes(20))), 0, 23)
    (response,) = responses([out for f in fragments for out in server.receive(f)])
    assert isinstance(response, Response) and response.status == StatusCode.SESSION_REQUIRED


async def test_the_client_never_sends_a_sealed_command_in_plain(band: EmulatedBand) -> None:
    async with GattLoopback(band) as gatt:
        with pytest.raises(SecureSessionError) as caught:
            await gatt.client.status()
        assert caught.value.status == StatusCode.SESSION_REQUIRED
        assert gatt.written == []


# -- the handshake ------------------------------------------------------------------------------


async def test_the_band_proves_its_serial_and_capabilities(band: EmulatedBand) -> None:
    async with GattLoopback(band) as gatt:
        session = await gatt.client.handshake(expected_serial="AAAH-00125")
        assert session.serial == "AAAH-00125" and session.version == 1
        assert session.capabilities.commands == frozenset(int(c) for c in Command)
        assert len(session.session_id) == 16
        assert gatt.server.session_open
        assert await gatt.client.identity() == band.info()  # now sealed


async def test_a_band_of_another_serial_is_refused(band: EmulatedBand) -> None:
    async with GattLoopback(band) as gatt:
        with pytest.raises(SecureSessionError) as caught:
            await gatt.client.handshake(expected_serial="ACAK-00056")
        assert caught.value.status == StatusCode.UNTRUSTED_BAND
        assert gatt.client.session is None


async def test_a_band_certificate_not_from_the_manufacturer_ca_is_refused(
    band: EmulatedBand,
) -> None:
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue_ca = IdentityIssuer.simulation().certificate  # right names, wrong key
    rogue = IdentityIssuer(rogue_key, rogue_ca)
    server = ManagementServer.for_band(band, issuer=rogue)
    async with GattLoopback(band, server=server) as gatt:
        with pytest.raises(SecureSessionError) as caught:
            await gatt.client.handshake()
        assert caught.value.status == StatusCode.UNTRUSTED_BAND
        assert gatt.client.session is None
        with pytest.raises(SecureSessionError):
            await gatt.client.status()


async def test_a_host_that_trusts_only_the_fido_root_refuses_the_band(band: EmulatedBand) -> None:
    fido_root = x509.load_pem_x509_certificate(
        (fixture_dir() / "attestation" / "simulation-root-ca.pem").read_bytes())
    async with GattLoopback(band, trusted_ca=fido_root) as gatt:
        with pytest.raises(SecureSessionError) as caught:
            await gatt.client.handshake()
        assert caught.value.status == StatusCode.UNTRUSTED_BAND


async def test_no_common_version(band: EmulatedBand) -> None:
    async with GattLoopback(band) as gatt:
        gatt.client = ManagementClient(gatt.write, simulation_root(), versions=(7,))
        with pytest.raises(SecureSessionError) as caught:
            await gatt.client.handshake()
        assert caught.value.status == StatusCode.UNSUPPORTED_VERSION


async def test_a_new_handshake_replaces_the_session(band: EmulatedBand) -> None:
    async with GattLoopback(band) as gatt:
        first = await gatt.client.handshake()
        second = await gatt.client.handshake()
        assert first.session_id != second.session_id
        assert (await gatt.client.status()).serial == "AAAH-00125"


async def test_the_identity_key_lives_on_flash_and_survives_delete_user_data(
    band: EmulatedBand,
) -> None:
    server = ManagementServer.for_band(band)
    identity = load_management_identity(band.storage)
    assert identity is not None and IDENTITY_KEY_RECORD.startswith("device/")
    band.erase_user_data()
    again = load_management_identity(band.storage)
    assert again is not None and again.chain[0] == identity.chain[0]
    server.close()
    async with GattLoopback(band) as gatt:
        session = await gatt.client.handshake()
    assert session.certificate == identity.chain[0]


# -- every command ------------------------------------------------------------------------------


async def test_every_command(band: EmulatedBand) -> None:
    """One call per command of §8, in an order a real enrollment would take."""
    async with GattLoopback(band) as gatt:
        c = gatt.client
        seen: set[Command] = set()

        async def call(command: Command, coro: Awaitable[Any]) -> Any:
            seen.add(command)
            return await coro

        await call(Command.HELLO, c.handshake())
        assert (await call(Command.GET_INFO, c.identity())).serial == "AAAH-00125"
        assert (await call(Command.GET_STATUS, c.status())).enrollment == "unenrolled"
        assert await call(Command.SUBSCRIBE, c.subscribe([EventKind.SCREEN])) == {EventKind.SCREEN}
        band.put_on()
        await call(Command.ENROLL_SETUP_CODE, c.enter_setup_code(band.setup_code or ""))
        assert await call(Command.ENROLL_START_CAPTURE, c.start_capture()) == 8
        for _ in range(8):
            band.place_finger()
            band.settle()
        assert await call(Command.ENROLL_SET_LABEL, c.set_label("tw-user2")) == "TW-USER2"
        await call(Command.ENROLL_ADD_CORPORATE_AUTHENTICATOR, c.add_corporate_authenticator())
        await call(Command.ENROLL_SET_POLICY, c.set_policy(PolicySettings(False, True)))
        await call(Command.ENROLL_FINISH, c.finish_enrollment())
        await call(Command.UNSUBSCRIBE, c.unsubscribe())
        await call(Command.UPDATE_POLICY, c.update_policy(PolicySettings(True, True)))
        assert band.user.policy is not None and band.user.policy.liveness
        band.take_off()
        band.put_on()
        assert await call(Command.CORPORATE_LOGIN, c.corporate_login(True)) == "authenticated"
        page = await call(Command.GET_EVENT_LOG, c.event_log(0, 5))
        assert len(page.events) == 5 and page.end == len(band.events)
        wipe = await call(Command.GET_DELETE_USER_DATA_STATUS, c.delete_user_data_status())
        assert wipe.gesture == "delete-user-data" and not wipe.ready
        await call(Command.CLOSE_SESSION, c.close_session())
        assert not gatt.server.session_open and c.session is None
        await gatt.drain()
        screens = [e.event.data["screen"] for e in c.pending_events()
                   if e.event.kind == EventKind.SCREEN]
        assert "Add User" in screens and "TOUCH SENSOR" in screens
    assert seen == set(Command)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.id)
async def test_a_full_enrollment_through_the_protocol(tmp_path: Path, fixture: Any) -> None:
    band = make_band(fixture, tmp_path)
    async with GattLoopback(band) as gatt:
        c = gatt.client
        await c.handshake(expected_serial=band.identity.serial)
        band.put_on()
        assert (await c.status()).screen == "Setup code"
        await c.enter_setup_code((band.setup_code or "").lower())  # the wearer types it
        samples = await c.start_capture()
        assert samples == fixture.limits.enrollment_touches
        progress: list[tuple[int, int]] = []
        for _ in range(samples):
            band.place_finger()
            band.settle()
            await gatt.drain()
            progress += [(e.event.data["sample"], e.event.data["of"])
                         for e in c.pending_events() if e.event.kind == EventKind.CAPTURE]
        assert progress == [(n, samples) for n in range(1, samples + 1)]
        await c.set_label("tw-user2")
        if fixture.capabilities.corporate_credentials:
            await c.add_corporate_authenticator()
        else:
            with pytest.raises(BandCommandError) as caught:
                await c.add_corporate_authenticator()
            assert caught.value.status == StatusCode.UNSUPPORTED_COMMAND
        await c.set_policy(PolicySettings(liveness=False, haptics=True))
        await c.finish_enrollment()
        status = await c.status()
        assert (status.enrollment, status.auth) == (EnrollmentState.ENROLLED,
                                                    AuthState.AUTHENTICATED)
        assert status.band_label == "TW-USER2" and status.liveness is False
        assert status.corporate_authenticator is fixture.capabilities.corporate_credentials
        assert band.is_authenticated
        logged = await c.full_event_log()
    assert [e.index for e in logged] == list(range(len(band.events)))
    assert all("setup_code" not in e.event.data for e in logged)


async def test_enrollment_refusals_map_to_status_codes(band: EmulatedBand) -> None:
    async with GattLoopback(band) as gatt:
        c = gatt.client
        await c.handshake()

        async def status_of(coro: Awaitable[Any]) -> StatusCode:
            with pytest.raises(BandCommandError) as caught:
                await coro
            return caught.value.status

        assert await status_of(c.enter_setup_code("ABC234")) == StatusCode.PRECONDITION_FAILED
        band.put_on()
        assert await status_of(c.start_capture()) == StatusCode.INVALID_STATE
        wrong = "ZZZZZZ" if band.setup_code != "ZZZZZZ" else "YYYYYY"
        refused = refused_events(band)
        assert await status_of(c.enter_setup_code(wrong)) == StatusCode.SETUP_CODE_MISMATCH
        assert refused_events(band) == refused + 1
        await c.enter_setup_code(band.setup_code or "")
        await c.start_capture()
        for _ in range(8):
            band.place_finger()
            band.settle()
        assert await status_of(c.set_label("   ")) == StatusCode.INVALID_PARAMETER
        assert await status_of(c._request(Command.ENROLL_SET_POLICY, {1: {1: "yes"}})) == (
            StatusCode.INVALID_PARAMETER)
        assert await status_of(c._request(Command.SUBSCRIBE, {1: ["nonsense"]})) == (
            StatusCode.INVALID_PARAMETER)
        assert await status_of(c.update_policy(PolicySettings())) == StatusCode.NOT_AUTHENTICATED
        await c.set_label(None)
        await c.finish_enrollment()
        band.take_off()
        band.put_on()
        assert await status_of(c.update_policy(PolicySettings())) == StatusCode.NOT_AUTHENTICATED
        assert await status_of(c.corporate_login()) == StatusCode.PRECONDITION_FAILED
        for _ in range(band.fixture.limits.lockout_failures):
            band.place_finger(match=False)
            band.settle()
        assert band.auth == AuthState.LOCKED_OUT
        assert await status_of(c.update_policy(PolicySettings())) == StatusCode.LOCKED_OUT
        assert await status_of(c.corporate_login()) == StatusCode.LOCKED_OUT
        assert await status_of(c._request(Command.GET_EVENT_LOG, {2: 0})) == (
            StatusCode.INVALID_PARAMETER)


async def test_the_event_log_pages_through_every_event(band: EmulatedBand) -> None:
    for _ in range(60):
        band.put_on()
        band.take_off()
    async with GattLoopback(band) as gatt:
        c = gatt.client
        await c.handshake()
        pages = []
        start = 0
        while True:
            page = await c.event_log(start, 7)
            pages.append(page)
            if page.complete:
                break
            start = page.next
        assert all(len(p.events) <= 7 for p in pages) and pages[-1].next == len(band.events)
        events = [e for p in pages for e in p.events]
        assert [e.index for e in events] == list(range(len(band.events)))
        assert [e.event.kind for e in events] == [e.kind for e in band.events]
        assert [e.event.data for e in events if e.event.kind != EventKind.ENROLLMENT] == [
            e.data for e in band.events if e.kind != EventKind.ENROLLMENT]
        beyond = await c.event_log(10_000)
        assert beyond.events == () and beyond.next == beyond.end == len(band.events)
        assert len((await c.event_log()).events) == 64  # a full page by default


async def test_delete_user_data_status_and_the_physical_wipe(band: EmulatedBand) -> None:
    enroll(band)
    async with GattLoopback(band) as gatt:
        c = gatt.client
        await c.handshake()
        status = await c.delete_user_data_status()
        assert (status.ready, status.on_wrist, status.last_wiped) == (False, True, None)
        band.take_off()
        band.attach_charger()
        status = await c.delete_user_data_status()
        assert status.ready and status.hold_s == 10.0 and status.enrollment == "enrolled"
        await c.subscribe([EventKind.WIPE])
        band.hold(Button.BOTTOM, 10.5)  # the person's gesture; no command can do this
        await gatt.drain()
        pushed = c.pending_events()
        assert [e.event.data["phase"] for e in pushed] == ["done"]
        status = await c.delete_user_data_status()
        assert status.enrollment == "unenrolled" and status.last_wiped == pushed[0].event.time


async def test_a_security_wipe_reports_busy_while_it_runs(tmp_path: Path) -> None:
    band = make_band(load_fixture("nymi-band-2.0"), tmp_path)
    enroll(band)
    async with GattLoopback(band) as gatt:
        c = gatt.client
        await c.handshake()
        band.take_off()
        band.attach_charger()
        band.hold(Button.BOTTOM, 10.5)  # released on SECURITY WIPE: the wipe now runs ~20 s
        assert (await c.delete_user_data_status()).running
        with pytest.raises(BandCommandError) as caught:
            await c.corporate_login()
        assert caught.value.status == StatusCode.BUSY
        band.settle()
        status = await c.delete_user_data_status()
        assert not status.running and status.enrollment == "unenrolled"


async def test_pushed_events_arrive_through_the_iterator(band: EmulatedBand) -> None:
    async with GattLoopback(band) as gatt:
        c = gatt.client
        await c.handshake()
        await c.subscribe([EventKind.WRIST])
        band.put_on()
        band.take_off()
        iterator = c.events()
        first = await asyncio.wait_for(iterator.__anext__(), 1)
        second = await asyncio.wait_for(iterator.__anext__(), 1)
        assert [first.event.data, second.event.data] == [{"on_wrist": True}, {"on_wrist": False}]
        assert first.index < second.index
        assert [band.events[e.index] for e in (first, second)] == [first.event, second.event]
        await c.aclose()
        assert [e async for e in iterator] == []


@pytest.mark.parametrize("mtu", [23, 64, 185, 517])
async def test_every_mtu_carries_the_handshake_and_commands(band: EmulatedBand, mtu: int) -> None:
    async with GattLoopback(band, mtu=mtu) as gatt:
        await gatt.client.handshake()
        assert (await gatt.client.status()).serial == "AAAH-00125"
        assert all(len(f) <= min(mtu - 3, 512) for f in gatt.written + gatt.notified)


# -- replay, reordering, tampering --------------------------------------------------------------


async def test_a_replayed_request_is_refused_and_closes_the_session(band: EmulatedBand) -> None:
    enroll(band, corporate=True)
    async with GattLoopback(band) as gatt:
        c = gatt.client
        await c.handshake()
        mark = len(gatt.written)
        assert await c.corporate_login(False) == "authenticated"  # a refused sign-in: one event
        request = gatt.written[mark:]
        await c.status()
        refused = refused_events(band)
        for fragment in request:
            await gatt.inject_to_band(fragment)
        assert refused_events(band) == refused  # not executed again
        assert not gatt.server.session_open and c.session is None
        assert c.session_error is not None and c.session_error.status == StatusCode.REPLAYED
        with pytest.raises(SecureSessionError) as caught:
            await c.status()
        assert caught.value.status == StatusCode.SESSION_REQUIRED
        await c.handshake()
        assert (await c.status()).auth == "authenticated"


async def test_reordered_requests_are_refused(band: EmulatedBand) -> None:
    enroll(band, corporate=True)
    async with GattLoopback(band) as gatt:
        c = gatt.client
        await c.handshake()
        gatt.tap_to_band = MessageTap(2, lambda m: m[1] + m[0])
        refused = refused_events(band)
        results = await asyncio.gather(c.corporate_login(False), c.corporate_login(False),
                                       return_exceptions=True)
        assert all(isinstance(r, SecureSessionError) and r.status == StatusCode.OUT_OF_ORDER
                   for r in results)
        await gatt.drain()
        assert refused_events(band) == refused and not gatt.server.session_open


async def test_a_tampered_request_is_refused_and_closes_the_session(band: EmulatedBand) -> None:
    enroll(band, corporate=True)

    def flip_last_byte(messages: list[list[bytes]]) -> list[bytes]:
        fragments = list(messages[0])
        fragments[-1] = fragments[-1][:-1] + bytes([fragments[-1][-1] ^ 0x80])
        return fragments

    async with GattLoopback(band) as gatt:
        c = gatt.client
        await c.handshake()
        gatt.tap_to_band = MessageTap(1, flip_last_byte)
        refused = refused_events(band)
        with pytest.raises(SecureSessionError) as caught:
            await c.corporate_login(False)
        assert caught.value.status == StatusCode.INTEGRITY_FAILURE
        assert refused_events(band) == refused and not gatt.server.session_open
        assert c.session is None


@pytest.mark.parametrize(
    ("rewrite", "status"),
    [
        (lambda m: m[0] + m[0], StatusCode.REPLAYED),
        (lambda m: m[1] + m[0], StatusCode.OUT_OF_ORDER),
        (lambda m: [*m[0][:-1], m[0][-1][:-1] + bytes([m[0][-1][-1] ^ 1]), *m[1]],
         StatusCode.INTEGRITY_FAILURE),
    ],
    ids=["replayed", "reordered", "tampered"],
)
async def test_the_host_refuses_bad_records_from_the_band(
    band: EmulatedBand, rewrite: Callable[[list[list[bytes]]], list[bytes]], status: StatusCode
) -> None:
    async with GattLoopback(band) as gatt:
        c = gatt.client
        await c.handshake()
        await c.subscribe([EventKind.WRIST])
        gatt.tap_to_host = MessageTap(2, rewrite)
        band.put_on()
        band.take_off()
        await gatt.drain()
        assert c.session is None
        assert c.session_error is not None and c.session_error.status == status


async def test_garbage_from_the_host_closes_the_session(band: EmulatedBand) -> None:
    async with GattLoopback(band) as gatt:
        c = gatt.client
        await c.handshake()
        await gatt.inject_to_band(b"\x42\x07garbage")
        assert not gatt.server.session_open and c.session is None
        assert c.session_error is not None and c.session_error.status == StatusCode.INVALID_FRAME


async def test_a_lost_notification_times_out_instead_of_hanging(band: EmulatedBand) -> None:
    async with GattLoopback(band, timeout=0.2) as gatt:
        c = gatt.client
        await c.handshake()
        gatt.tap_to_host = MessageTap(1, lambda m: m[0][:-1])
        with pytest.raises(BandUnreachableError):
            await c.status()


# -- arbitrary fragments ------------------------------------------------------------------------

def _state(band: EmulatedBand) -> tuple[object, ...]:
    return (band.status(), len(band.events), band.user, band.setup_code)


def test_arbitrary_fragments_never_break_the_band(band: EmulatedBand) -> None:
    server = ManagementServer.for_band(band)
    before = _state(band)

    @settings(max_examples=300, deadline=None)
    @given(arbitrary_fragments)
    def run(fragments: list[bytes]) -> None:
        server.disconnect()
        for fragment in fragments:
            for message in responses(server.receive(fragment)):
                assert isinstance(message, Response)
                assert message.status != StatusCode.OK or message.command in (
                    Command.HELLO, Command.GET_INFO)
        assert _state(band) == before

    run()


async def test_arbitrary_fragments_inside_a_session_never_break_the_band(
    band: EmulatedBand,
) -> None:
    async with GattLoopback(band) as gatt:
        await gatt.client.handshake()
    server = gatt.server
    host = HostHandshake(simulation_root())
    hello = plain_request(Command.HELLO, host.hello_body())
    before = _state(band)

    @settings(max_examples=200, deadline=None)
    @given(arbitrary_fragments, st.integers(0, 2**64 - 1), st.binary(min_size=16, max_size=60))
    def run(fragments: list[bytes], sequence: int, ciphertext: bytes) -> None:
        server.disconnect()
        for fragment in hello:
            server.receive(fragment)
        assert server.session_open
        forged = fragment_message(encode_message(Record(sequence, ciphertext)), 1, 23)
        for fragment in [*forged, *fragments]:
            server.receive(fragment)
        assert _state(band) == before

    run()


async def test_arbitrary_notifications_never_break_the_client(band: EmulatedBand) -> None:
    async with GattLoopback(band) as gatt:
        client = gatt.client
        await client.handshake()

        @settings(max_examples=300, deadline=None)
        @given(arbitrary_fragments)
        def run(fragments: list[bytes]) -> None:
            for fragment in fragments:
                client.feed(fragment)

        run()
        client.feed(b"\x00")  # at least this one is garbage
        assert client.session is None  # garbage broke the session, and nothing raised
        client.disconnect()  # a link that delivered garbage is reconnected; a partial is dropped
        await client.handshake()
        assert (await client.status()).serial == "AAAH-00125"


def test_responses_to_large_requests_stay_within_the_limit(band: EmulatedBand) -> None:
    server = ManagementServer.for_band(band)
    big = encode_message(Request(1, Command.GET_INFO, {9: bytes(4000)}))
    out = [r for f in Fragmenter().fragment(big) for r in responses(server.receive(f))]
    assert len(out) == 1 and isinstance(out[0], Response) and out[0].status == StatusCode.OK
    too_big = b"\x00\x00" + (4097).to_bytes(2, "big") + encode({})
    (refusal,) = responses(server.receive(too_big))
    assert isinstance(refusal, Response) and refusal.status == StatusCode.MESSAGE_TOO_LARGE
