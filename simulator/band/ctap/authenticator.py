"""The band's CTAP 2.1 authenticator: bytes in, bytes out (CTAP 2.1 §6, §8).

:class:`Authenticator` is transport-free. A transport hands it a CTAP2 request (command byte +
CBOR parameters) and relays the answer (status byte + CBOR); it runs the call in a worker thread
when the command may wait for the wearer, passes a ``cancel`` event it sets on CTAPHID_CANCEL or
an NFC deselect, and turns ``keepalive`` callbacks into KEEPALIVE frames (1 PROCESSING,
2 UPNEEDED). U2F raw messages go through :meth:`Authenticator.process_u2f`.

Nothing here raises to the caller: malformed input of any kind is answered with the status the
spec prescribes, and an unexpected internal failure with CTAP1_ERR_OTHER, before any storage
change is committed.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from simulator.band.storage import FlashStorage
from simulator.fixtures import Fixture

from . import codec
from .bio import bio_enrollment
from .config import authenticator_config
from .constants import MAX_CRED_BLOB_LENGTH, MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH, PUBLIC_KEY, WireEnum
from .context import Core
from .credman import credential_management
from .errors import ERR, CtapError
from .get_assertion import get_assertion, get_next_assertion
from .large_blobs import capacity, large_blobs
from .make_credential import make_credential
from .u2f import process_u2f
from .wearer import BandBody, Wearer

logger = logging.getLogger(__name__)

#: One-byte responses by status code (errors carry no body).
_STATUS = {code: bytes((code,)) for code in range(256)}
#: Reset is only honoured this many seconds after power-up (§6.6).
RESET_WINDOW_S = 10.0
#: uvModality of a fingerprint sensor (FIDO Registry §3.1 USER_VERIFY_FINGERPRINT_INTERNAL).
UV_MODALITY_FINGERPRINT = 0x02


class Authenticator:
    """One band's CTAP 2.1 authenticator built from a fixture.

    :param fixture: the band model; its ``[ctap]`` table defines what getInfo answers.
    :param storage: the band's flash; all state lives under ``user/ctap/``.
    :param wearer: the band's body (presence, verification, enrollment samples, erase).
    :param rng: random source (injectable for deterministic tests).
    :param clock: monotonic seconds (band time); the reset window and timers use it.
    """

    @enum.unique
    class CMD(WireEnum):
        """Authenticator API command bytes (CTAP 2.1 §6)."""

        MAKE_CREDENTIAL = 0x01
        GET_ASSERTION = 0x02
        GET_INFO = 0x04
        CLIENT_PIN = 0x06
        RESET = 0x07
        GET_NEXT_ASSERTION = 0x08
        BIO_ENROLLMENT = 0x09
        CREDENTIAL_MANAGEMENT = 0x0A
        SELECTION = 0x0B
        LARGE_BLOBS = 0x0C
        CONFIG = 0x0D
        BIO_ENROLLMENT_PRE = 0x40
        CREDENTIAL_MANAGEMENT_PRE = 0x41

    @enum.unique
    class GET_INFO(WireEnum):
        """authenticatorGetInfo response keys (§6.4)."""

        VERSIONS = 0x01
        EXTENSIONS = 0x02
        AAGUID = 0x03
        OPTIONS = 0x04
        MAX_MSG_SIZE = 0x05
        PIN_UV_AUTH_PROTOCOLS = 0x06
        MAX_CREDENTIAL_COUNT_IN_LIST = 0x07
        MAX_CREDENTIAL_ID_LENGTH = 0x08
        TRANSPORTS = 0x09
        ALGORITHMS = 0x0A
        MAX_SERIALIZED_LARGE_BLOB_ARRAY = 0x0B
        FORCE_PIN_CHANGE = 0x0C
        MIN_PIN_LENGTH = 0x0D
        FIRMWARE_VERSION = 0x0E
        MAX_CRED_BLOB_LENGTH = 0x0F
        MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH = 0x10
        PREFERRED_PLATFORM_UV_ATTEMPTS = 0x11
        UV_MODALITY = 0x12
        REMAINING_DISCOVERABLE_CREDENTIALS = 0x14

    def __init__(
        self,
        fixture: Fixture,
        storage: FlashStorage,
        wearer: Wearer,
        *,
        rng: Callable[[int], bytes] = os.urandom,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._core = Core(fixture, storage, wearer, rng=rng, clock=clock)
        self._lock = threading.RLock()
        self._decoder = codec.RequestDecoder()
        # A power cycle or Delete User Data that arrived while a command was running.
        self._deferred = False
        self._erase_pending = False
        self._max_msg = self._core.spec.max_msg_size
        C = Authenticator.CMD
        features = self._core.features
        handlers: dict[int, Callable[[Core, codec.Params], bytes]] = {
            C.MAKE_CREDENTIAL: make_credential,
            C.GET_ASSERTION: get_assertion,
            C.GET_NEXT_ASSERTION: _no_params(get_next_assertion),
            C.GET_INFO: _no_params(self._get_info),
            C.RESET: _no_params(self._reset),
        }
        self._no_params = {C.GET_NEXT_ASSERTION, C.GET_INFO, C.RESET, C.SELECTION}
        if features.fido_2_1:
            handlers[C.SELECTION] = _no_params(self._selection)
        if features.client_pin_command:
            handlers[C.CLIENT_PIN] = _mapped(lambda core, p: core.pin.handle(p))
        if features.cred_mgmt:
            handlers[C.CREDENTIAL_MANAGEMENT] = _mapped(
                lambda core, p: credential_management(core, p, preview=False)
            )
        if features.cred_mgmt_preview:
            handlers[C.CREDENTIAL_MANAGEMENT_PRE] = _mapped(
                lambda core, p: credential_management(core, p, preview=True)
            )
        if features.bio_enroll:
            handlers[C.BIO_ENROLLMENT] = _mapped(bio_enrollment)
        if features.bio_enroll_preview:
            handlers[C.BIO_ENROLLMENT_PRE] = _mapped(bio_enrollment)
        if features.config:
            handlers[C.CONFIG] = _mapped(authenticator_config)
        if features.large_blobs:
            handlers[C.LARGE_BLOBS] = _mapped(large_blobs)
        self._handlers = handlers
        self._body = wearer if isinstance(wearer, BandBody) else None
        if self._body is not None:
            # The band tells its authenticator itself: whoever embeds one gets a consistent pair.
            self._body.watch(self.on_user_data_erased, self.lose_power)
        # Commands that may continue the remembered state of the previous one (§6.3, §6.8).
        continuing = {C.GET_NEXT_ASSERTION, C.CREDENTIAL_MANAGEMENT, C.CREDENTIAL_MANAGEMENT_PRE}
        # command byte -> (handler, takes parameters, keeps the previous command's state)
        self._table: dict[int, tuple[Callable[[Core, codec.Params], bytes], bool, bool]] = {
            command: (handler, command not in self._no_params, command in continuing)
            for command, handler in handlers.items()
        }

    # -- public API -------------------------------------------------------------------------

    @property
    def fixture(self) -> Fixture:
        return self._core.fixture

    @property
    def supported_commands(self) -> frozenset[int]:
        """Command bytes this model serves (the rest answer CTAP1_ERR_INVALID_COMMAND)."""
        return frozenset(self._handlers)

    def process_cbor(
        self,
        request: bytes,
        *,
        cancel: threading.Event | None = None,
        keepalive: Callable[[int], None] | None = None,
    ) -> bytes:
        """Answer one CTAP2 request: status byte, then the CBOR response map if any (§8.2)."""
        length = len(request)
        if not length or length > self._max_msg:
            return b"\x03"  # CTAP1_ERR_INVALID_LENGTH: empty, or beyond the announced maxMsgSize
        command = request[0]
        entry = self._table.get(command)
        if entry is None:
            return b"\x01"  # CTAP1_ERR_INVALID_COMMAND
        handler, takes_params, keeps_pending = entry
        if length > 1 and not takes_params:
            return b"\x03"  # CTAP1_ERR_INVALID_LENGTH: this command takes no parameters
        core = self._core
        if type(request) is not bytes:
            request = bytes(request)
        with self._lock:
            if self._deferred:
                self._apply_deferred()
            if not keeps_pending and core.pending is not None:
                core.pending = None
            user = core.user
            command_cancel = user.cancel
            command_cancel.transport = cancel
            command_cancel.aborted = False
            user.keepalive = keepalive
            try:
                return handler(core, self._decoder.params(request))
            except CtapError as exc:
                return _STATUS[exc.code]
            except Exception:
                logger.exception("CTAP command 0x%02x failed", command)
                return _STATUS[ERR.OTHER]
            finally:
                if cancel is not None or keepalive is not None:
                    user.begin(None, None)
                if self._deferred:
                    self._apply_deferred()

    def process_u2f(self, apdu: bytes) -> bytes:
        """Answer one CTAP1/U2F request APDU: response data and a status word."""
        with self._lock:
            if self._deferred:
                self._apply_deferred()
            self._core.pending = None
            self._core.user.begin(None, None)
            try:
                return process_u2f(self._core, bytes(apdu))
            except Exception:
                logger.exception("U2F request failed")
                return b"\x6f\x00"  # ISO 7816 "no precise diagnosis"
            finally:
                if self._deferred:
                    self._apply_deferred()

    def power_cycle(self) -> None:
        """Cut the band's power for an instant (a reboot request from the host, the control API).

        On a band this is the whole band's power cycle: its RAM is lost, wrist authentication
        included, and the band's power-loss hook brings the authenticator down with it
        (:meth:`lose_power`). An authenticator without a band body loses only its own RAM.
        """
        if self._body is not None:
            self._body.power_cycle()
        else:
            self.lose_power()

    def lose_power(self) -> None:
        """The authenticator lost power: volatile state goes, flash stays, the reset window reopens.

        The band calls it when the whole band restarts; the NFC front end when the reader's field
        goes away, because the FIDO interface over NFC runs on the field: its pinUvAuthTokens,
        key-agreement keys, the three-wrong-PINs block and any pending command state are gone,
        while the band itself (battery, wrist authentication) carries on.

        Never blocks on a command in progress in another thread (the band calls this from the
        thread that moves the physical world, which that command's wearer may be waiting on):
        the command's waits are aborted, and the volatile state is dropped as it ends.
        """
        core = self._core
        core.power_up = core.clock()
        self._defer(erase=False)

    @property
    def can_wink(self) -> bool:
        """CTAPHID_WINK is served: the band has a vibration motor."""
        return self._body is not None and self._body.can_wink()

    def wink(self) -> None:
        """CTAPHID_WINK: one short vibration (nothing on a band without haptics)."""
        if self._body is not None and self._body.can_wink():
            self._body.wink()

    def on_user_data_erased(self) -> None:
        """Delete User Data crypto-erased the flash: drop every cache of user data.

        Like :meth:`power_cycle`, it aborts a command in progress rather than waiting for it.
        """
        self._defer(erase=True)

    def _defer(self, *, erase: bool) -> None:
        if erase:
            self._erase_pending = True
        self._deferred = True
        self._core.user.cancel.abort()
        if self._lock.acquire(blocking=False):
            try:
                self._apply_deferred()
            finally:
                self._lock.release()

    def _apply_deferred(self) -> None:
        core = self._core
        self._deferred = False
        if self._erase_pending:
            self._erase_pending = False
            core.invalidate()
        core.drop_volatile()

    # -- commands without parameters -------------------------------------------------------

    def _get_info(self, core: Core) -> bytes:
        """authenticatorGetInfo (§6.4), built from the fixture and the present state."""
        spec = core.spec
        features = core.features
        G = Authenticator.GET_INFO
        options = dict(features.options)
        if features.client_pin:
            options["clientPin"] = core.pin.pin_set
        if features.builtin_uv:
            options["uv"] = core.user.uv_configured()
        if features.bio_enroll:
            options["bioEnroll"] = core.templates.enrolled()
        if "userVerificationMgmtPreview" in options:
            options["userVerificationMgmtPreview"] = core.templates.enrolled()
        if features.always_uv:
            options["alwaysUv"] = core.always_uv()
            if core.always_uv() and "makeCredUvNotRqd" in options:
                options["makeCredUvNotRqd"] = False
        info: dict[int, Any] = {
            G.VERSIONS: list(spec.versions),
            G.AAGUID: core.aaguid,
            G.OPTIONS: options,
            G.MAX_MSG_SIZE: spec.max_msg_size,
            G.MAX_CREDENTIAL_COUNT_IN_LIST: spec.max_credential_count_in_list,
            G.MAX_CREDENTIAL_ID_LENGTH: spec.max_credential_id_length,
            G.TRANSPORTS: list(spec.transports),
            G.ALGORITHMS: [{"alg": int(alg), "type": PUBLIC_KEY} for alg in features.algorithms],
        }
        if spec.extensions:
            info[G.EXTENSIONS] = list(spec.extensions)
        if features.pin_protocols:
            info[G.PIN_UV_AUTH_PROTOCOLS] = list(features.pin_protocols)
        if features.fido_2_1:
            info[G.FIRMWARE_VERSION] = spec.firmware_version
            info[G.REMAINING_DISCOVERABLE_CREDENTIALS] = max(
                core.creds.slots - core.creds.resident_count(), 0
            )
            if features.large_blobs:
                info[G.MAX_SERIALIZED_LARGE_BLOB_ARRAY] = capacity(core)
            if features.client_pin:
                info[G.FORCE_PIN_CHANGE] = core.settings.state.force_pin_change
                info[G.MIN_PIN_LENGTH] = core.settings.state.min_pin_length
            if "credBlob" in features.extensions:
                info[G.MAX_CRED_BLOB_LENGTH] = MAX_CRED_BLOB_LENGTH
            if features.set_min_pin_length:
                info[G.MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH] = MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH
            if features.builtin_uv and not features.wrist_uv:
                info[G.PREFERRED_PLATFORM_UV_ATTEMPTS] = 1
                info[G.UV_MODALITY] = UV_MODALITY_FINGERPRINT
        return b"\x00" + codec.encode({int(k): v for k, v in info.items()})

    def _reset(self, core: Core) -> bytes:
        """authenticatorReset (§6.6): on a band this is Delete User Data.

        Where presence is the wrist authentication (Nymi models), a reset that would destroy an
        enrolled user's data demands what the band demands for Delete User Data: the band off
        the wrist, on its charger, with the bottom button held down while the request arrives;
        that gesture is then the evidence of user interaction. Anything else is
        CTAP2_ERR_OPERATION_DENIED and changes nothing. Elsewhere (a button for presence) the
        press within 10 s of power-up is the gesture (§6.6).
        """
        if core.features.wrist_presence:
            self._require_delete_gesture(core)
        else:
            if core.clock() - core.power_up > RESET_WINDOW_S:
                raise CtapError(ERR.NOT_ALLOWED)
            core.user.require_presence(on_timeout=ERR.USER_ACTION_TIMEOUT)
        core.wearer.erase_user_data()
        core.invalidate()
        core.drop_volatile()
        return b"\x00"

    @staticmethod
    def _require_delete_gesture(core: Core) -> None:
        held = getattr(core.wearer, "delete_gesture_held", None)
        if held is None or not held():
            raise CtapError(ERR.OPERATION_DENIED)

    def _selection(self, core: Core) -> bytes:
        """authenticatorSelection (§6.9): a test of user presence, nothing else."""
        core.user.require_presence(on_timeout=ERR.USER_ACTION_TIMEOUT)
        return b"\x00"


def _no_params(
    handler: Callable[[Core], bytes],
) -> Callable[[Core, codec.Params], bytes]:
    """A command without parameters (the dispatcher refuses any payload before decoding)."""

    def call(core: Core, params: codec.Params) -> bytes:
        return handler(core)

    return call


def _mapped(
    handler: Callable[[Core, codec.Params], dict[Any, Any]],
) -> Callable[[Core, codec.Params], bytes]:
    """A handler returning a response map; an empty map is an empty response (status only)."""

    def call(core: Core, params: codec.Params) -> bytes:
        response = handler(core, params)
        if not response:
            return b"\x00"
        return b"\x00" + codec.encode({int(k): v for k, v in response.items()})

    return call
