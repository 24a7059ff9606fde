"""The emulated band's management commands, and how it maps refusals (docs/protocol.md §8, §11).

:class:`Commands` runs one decoded request body against an :class:`EmulatedBand` and returns the
status, result body and reason; it knows nothing about fragments or records, which are
:class:`~simulator.band.management_server.ManagementServer`'s business.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from nymi_device.errors import InvalidInputError, PhysicalActionError, StatusCode, StorageError
from nymi_device.protocol.management import (
    MAX_MESSAGE,
    MAX_PLAINTEXT,
    SUPPORTED_VERSIONS,
    Body,
    Command,
    MessageError,
)
from nymi_device.protocol.management_bodies import (
    MAX_EVENTS_PER_PAGE,
    BodyReader,
    Capabilities,
    WipeStatus,
    decode_policy,
    encode_event,
    encode_event_log_page,
    encode_info,
    encode_status,
    encode_wipe_status,
)
from nymi_device.protocol.management_cbor import encode
from nymi_device.protocol.management_session import RecordLayer
from nymi_device.protocol.model import AuthState, BandEvent, EnrollmentState, EventKind, PowerState
from simulator.band.band import EmulatedBand
from simulator.band.records import BandPolicy

__all__ = ["ActivityTracker", "Commands", "Refused", "SessionState"]

logger = logging.getLogger(__name__)

_KINDS = frozenset(kind.value for kind in EventKind)
_CORPORATE = frozenset({Command.ENROLL_ADD_CORPORATE_AUTHENTICATOR, Command.CORPORATE_LOGIN})
#: Room an event-log response needs around its events (envelope, counters, array head).
_PAGE_OVERHEAD = 96


class Refused(Exception):
    """A command the band refuses: the status and the reason (§11)."""

    def __init__(self, status: StatusCode, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class SessionState:
    """One secure session on the band: its record layer and what the host asked of it."""

    records: RecordLayer
    version: int
    subscribed: frozenset[EventKind] = frozenset()
    watch_capture: bool = False  # ENROLL_START_CAPTURE: capture progress until capture ends
    staged_policy: BandPolicy | None = None


@dataclass
class ActivityTracker:
    """What the band is busy with (a wipe or restart running) and when it last wiped."""

    running: set[EventKind] = field(default_factory=set)
    last_wiped: float | None = None

    def track(self, event: BandEvent) -> None:
        if event.kind in (EventKind.WIPE, EventKind.RESTART):
            if event.data.get("phase") == "started":
                self.running.add(event.kind)
            else:
                self.running.discard(event.kind)
        if event.kind == EventKind.WIPE and event.data.get("phase") == "done":
            self.last_wiped = event.time


class Commands:
    """The handlers of §8 for one band; ``session`` returns the open session, if any."""

    def __init__(
        self,
        band: EmulatedBand,
        activity: ActivityTracker,
        session: Callable[[], SessionState | None],
    ) -> None:
        self.band = band
        self.activity = activity
        self._session = session
        self.capabilities = self._make_capabilities()
        self._handlers: dict[int, Callable[[Body], Body]] = {
            Command.GET_INFO: self._get_info,
            Command.GET_STATUS: self._get_status,
            Command.CLOSE_SESSION: lambda body: {},
            Command.ENROLL_SETUP_CODE: self._setup_code,
            Command.ENROLL_START_CAPTURE: self._start_capture,
            Command.ENROLL_SET_LABEL: self._set_label,
            Command.ENROLL_ADD_CORPORATE_AUTHENTICATOR: self._add_corporate,
            Command.ENROLL_SET_POLICY: self._set_policy,
            Command.ENROLL_FINISH: self._finish,
            Command.UPDATE_POLICY: self._update_policy,
            Command.CORPORATE_LOGIN: self._corporate_login,
            Command.GET_EVENT_LOG: self._event_log,
            Command.SUBSCRIBE: self._subscribe,
            Command.UNSUBSCRIBE: self._unsubscribe,
            Command.GET_DELETE_USER_DATA_STATUS: self._wipe_status,
        }

    def run(self, command: int, body: Body) -> tuple[StatusCode, Body, str | None]:
        """Run one command; (status, result body, reason). Never raises (§11)."""
        handler = self._handlers.get(command)
        if handler is None or command not in self.capabilities.commands:
            return StatusCode.UNSUPPORTED_COMMAND, {}, f"command {command:#x}"
        try:
            return StatusCode.OK, handler(body), None
        except (Refused, MessageError) as exc:
            return exc.status, {}, exc.detail
        except PhysicalActionError as exc:
            return StatusCode.INVALID_STATE, {}, str(exc)
        except StorageError as exc:
            return StatusCode.STORAGE_FAILURE, {}, str(exc)
        except InvalidInputError as exc:
            return StatusCode.INVALID_PARAMETER, {}, str(exc)
        except Exception:
            logger.exception("management command %#x failed", command)
            return StatusCode.INTERNAL_ERROR, {}, "internal error"

    def _make_capabilities(self) -> Capabilities:
        corporate = self.band.fixture.capabilities.corporate_credentials
        commands = frozenset(int(c) for c in Command if corporate or c not in _CORPORATE)
        return Capabilities(commands, tuple(k.value for k in EventKind), MAX_MESSAGE,
                            MAX_EVENTS_PER_PAGE)

    def _current(self) -> SessionState:
        session = self._session()
        if session is None:  # unreachable: only GET_INFO runs without a session
            raise Refused(StatusCode.SESSION_REQUIRED, "needs a secure session")
        return session

    def _require_available(self) -> None:
        if self.band.power == PowerState.OFF:
            raise Refused(StatusCode.PRECONDITION_FAILED, "the band is off (battery flat)")
        if self.activity.running:
            raise Refused(StatusCode.BUSY, "a wipe or restart is running")

    def _enrollment_step(self, *states: EnrollmentState) -> None:
        self._require_available()
        if not self.band.on_wrist:
            raise Refused(StatusCode.PRECONDITION_FAILED, "the band must be worn to enroll")
        if self.band.enrollment not in states:
            wanted = " or ".join(s.value for s in states)
            raise Refused(StatusCode.INVALID_STATE,
                          f"the band is {self.band.enrollment.value}, not {wanted}")

    def _get_info(self, body: Body) -> Body:
        return encode_info(self.band.info(), SUPPORTED_VERSIONS)

    def _get_status(self, body: Body) -> Body:
        return encode_status(self.band.status())

    def _setup_code(self, body: Body) -> Body:
        code = BodyReader(body, StatusCode.INVALID_PARAMETER, "ENROLL_SETUP_CODE").text(1, 32)
        self._enrollment_step(EnrollmentState.SETUP_CODE_SHOWN)
        try:
            self.band.enter_setup_code(code)
        except InvalidInputError:
            raise Refused(StatusCode.SETUP_CODE_MISMATCH,
                          "the setup code is not the one the band shows") from None
        return {}

    def _start_capture(self, body: Body) -> Body:
        self._enrollment_step(EnrollmentState.ADD_USER)
        session = self._current()
        session.watch_capture = True
        try:
            self.band.start_capture()
        except BaseException:
            session.watch_capture = False
            raise
        return {1: self.band.fixture.limits.enrollment_touches}

    def _set_label(self, body: Body) -> Body:
        label = BodyReader(body, StatusCode.INVALID_PARAMETER, "ENROLL_SET_LABEL").optional_text(
            1, 64)
        self._enrollment_step(EnrollmentState.LABELING)
        return {1: self.band.set_label(label)}

    def _add_corporate(self, body: Body) -> Body:
        self._enrollment_step(EnrollmentState.LABELING, EnrollmentState.APPLYING_POLICY)
        self.band.add_corporate_authenticator()
        return {}

    def _policy(self, body: Body, what: str) -> BandPolicy:
        settings = decode_policy(BodyReader(body, StatusCode.INVALID_PARAMETER, what).int_map(1))
        return BandPolicy(liveness=settings.liveness, haptics=settings.haptics)

    def _set_policy(self, body: Body) -> Body:
        policy = self._policy(body, "ENROLL_SET_POLICY")
        self._enrollment_step(EnrollmentState.LABELING, EnrollmentState.APPLYING_POLICY)
        self._current().staged_policy = policy
        return {}

    def _finish(self, body: Body) -> Body:
        self._enrollment_step(EnrollmentState.LABELING, EnrollmentState.APPLYING_POLICY)
        session = self._current()
        default = self.band.fixture.default_policy
        policy = session.staged_policy or BandPolicy(default.liveness, default.haptics)
        self.band.apply_policy(policy)
        session.staged_policy = None
        return {}

    def _update_policy(self, body: Body) -> Body:
        policy = self._policy(body, "UPDATE_POLICY")
        self._require_available()
        if self.band.auth == AuthState.LOCKED_OUT:
            raise Refused(StatusCode.LOCKED_OUT, "the band is locked out")
        if not self.band.is_authenticated or self.band.enrollment != EnrollmentState.ENROLLED:
            raise Refused(StatusCode.NOT_AUTHENTICATED,
                          "a policy reaches the band only while it is worn and authenticated")
        self.band.apply_policy_update(policy)
        return {}

    def _corporate_login(self, body: Body) -> Body:
        accepted = BodyReader(body, StatusCode.INVALID_PARAMETER, "CORPORATE_LOGIN").boolean(1)
        self._require_available()
        band = self.band
        if band.auth == AuthState.LOCKED_OUT:
            raise Refused(StatusCode.LOCKED_OUT, "the band is locked out")
        if not (band.on_wrist and band.enrollment == EnrollmentState.ENROLLED):
            raise Refused(StatusCode.PRECONDITION_FAILED, "needs an enrolled band on the wrist")
        if not band.user.corporate_authenticator:
            raise Refused(StatusCode.PRECONDITION_FAILED, "no corporate credential authenticator")
        band.corporate_login(accepted)
        return {1: band.auth.value}

    def _event_log(self, body: Body) -> Body:
        reader = BodyReader(body, StatusCode.INVALID_PARAMETER, "GET_EVENT_LOG")
        start = reader.uint(1, default=0)
        limit = reader.uint(2, MAX_EVENTS_PER_PAGE, default=MAX_EVENTS_PER_PAGE)
        if limit == 0:
            raise reader.fail(2, f"1..{MAX_EVENTS_PER_PAGE}")
        events, first = self.band.events, 0
        end = len(events)
        index = min(max(start, first), end)
        page: list[Body] = []
        budget = MAX_PLAINTEXT - _PAGE_OVERHEAD
        while index < end and len(page) < limit:
            item = encode_event(index, events[index])
            size = len(encode(item))
            if size > budget:
                if not page:  # one event larger than a page: skip it rather than stall paging
                    logger.warning("event %d too large for the event log (%d bytes)", index, size)
                    index += 1
                    continue
                break
            page.append(item)
            budget -= size
            index += 1
        return encode_event_log_page(page, index, end, first)

    def _subscribe(self, body: Body) -> Body:
        reader = BodyReader(body, StatusCode.INVALID_PARAMETER, "SUBSCRIBE")
        chosen: set[EventKind] = set()
        for kind in reader.array(1, 64) if reader.has(1) else []:
            if not isinstance(kind, str) or kind not in _KINDS:
                raise reader.fail(1, f"an array of event kinds ({kind!r} is not one)")
            chosen.add(EventKind(kind))
        self._current().subscribed = frozenset(chosen) or frozenset(EventKind)
        return {1: sorted(k.value for k in self._current().subscribed)}

    def _unsubscribe(self, body: Body) -> Body:
        self._current().subscribed = frozenset()
        return {}

    def _wipe_status(self, body: Body) -> Body:
        band = self.band
        return encode_wipe_status(WipeStatus(
            gesture=band.fixture.capabilities.wipe_gesture,
            hold_s=band.fixture.timing.wipe_hold_s,
            ready=band.power != PowerState.OFF and band.on_charger and not band.on_wrist,
            on_wrist=band.on_wrist,
            on_charger=band.on_charger,
            enrollment=band.enrollment,
            running=EventKind.WIPE in self.activity.running,
            last_wiped=self.activity.last_wiped,
        ))
