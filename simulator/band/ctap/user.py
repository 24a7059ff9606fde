"""Tests of user presence and built-in user verification, with the UV retry counter.

Maps the wearer's answers to CTAP status codes the way each caller's algorithm prescribes:

* presence for makeCredential/getAssertion (§6.1.2 step 14, §6.2.2 step 9): denied or timed out
  → ``CTAP2_ERR_OPERATION_DENIED``; for reset and selection a timeout is
  ``CTAP2_ERR_USER_ACTION_TIMEOUT`` (§6.6, §6.9);
* built-in UV requested with the ``uv`` option (§6.1.2 step 11.2, §6.2.2 step 6.2): timeout →
  ``USER_ACTION_TIMEOUT``; otherwise ``PUAT_REQUIRED`` when a PIN is set (clientPin true, the
  platform should use a token), ``PIN_BLOCKED`` when uvRetries reached 0 (the code that step's
  text names), else ``OPERATION_DENIED``;
* built-in UV for getPinUvAuthTokenUsingUvWithPermissions (§6.5.5.7.3 steps 7-10):
  ``UV_BLOCKED`` when uvRetries is 0, ``USER_ACTION_TIMEOUT``, else ``UV_INVALID``.

A cancel during any wait is ``CTAP2_ERR_KEEPALIVE_CANCEL`` (§11.2.9.1.5). Before each wait the
transport is told ``UPNEEDED`` through the keepalive callback.

On a Nymi fixture the built-in UV is the band's wrist authentication: it succeeds iff the wearer
is verified, takes no attempt (the band's own lockout counts fingerprint failures) and is not
itself a gesture; presence is then the NFC tap, granted iff the band is authenticated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from simulator.band.storage import FlashStorage
from simulator.fixtures_ctap import CtapSpec

from .constants import KEY_UV_RETRIES, KeepaliveStatus
from .errors import ERR, CtapError
from .features import Features
from .wearer import PresenceResult, UvResult, Wearer

_UPNEEDED = int(KeepaliveStatus.UPNEEDED)
_GRANTED = PresenceResult.GRANTED
_POLL_S = 0.01


class CommandCancel(threading.Event):
    """The cancel signal a wearer sees during one command.

    It is set when the transport's event is set (CTAPHID_CANCEL, an NFC deselect) or when the
    band aborts the command itself (:meth:`abort`: a power cycle, Delete User Data). It is
    reused from command to command; only attribute writes happen on the hot path.
    """

    def __init__(self) -> None:
        super().__init__()
        self.transport: threading.Event | None = None
        self.aborted = False

    def is_set(self) -> bool:
        transport = self.transport
        return self.aborted or (transport is not None and transport.is_set())

    def abort(self) -> None:
        self.aborted = True

    def set(self) -> None:
        self.aborted = True

    def clear(self) -> None:
        self.aborted = False

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            remaining = _POLL_S if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(_POLL_S, remaining))
        return True


class UserInteraction:
    """The authenticator's side of presence and verification for one command at a time."""

    def __init__(
        self,
        spec: CtapSpec,
        features: Features,
        storage: FlashStorage,
        wearer: Wearer,
        templates_enrolled: Callable[[], bool],
    ) -> None:
        self._spec = spec
        self._features = features
        self._storage = storage
        self.wearer = wearer
        self._templates_enrolled = templates_enrolled
        self.timeout_s = spec.user_action_timeout_s
        self.cancel = CommandCancel()
        self.keepalive: Callable[[int], None] | None = None
        self._uv_retries: int | None = None
        self._wrist_uv = features.wrist_uv
        #: Whether a PIN is set ("clientPin" true); wired to the ClientPin state by the core.
        self.pin_is_set: Callable[[], bool] = lambda: False

    def begin(
        self, cancel: threading.Event | None, keepalive: Callable[[int], None] | None
    ) -> None:
        """Bind the transport's cancel event and keepalive callback for the next command."""
        self.cancel.transport = cancel
        self.cancel.aborted = False
        self.keepalive = keepalive

    def invalidate(self) -> None:
        self._uv_retries = None

    def up_needed(self) -> None:
        if self.keepalive is not None:
            self.keepalive(_UPNEEDED)

    # -- presence -------------------------------------------------------------------------

    def presence(self) -> PresenceResult:
        if self.keepalive is not None:
            self.keepalive(_UPNEEDED)
        return self.wearer.wait_for_presence(self.timeout_s, self.cancel)

    def require_presence(self, *, on_timeout: ERR = ERR.OPERATION_DENIED) -> None:
        """A test of user presence; raise the caller's status unless it is granted."""
        if self.keepalive is not None:
            self.keepalive(_UPNEEDED)
        result = self.wearer.wait_for_presence(self.timeout_s, self.cancel)
        if result is _GRANTED:
            return
        if result is PresenceResult.CANCELLED:
            raise CtapError(ERR.KEEPALIVE_CANCEL)
        if result is PresenceResult.TIMEOUT:
            raise CtapError(on_timeout)
        raise CtapError(ERR.OPERATION_DENIED)

    def require_worn(self) -> None:
        """Nymi: the band releases no credential key unless it is authenticated on the wrist."""
        if self._features.wrist_presence and not self.wearer.is_verified():
            raise CtapError(ERR.OPERATION_DENIED, "band not authenticated on the wrist")

    # -- built-in user verification ----------------------------------------------------------

    def uv_configured(self) -> bool:
        """Whether built-in UV is enabled (getInfo ``uv`` true)."""
        if not self._features.builtin_uv:
            return False
        if self._features.wrist_uv:
            return True
        return self._templates_enrolled()

    @property
    def uv_retries(self) -> int:
        if self._uv_retries is None:
            raw = self._storage.get(KEY_UV_RETRIES)
            self._uv_retries = raw[0] if raw and len(raw) == 1 else self._spec.uv_retries
        return self._uv_retries

    def _set_uv_retries(self, value: int) -> None:
        if value != self.uv_retries:
            self._storage.put(KEY_UV_RETRIES, bytes((value,)))
            self._uv_retries = value

    def reset_uv_retries(self) -> None:
        self._set_uv_retries(self._spec.uv_retries)

    def _attempt(self) -> UvResult:
        """One performBuiltInUv attempt; a no-match costs one of the UV retries (§6.5.2.3)."""
        if self._features.wrist_uv:
            return UvResult.MATCHED if self.wearer.is_verified() else UvResult.NO_MATCH
        if self.uv_retries <= 0:
            return UvResult.NO_MATCH
        self.up_needed()
        result = self.wearer.verify_user(self.timeout_s, self.cancel)
        if result is UvResult.MATCHED:
            self.reset_uv_retries()
        elif result is UvResult.NO_MATCH:
            self._set_uv_retries(self.uv_retries - 1)
        return result

    @property
    def uv_gives_presence(self) -> bool:
        """A fingerprint touch is evidence of user interaction; wrist authentication is not."""
        return not self._features.wrist_uv

    def uv_for_operation(self) -> bool:
        """Built-in UV for the ``uv`` option (§6.1.2 step 11.2 / §6.2.2 step 6.2).

        Returns whether the UV supplied evidence of user presence.
        """
        if self._wrist_uv and self.wearer.is_verified():
            return False  # wrist authentication: verified, but not a gesture
        result = self._attempt()
        if result is UvResult.MATCHED:
            return self.uv_gives_presence
        if result is UvResult.CANCELLED:
            raise CtapError(ERR.KEEPALIVE_CANCEL)
        if result is UvResult.TIMEOUT:
            raise CtapError(ERR.USER_ACTION_TIMEOUT)
        if self.pin_is_set():
            raise CtapError(ERR.PUAT_REQUIRED)
        if not self._features.wrist_uv and self.uv_retries <= 0:
            raise CtapError(ERR.PIN_BLOCKED)
        raise CtapError(ERR.OPERATION_DENIED)

    def uv_for_token(self) -> bool:
        """Built-in UV for getPinUvAuthTokenUsingUvWithPermissions (§6.5.5.7.3 steps 7-10)."""
        if not self._features.wrist_uv and self.uv_retries <= 0:
            raise CtapError(ERR.UV_BLOCKED)
        result = self._attempt()
        if result is UvResult.MATCHED:
            return self.uv_gives_presence
        if result is UvResult.CANCELLED:
            raise CtapError(ERR.KEEPALIVE_CANCEL)
        if result is UvResult.TIMEOUT:
            raise CtapError(ERR.USER_ACTION_TIMEOUT)
        if not self._features.wrist_uv and self.uv_retries <= 0:
            raise CtapError(ERR.UV_BLOCKED)
        raise CtapError(ERR.UV_INVALID)
