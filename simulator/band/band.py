"""The emulated band's firmware model: body, biometrics, enrollment, lockout and wipe.

:class:`EmulatedBand` reproduces the band's documented behaviour (screens, authentication,
failures and lockout, Delete User Data, restart, battery). Every
duration is band time on a :class:`~simulator.clock.VirtualClock`; every change of state is a
:class:`~nymi_device.protocol.model.BandEvent` that observers receive and the band keeps in
:attr:`EmulatedBand.events`. Durable state (identity, the wearer's data) is on
:class:`~simulator.band.storage.FlashStorage`; the rest is the band's RAM and the physical world,
which :meth:`EmulatedBand.world` captures for the fleet directory.
"""

from __future__ import annotations

import secrets
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nymi_device.errors import InvalidInputError, PhysicalActionError
from nymi_device.protocol import screens
from nymi_device.protocol.model import (
    AuthState,
    BandEvent,
    BandInfo,
    BandStatus,
    Button,
    EnrollmentState,
    EventKind,
    Haptic,
    PowerState,
    utc_now,
)
from simulator.band.battery import Battery
from simulator.band.failures import failed_touch
from simulator.band.home import IN_ENROLLMENT as _IN_ENROLLMENT
from simulator.band.home import home_screen
from simulator.band.records import (
    BandPolicy,
    Identity,
    UserData,
    load_identity,
    load_user_data,
    save_identity,
    save_user_data,
)
from simulator.band.storage import FlashStorage
from simulator.clock import Timer, VirtualClock, check_duration
from simulator.fixtures import Fixture

EventListener = Callable[[BandEvent], None]
_SETUP_CODE_ALPHABET = string.ascii_uppercase.replace("O", "").replace("I", "") + "23456789"


@dataclass
class _Hold:
    button: Button
    since: float
    timer: Timer | None
    fired: bool = False


class EmulatedBand:
    """One band. Build it with :meth:`create` (new) or :meth:`restore` (from a world snapshot)."""

    def __init__(
        self, fixture: Fixture, storage: FlashStorage, clock: VirtualClock, identity: Identity
    ) -> None:
        self.fixture = fixture
        self.storage = storage
        self.clock = clock
        self.identity = identity
        self.events: list[BandEvent] = []
        self._listeners: list[EventListener] = []
        #: Held by whoever changes the band while other threads (a FIDO2 request waiting for
        #: the wearer) may be reading it.
        self.lock = threading.RLock()
        self.user = load_user_data(storage)
        self.power = PowerState.AWAKE
        self.on_wrist = False
        self.on_charger = False
        self.battery = Battery(fixture.battery, 100.0, clock.now())
        self.enrollment = EnrollmentState.ENROLLED if self.user.enrolled else (
            EnrollmentState.UNENROLLED
        )
        self.auth = AuthState.LOCKED_OUT if self.user.locked_out else AuthState.DEAUTHENTICATED
        self.screen = screens.NO_USER
        self.setup_code: str | None = None
        self.captured_samples = 0
        self.finger_down = False
        self.last_activity = clock.now()
        self.charger_since: float | None = None
        self.shutdown_at: float | None = None
        self._holds: dict[Button, _Hold] = {}
        self._interaction: Timer | None = None
        self._busy = False  # a wipe or restart is running
        self._pending_label: str | None = None
        self._pending_corporate = False
        #: Called after user data was erased (the FIDO2 authenticator drops its caches here).
        self.wipe_hooks: list[Callable[[], None]] = []
        #: Called when the band loses its RAM (restart, simulated power cycle).
        self.power_cycle_hooks: list[Callable[[], None]] = []
        clock.add_background(self._next_background_event)
        self._rebase_battery()

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def create(
        cls, fixture: Fixture, storage: FlashStorage, clock: VirtualClock, identity: Identity
    ) -> EmulatedBand:
        if load_identity(storage) is None:
            save_identity(storage, identity)
        band = cls(fixture, storage, clock, identity)
        band._show(band._home_screen())
        return band

    @classmethod
    def restore(
        cls, fixture: Fixture, storage: FlashStorage, clock: VirtualClock, world: dict[str, Any]
    ) -> EmulatedBand:
        identity = load_identity(storage)
        if identity is None:
            raise InvalidInputError("band flash holds no identity record")
        band = cls(fixture, storage, clock, identity)
        band._load_world(world)
        return band

    def world(self) -> dict[str, Any]:
        """The RAM and physical state to keep between commands (flash is kept separately)."""
        if self._interaction is not None or self._holds or self._busy:
            raise PhysicalActionError("band is in the middle of an interaction; settle it first")
        return {
            "time": self.clock.now(),
            "power": self.power.value,
            "on_wrist": self.on_wrist,
            "on_charger": self.on_charger,
            "battery": [self.battery.level_at, self.battery.since],
            "enrollment": self.enrollment.value,
            "auth": self.auth.value,
            "screen": self.screen,
            "setup_code": self.setup_code,
            "captured_samples": self.captured_samples,
            "pending_label": self._pending_label,
            "pending_corporate": self._pending_corporate,
            "last_activity": self.last_activity,
            "charger_since": self.charger_since,
            "shutdown_at": self.shutdown_at,
        }

    def _load_world(self, w: dict[str, Any]) -> None:
        self.power = PowerState(w["power"])
        self.on_wrist = bool(w["on_wrist"])
        self.on_charger = bool(w["on_charger"])
        self.battery.level_at, self.battery.since = (float(x) for x in w["battery"])
        saved = EnrollmentState(w["enrollment"])
        # Flash is the truth for enrollment: a wipe that finished wins over a stale snapshot.
        if self.user.enrolled:
            self.enrollment = EnrollmentState.ENROLLED
        else:
            self.enrollment = saved if saved in _IN_ENROLLMENT else EnrollmentState.UNENROLLED
        auth = AuthState(w["auth"])
        self.auth = AuthState.LOCKED_OUT if self.user.locked_out else (
            auth if self.user.enrolled and auth != AuthState.LOCKED_OUT
            else AuthState.DEAUTHENTICATED
        )
        self.screen = str(w["screen"])
        self.setup_code = w.get("setup_code")
        self.captured_samples = int(w.get("captured_samples", 0))
        if self.enrollment in _IN_ENROLLMENT:
            self._pending_label = w.get("pending_label")
            self._pending_corporate = bool(w.get("pending_corporate", False))
        self.last_activity = float(w["last_activity"])
        self.charger_since = w.get("charger_since")
        self.shutdown_at = w.get("shutdown_at")
        # The rate since the battery's last change is the one of the state just loaded (it
        # changes only with that state), not the one of a band that was just built.
        self._rebase_battery(at=self.battery.since)
        self._rebase_battery()

    # -- observation ----------------------------------------------------------------------

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, kind: EventKind, **data: Any) -> None:
        event = BandEvent(self.clock.now(), kind, data, utc_now())
        self.events.append(event)
        for listener in list(self._listeners):
            listener(event)

    def _show(self, text: str, *, again: bool = False) -> None:
        if again or text != self.screen:
            self.screen = text
            self._emit(EventKind.SCREEN, screen=text)

    def _vibrate(self, pattern: Haptic, policy: BandPolicy | None = None) -> None:
        active = policy or self.effective_policy
        if self.fixture.capabilities.haptics and active.haptics:
            self._emit(EventKind.HAPTIC, pattern=pattern.value)

    @property
    def effective_policy(self) -> BandPolicy:
        if self.user.policy is not None:
            return self.user.policy
        default = self.fixture.default_policy
        return BandPolicy(liveness=default.liveness, haptics=default.haptics)

    @property
    def liveness_on(self) -> bool:
        return self.fixture.capabilities.liveness and self.effective_policy.liveness

    @property
    def battery_pct(self) -> float:
        return self.battery.level(self.clock.now())

    @property
    def haptics(self) -> list[str]:
        return [str(e.data["pattern"]) for e in self.events if e.kind == EventKind.HAPTIC]

    def info(self) -> BandInfo:
        caps = self.fixture.capabilities.model_dump()
        return BandInfo(
            serial=self.identity.serial,
            model=self.fixture.identity.model_name,
            fixture=self.fixture.id,
            generation=self.fixture.identity.generation,
            manufacturer=self.fixture.identity.manufacturer,
            firmware_version=self.fixture.identity.firmware_version,
            hardware_revision=self.fixture.identity.hardware_revision,
            device_id=self.identity.device_id,
            nfc_id=self.identity.nfc_id,
            ble_address=self.identity.ble_address,
            capabilities=caps,
        )

    def status(self) -> BandStatus:
        self._check_lockout_timeout()
        return BandStatus(
            serial=self.identity.serial,
            band_time=self.clock.now(),
            power=self.power,
            on_wrist=self.on_wrist,
            on_charger=self.on_charger,
            battery_pct=self.battery_pct,
            screen=self.screen,
            enrollment=self.enrollment,
            auth=self.auth,
            band_label=self.user.band_label,
            corporate_authenticator=self.user.corporate_authenticator,
            liveness=self.liveness_on,
            haptics=self.fixture.capabilities.haptics and self.effective_policy.haptics,
            fingerprint_failures=self.user.fingerprint_failures,
            liveness_failures=self.user.liveness_failures,
            locked_out=self.user.locked_out,
        )

    @property
    def is_authenticated(self) -> bool:
        """Authenticated on the wrist: the band's user verification (DOMAIN.md 4.2)."""
        return self.on_wrist and self.auth == AuthState.AUTHENTICATED

    # -- the home screen --------------------------------------------------------------------

    def _home_screen(self) -> str:
        return home_screen(self)

    def _go_home(self) -> None:
        self._interaction = None
        self._show(self._home_screen())

    # -- time-driven background: battery, sleep, lockout timeout ---------------------------

    def _rebase_battery(self, at: float | None = None) -> None:
        """Fix the battery's level (at ``at``, default now) and start the present state's rate."""
        charging = self.on_charger
        draining = not charging and self.power != PowerState.OFF
        self.battery.rebase(self.clock.now() if at is None else at,
                            draining=draining, charging=charging)

    def _next_background_event(self) -> tuple[float, Callable[[], None]] | None:
        now = self.clock.now()
        candidates: list[tuple[float, Callable[[], None]]] = []
        if self.power != PowerState.OFF and not self.on_charger:
            when = self.battery.next_crossing(now, self.battery.critical)
            if when is not None:
                candidates.append((when, self._critical_shutdown))
            elif self.battery.level(now) <= self.battery.critical:
                candidates.append((now, self._critical_shutdown))
        if self.power == PowerState.OFF and self.on_charger and self.charger_since is not None:
            level_when = self.battery.next_crossing(now, self.fixture.battery.restart_pct) or now
            when = max(level_when, self.charger_since + self.fixture.battery.critical_recharge_s)
            candidates.append((when, self._power_up))
        if (
            self.power == PowerState.AWAKE
            and not self.on_wrist
            and not self._holds
            and self._interaction is None
            and not self._busy
            and self.enrollment not in _IN_ENROLLMENT
        ):
            candidates.append((self.last_activity + self.fixture.timing.sleep_after_s, self._sleep))
        timeout = self.fixture.limits.lockout_timeout_s
        if self.user.locked_out and timeout > 0 and self.user.locked_since is not None:
            candidates.append((self.user.locked_since + timeout, self._check_lockout_timeout))
        return min(candidates, key=lambda c: c[0]) if candidates else None

    def _critical_shutdown(self) -> None:
        self._cancel_interaction()
        self._holds.clear()
        self._show(screens.CRITICAL_BATTERY)
        self._vibrate(Haptic.SINGLE)
        self._emit(EventKind.BATTERY, level=round(self.battery_pct, 2), critical=True)
        self._power_off()

    def _power_off(self) -> None:
        if self.enrollment in _IN_ENROLLMENT:
            self._abort_enrollment()
        self.power = PowerState.OFF
        self.shutdown_at = self.clock.now()
        if self.auth != AuthState.LOCKED_OUT:
            self.auth = AuthState.DEAUTHENTICATED
        self._rebase_battery()
        self._emit(EventKind.POWER, state=self.power.value)
        self._show(screens.BLANK)

    def _power_up(self) -> None:
        self.power = PowerState.AWAKE
        self.shutdown_at = None
        self.last_activity = self.clock.now()
        self._rebase_battery()
        self._emit(EventKind.POWER, state=self.power.value)
        self._go_home()

    def _sleep(self) -> None:
        self.power = PowerState.SLEEP
        self._emit(EventKind.POWER, state=self.power.value)
        self._show(screens.BLANK)

    def _wake(self) -> None:
        self.last_activity = self.clock.now()
        if self.power == PowerState.SLEEP:
            self.power = PowerState.AWAKE
            self._emit(EventKind.POWER, state=self.power.value)
            self._go_home()

    def _check_lockout_timeout(self) -> None:
        timeout = self.fixture.limits.lockout_timeout_s
        if (
            self.user.locked_out
            and timeout > 0
            and self.user.locked_since is not None
            and self.clock.now() >= self.user.locked_since + timeout
        ):
            self._commit_user(self.user.with_(locked_out=False, locked_since=None,
                                              fingerprint_failures=0, liveness_failures=0))
            self.auth = AuthState.AUTH_REQUIRED if self.on_wrist else AuthState.DEAUTHENTICATED
            self._emit(EventKind.LOCKOUT, locked=False, reason="timeout")
            if self.power == PowerState.AWAKE and self._interaction is None:
                self._go_home()

    # -- physical world ---------------------------------------------------------------------

    def _require_power(self, action: str) -> None:
        if self.power == PowerState.OFF:
            raise PhysicalActionError(
                f"band {self.identity.serial} is off (battery flat): cannot {action}; "
                "put it on the charger first"
            )

    def put_on(self) -> None:
        """Rule 1 / 3: the band goes on a wrist."""
        if self.on_wrist:
            raise PhysicalActionError(f"band {self.identity.serial} is already on a wrist")
        self.on_wrist = True
        self._emit(EventKind.WRIST, on_wrist=True)
        if self.power == PowerState.OFF:
            return
        self._wake()
        self._cancel_holds()
        if self.enrollment == EnrollmentState.UNENROLLED:
            self.setup_code = "".join(secrets.choice(_SETUP_CODE_ALPHABET) for _ in range(6))
            self.enrollment = EnrollmentState.SETUP_CODE_SHOWN
            self._emit(EventKind.ENROLLMENT, state=self.enrollment.value,
                       setup_code=self.setup_code)
        elif self.enrollment == EnrollmentState.ENROLLED and self.auth != AuthState.LOCKED_OUT:
            self._set_auth(AuthState.AUTH_REQUIRED)
        self._go_home()

    def take_off(self) -> None:
        """Rule 5: leaving the wrist deauthenticates, with one vibration."""
        if not self.on_wrist:
            raise PhysicalActionError(f"band {self.identity.serial} is not on a wrist")
        self.on_wrist = False
        self.finger_down = False
        self._emit(EventKind.WRIST, on_wrist=False)
        if self.power == PowerState.OFF:
            return
        self._wake()
        self._cancel_interaction()
        if self.enrollment in _IN_ENROLLMENT:
            self._abort_enrollment()
        elif self.auth != AuthState.LOCKED_OUT:
            was = self.auth
            self._set_auth(AuthState.DEAUTHENTICATED)
            if was == AuthState.AUTHENTICATED:
                self._vibrate(Haptic.SINGLE)
        self._go_home()

    def attach_charger(self) -> None:
        if self.on_charger:
            raise PhysicalActionError(f"band {self.identity.serial} is already on the charger")
        self.on_charger = True
        self.charger_since = self.clock.now()
        self._rebase_battery()
        self._emit(EventKind.CHARGER, on_charger=True)
        if self.power != PowerState.OFF:
            self._wake()

    def detach_charger(self) -> None:
        if not self.on_charger:
            raise PhysicalActionError(f"band {self.identity.serial} is not on the charger")
        self._cancel_holds()
        self.on_charger = False
        self.charger_since = None
        self._rebase_battery()
        self._emit(EventKind.CHARGER, on_charger=False)
        if self.power != PowerState.OFF:
            self._wake()

    def set_battery(self, level: float) -> None:
        """Move the battery to ``level`` percent (a physical-world override for tests)."""
        if not 0 <= level <= 100:
            raise InvalidInputError(f"battery level must be 0-100, got {level}")
        self.battery.set_level(self.clock.now(), level)
        self._rebase_battery()
        self._emit(EventKind.BATTERY, level=round(level, 2))

    def press(self, button: Button) -> None:
        """Press and keep holding ``button``; :meth:`release` ends the hold."""
        self._require_power(f"press the {button.value} button")
        if button in self._holds:
            raise PhysicalActionError(f"the {button.value} button is already held")
        self._wake()  # a press wakes a sleeping band; the gesture counts from the press
        self._emit(EventKind.BUTTON, button=button.value, pressed=True)
        hold = _Hold(button, self.clock.now(), None)
        self._holds[button] = hold
        if self._busy:
            return
        off_wrist_on_charger = self.on_charger and not self.on_wrist
        timing = self.fixture.timing
        if button == Button.BOTTOM and off_wrist_on_charger:
            if self.fixture.capabilities.wipe_gesture == "delete-user-data":
                self._show(screens.DELETE_USER_DATA)
                hold.timer = self.clock.call_later(timing.wipe_hold_s, self._delete_user_data)
            else:
                hold.timer = self.clock.call_later(timing.wipe_hold_s, self._security_wipe_armed)
        elif (button == Button.TOP and off_wrist_on_charger
              and self.fixture.capabilities.restart_gesture):
            hold.timer = self.clock.call_later(timing.restart_hold_s, self._restart_armed)

    def release(self, button: Button) -> None:
        hold = self._holds.pop(button, None)
        if hold is None:
            raise PhysicalActionError(f"the {button.value} button is not held")
        if hold.timer is not None:
            hold.timer.cancel()
        self._emit(EventKind.BUTTON, button=button.value, pressed=False,
                   held_s=round(self.clock.now() - hold.since, 3))
        if self.power == PowerState.OFF:
            return
        self.last_activity = self.clock.now()
        if hold.fired and self.fixture.capabilities.wipe_gesture == "security-wipe" and (
            button == Button.BOTTOM
        ):
            self._run_security_wipe()
        elif not hold.fired and not self._busy:
            self._go_home()  # early release: nothing changes (DOMAIN.md 1.6 [I])

    def hold(self, button: Button, seconds: float) -> None:
        """Hold ``button`` for ``seconds`` of band time, then release it."""
        check_duration(seconds, "hold time")
        self.press(button)
        self.clock.advance(seconds)
        if button in self._holds:
            self.release(button)

    def delete_gesture_held(self) -> bool:
        """Off the wrist, on the charger, the bottom button held and its hold not yet done."""
        hold = self._holds.get(Button.BOTTOM)
        return hold is not None and not hold.fired and self.on_charger and not self.on_wrist

    def wink(self) -> None:
        """Identify the band to its user: one short vibration (CTAPHID_WINK)."""
        self._vibrate(Haptic.SINGLE)

    def _cancel_holds(self) -> None:
        for hold in self._holds.values():
            if hold.timer is not None:
                hold.timer.cancel()
                hold.timer = None

    # -- Delete User Data, security wipe, restart (rules 6-8) --------------------------------

    def _delete_user_data(self) -> None:
        """Rule 6: crypto-erase, then USER DATA DELETED with a double vibration."""
        hold = self._holds.get(Button.BOTTOM)
        if hold is not None:
            hold.fired = True
        policy = self.effective_policy  # haptics follow the policy that was on the band
        self._wipe()
        self._show(screens.USER_DATA_DELETED)
        self._vibrate(Haptic.DOUBLE_QUICK, policy)

    def erase_user_data(self) -> None:
        """Delete User Data without the gesture (authenticatorReset on a band is exactly this)."""
        with self.lock:
            policy = self.effective_policy
            self._wipe()
            if self.power == PowerState.AWAKE:
                self._show(screens.USER_DATA_DELETED)
            self._vibrate(Haptic.DOUBLE_QUICK, policy)

    def _security_wipe_armed(self) -> None:
        """Rule 7: SECURITY WIPE appears after the hold; releasing starts the wipe."""
        hold = self._holds.get(Button.BOTTOM)
        if hold is not None:
            hold.fired = True
        self._show(screens.SECURITY_WIPE)

    def _run_security_wipe(self) -> None:
        self._busy = True
        self._emit(EventKind.WIPE, phase="started")

        def finish() -> None:
            self._busy = False
            self._interaction = None
            self._wipe()
            self._go_home()

        self._interaction = self.clock.call_later(self.fixture.timing.wipe_run_s, finish)

    def _wipe(self) -> None:
        self._cancel_interaction()
        self.storage.crypto_erase()
        self.user = UserData()
        self.enrollment = EnrollmentState.UNENROLLED
        self.auth = AuthState.DEAUTHENTICATED
        self.setup_code = None
        self.captured_samples = 0
        self._emit(EventKind.WIPE, phase="done")
        self._emit(EventKind.ENROLLMENT, state=self.enrollment.value)
        for hook in list(self.wipe_hooks):
            hook()

    def _restart_armed(self) -> None:
        """Rule 8: RESTART after the top-button hold; about 20 s later the band is back."""
        hold = self._holds.get(Button.TOP)
        if hold is not None:
            hold.fired = True
        self._show(screens.RESTART)
        self._busy = True
        self._emit(EventKind.RESTART, phase="started")

        def finish() -> None:
            self._busy = False
            self._interaction = None
            self.power_cycle()
            self._emit(EventKind.RESTART, phase="done")

        self._interaction = self.clock.call_later(self.fixture.timing.restart_run_s, finish)

    def power_cycle(self) -> None:
        """Lose RAM, keep flash: enrollment stays, authentication does not."""
        self._cancel_interaction()
        if self.enrollment in _IN_ENROLLMENT:
            self._abort_enrollment()
        if self.auth != AuthState.LOCKED_OUT:
            self.auth = (
                AuthState.AUTH_REQUIRED
                if self.on_wrist and self.enrollment == EnrollmentState.ENROLLED
                else AuthState.DEAUTHENTICATED
            )
        self.power = PowerState.AWAKE
        self.last_activity = self.clock.now()
        for hook in list(self.power_cycle_hooks):
            hook()
        self._go_home()

    # -- enrollment (rule 2) ----------------------------------------------------------------

    def _require_enrollment_state(self, *states: EnrollmentState) -> None:
        self._require_power("enroll")
        if not self.on_wrist:
            raise PhysicalActionError("the band must be worn to enroll")
        if self.enrollment not in states:
            wanted = " or ".join(s.value for s in states)
            raise PhysicalActionError(
                f"band {self.identity.serial} is {self.enrollment.value}, not {wanted}"
            )

    def enter_setup_code(self, code: str) -> None:
        """The NBA sends the code the band shows; the band answers with "Add User"."""
        self._require_enrollment_state(EnrollmentState.SETUP_CODE_SHOWN)
        if not secrets.compare_digest(code.strip().upper().encode(),
                                      (self.setup_code or "").encode()):
            self._emit(EventKind.REFUSED, action="setup-code", reason="wrong setup code")
            raise InvalidInputError("the setup code does not match the one the band shows")
        self._set_enrollment(EnrollmentState.ADD_USER)
        self._go_home()

    def start_capture(self) -> None:
        self._require_enrollment_state(EnrollmentState.ADD_USER)
        self.captured_samples = 0
        self._set_enrollment(EnrollmentState.CAPTURING)
        self._show(screens.TOUCH_SENSOR)

    def _set_enrollment(self, state: EnrollmentState, **data: Any) -> None:
        self.enrollment = state
        self._emit(EventKind.ENROLLMENT, state=state.value, **data)

    def _abort_enrollment(self) -> None:
        self.setup_code = None
        self.captured_samples = 0
        self._set_enrollment(EnrollmentState.UNENROLLED, aborted=True)

    def set_label(self, text: str | None) -> str | None:
        """Store the Band Label as the band will show it (DOMAIN.md 2.3)."""
        self._require_enrollment_state(EnrollmentState.LABELING)
        shown = None
        if text is not None:
            shown = screens.normalize_band_label(text, self.fixture.limits.band_label_max_length)
            if not shown:
                raise InvalidInputError("the Band Label is empty")
        self._pending_label = shown
        self._set_enrollment(EnrollmentState.APPLYING_POLICY, label=shown)
        return shown

    def add_corporate_authenticator(self) -> None:
        self._require_enrollment_state(EnrollmentState.LABELING, EnrollmentState.APPLYING_POLICY)
        if not self.fixture.capabilities.corporate_credentials:
            raise PhysicalActionError("this band model has no corporate credential authenticator")
        self._pending_corporate = True

    def apply_policy(self, policy: BandPolicy) -> None:
        """Finish enrollment: write template, label and policy; authenticated, two buzzes."""
        self._require_enrollment_state(EnrollmentState.LABELING, EnrollmentState.APPLYING_POLICY)
        self._commit_user(UserData(
            enrolled=True,
            template=secrets.token_hex(64),
            band_label=self._pending_label,
            corporate_authenticator=self._pending_corporate,
            policy=policy,
        ))
        self._pending_label = None
        self._pending_corporate = False
        self.setup_code = None
        self._set_enrollment(EnrollmentState.ENROLLED)
        self._set_auth(AuthState.AUTHENTICATED)
        self._show(screens.SUCCESS, again=True)
        self._vibrate(Haptic.DOUBLE_QUICK)
        self._interaction = self.clock.call_later(self.fixture.timing.result_screen_s,
                                                  self._go_home)

    def apply_policy_update(self, policy: BandPolicy) -> None:
        """A later policy change reaches the band while it is worn and authenticated."""
        if not self.is_authenticated:
            raise PhysicalActionError("policy reaches the band only while it is authenticated")
        self._commit_user(self.user.with_(policy=policy))

    def corporate_login(self, ok: bool) -> None:
        """Rule 4: NBA sign-in with AD credentials authenticates a worn band."""
        self._require_power("authenticate")
        if not (self.on_wrist and self.enrollment == EnrollmentState.ENROLLED):
            raise PhysicalActionError("corporate sign-in needs an enrolled band on the wrist")
        if not self.user.corporate_authenticator:
            raise PhysicalActionError("this band has no corporate credential authenticator")
        if self.auth == AuthState.LOCKED_OUT:
            raise PhysicalActionError("the band is locked out; only Delete User Data clears it")
        if not ok:
            self._emit(EventKind.REFUSED, action="corporate-login", reason="bad credentials")
            return
        self._authenticated()

    # -- fingerprint (rules 2-3) -----------------------------------------------------------

    def place_finger(self, *, match: bool = True, ecg_ok: bool = True) -> None:
        """A finger on the sensor (and the bezel): capture, or authenticate, per band state."""
        self._require_power("read a finger")
        self._wake()
        self._emit(EventKind.FINGER, match=match, ecg=ecg_ok)
        if not self.on_wrist:
            self._emit(EventKind.REFUSED, action="finger", reason="not on a wrist")
            return
        if self._interaction is not None and self.auth == AuthState.AUTH_IN_PROGRESS:
            raise PhysicalActionError("a finger is already on the sensor")
        if self.enrollment == EnrollmentState.CAPTURING:
            self._capture_sample()
            return
        if self.enrollment != EnrollmentState.ENROLLED:
            self._emit(EventKind.REFUSED, action="finger", reason="band is not enrolled")
            return
        if self.auth == AuthState.LOCKED_OUT:
            self._emit(EventKind.REFUSED, action="finger", reason="locked out")
            return
        if self.auth == AuthState.AUTHENTICATED:
            return
        self._cancel_interaction()
        self._set_auth(AuthState.AUTH_IN_PROGRESS)
        self._show(screens.AUTH_IN_PROGRESS)
        timing = self.fixture.timing
        if not match:
            self._interaction = self.clock.call_later(
                timing.fingerprint_match_s, lambda: self._failed("fingerprint"))
        elif self.liveness_on and not ecg_ok:
            self._interaction = self.clock.call_later(
                timing.liveness_check_s, lambda: self._failed("liveness"))
        else:
            delay = timing.fingerprint_match_s + (timing.liveness_pass_s if self.liveness_on
                                                 else 0.0)
            self._interaction = self.clock.call_later(delay, self._authenticated)

    def _capture_sample(self) -> None:
        def captured() -> None:
            self.captured_samples += 1
            total = self.fixture.limits.enrollment_touches
            self._emit(EventKind.CAPTURE, sample=self.captured_samples, of=total)
            if self.captured_samples >= total:
                self._interaction = None
                self._set_enrollment(EnrollmentState.LABELING)
                self._show(screens.SUCCESS)
            else:
                self._show(screens.LIFT_FINGER)
                self._interaction = self.clock.call_later(
                    self.fixture.timing.capture_touch_s, lambda: self._next_touch())

        self._interaction = self.clock.call_later(self.fixture.timing.capture_touch_s, captured)

    def _next_touch(self) -> None:
        self._interaction = None
        self._show(screens.TOUCH_SENSOR)

    def _authenticated(self) -> None:
        self._interaction = None
        self._commit_user(self.user.with_(fingerprint_failures=0, liveness_failures=0))
        self._set_auth(AuthState.AUTHENTICATED)
        self._show(screens.SUCCESS)
        self._interaction = self.clock.call_later(self.fixture.timing.result_screen_s,
                                                  self._go_home)

    def _failed(self, kind: str) -> None:
        failure = failed_touch(self.fixture, self.user, kind, self.clock.now())
        self._commit_user(failure.user)
        self._show(failure.message)
        self._vibrate(Haptic.SINGLE)
        if failure.locked:
            self._set_auth(AuthState.LOCKED_OUT)
            self._emit(EventKind.LOCKOUT, locked=True, failures=failure.failures)
        else:
            self._set_auth(AuthState.AUTH_REQUIRED)
        self._interaction = self.clock.call_later(self.fixture.timing.result_screen_s,
                                                  self._go_home)

    # -- helpers ----------------------------------------------------------------------------

    def _set_auth(self, state: AuthState) -> None:
        if state != self.auth:
            self.auth = state
            self._emit(EventKind.AUTH, state=state.value)

    def _commit_user(self, data: UserData) -> None:
        save_user_data(self.storage, data)
        self.user = data

    def _cancel_interaction(self) -> None:
        if self._interaction is not None:
            self._interaction.cancel()
            self._interaction = None
        if self.auth == AuthState.AUTH_IN_PROGRESS:
            self.auth = AuthState.AUTH_REQUIRED if self.on_wrist else AuthState.DEAUTHENTICATED

    def settle(self) -> None:
        """Let every pending interaction (a match in progress, a result screen) finish."""
        self.clock.settle()
