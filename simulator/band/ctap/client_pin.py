"""authenticatorClientPIN (0x06): the PIN, its retries, and pinUvAuthTokens (CTAP 2.1 §6.5).

Persistent (under ``user/ctap/``): LEFT(SHA-256(PIN), 16) with the PIN's length in code points,
and the pinRetries counter. Volatile (lost on power cycle): the key-agreement keys, the
pinUvAuthToken of each protocol with its shared state (permissions, permissions RP ID, user present
and user verified flags, usage timers, §6.5.2.1), and the count of consecutive PIN mismatches
that blocks PIN entry until the next power cycle after three (§6.5.5.6 step 7.1.2).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from simulator.band.storage import FlashStorage
from simulator.fixtures_ctap import CtapSpec

from . import codec
from .constants import KEY_PIN, KEY_PIN_RETRIES, MAX_PIN_BYTES, Permission, WireEnum
from .errors import ERR, CtapError
from .features import Features
from .pin_protocol import PinUvAuthProtocol, make_protocols
from .settings import Settings
from .user import UserInteraction

#: pinUvAuthToken usage limits (§6.5.2.1): first use within 30 s of issue, 10 min at most in all,
#: and the cached user-present flag lasts 30 s.
INITIAL_USAGE_LIMIT_S = 30.0
MAX_USAGE_S = 600.0
USER_PRESENT_LIMIT_S = 30.0
#: Consecutive mismatches before PIN entry is blocked until the next power cycle (§6.5.5.6).
CONSECUTIVE_MISMATCH_LIMIT = 3
_LBW = int(Permission.LBW)


@dataclass
class TokenState:
    """The shared pinUvAuthToken state of §6.5.2.1."""

    in_use: bool = False
    permissions: int = 0
    rp_id: str | None = None
    user_present: bool = False
    user_verified: bool = False
    started: float = 0.0
    used: bool = False


class ClientPin:
    """The PIN and pinUvAuthToken machinery, and the authenticatorClientPIN command."""

    @enum.unique
    class CMD(WireEnum):
        GET_PIN_RETRIES = 0x01
        GET_KEY_AGREEMENT = 0x02
        SET_PIN = 0x03
        CHANGE_PIN = 0x04
        GET_PIN_TOKEN = 0x05
        GET_TOKEN_USING_UV = 0x06
        GET_UV_RETRIES = 0x07
        GET_TOKEN_USING_PIN = 0x09

    @enum.unique
    class PARAM(WireEnum):
        PROTOCOL = 0x01
        SUB_COMMAND = 0x02
        KEY_AGREEMENT = 0x03
        PIN_UV_AUTH_PARAM = 0x04
        NEW_PIN_ENC = 0x05
        PIN_HASH_ENC = 0x06
        PERMISSIONS = 0x09
        RP_ID = 0x0A

    @enum.unique
    class RESULT(WireEnum):
        KEY_AGREEMENT = 0x01
        PIN_UV_AUTH_TOKEN = 0x02
        PIN_RETRIES = 0x03
        POWER_CYCLE_STATE = 0x04
        UV_RETRIES = 0x05

    def __init__(
        self,
        spec: CtapSpec,
        features: Features,
        storage: FlashStorage,
        rng: Callable[[int], bytes],
        clock: Callable[[], float],
        user: UserInteraction,
        settings: Settings,
    ) -> None:
        self._spec = spec
        self._features = features
        self._storage = storage
        self._rng = rng
        self._clock = clock
        self._user = user
        self._settings = settings
        self.protocols: dict[int, PinUvAuthProtocol] = make_protocols(features.pin_protocols, rng)
        self._tokens: dict[int, bytes] = {}
        self.token = TokenState()
        self._mismatches = 0
        self._pin: tuple[bytes, int] | bool | None = False  # False: not loaded yet
        self._retries: int | None = None
        self.power_cycle()

    # -- lifecycle ------------------------------------------------------------------------------

    def power_cycle(self) -> None:
        """Drop keys, tokens and the consecutive-mismatch block (§6.5.5.1 initialize)."""
        for protocol in self.protocols.values():
            protocol.regenerate()
        self._reset_tokens()
        self._mismatches = 0

    def invalidate(self) -> None:
        """After Delete User Data: forget the cached PIN and retries; end every token."""
        self._pin = False
        self._retries = None
        self.power_cycle()

    def _reset_tokens(self) -> None:
        """resetPinUvAuthToken for every protocol (§6.5.5.7.2 step 13)."""
        self._tokens = {v: self._rng(32) for v in self.protocols}
        self.token = TokenState()

    # -- persistent PIN state -----------------------------------------------------------------

    def _stored_pin(self) -> tuple[bytes, int] | None:
        if self._pin is False:
            raw = self._storage.get(KEY_PIN)
            pin: tuple[bytes, int] | None = None
            if raw is not None:
                try:
                    body = codec.decode_item(raw)
                    pin = (bytes(body["hash"]), int(body["len"]))
                except (CtapError, KeyError, TypeError, ValueError):
                    pin = None
            self._pin = pin
        assert self._pin is not True
        return self._pin

    @property
    def pin_set(self) -> bool:
        return self._stored_pin() is not None

    @property
    def pin_length(self) -> int:
        pin = self._stored_pin()
        return pin[1] if pin else 0

    @property
    def pin_retries(self) -> int:
        if self._retries is None:
            raw = self._storage.get(KEY_PIN_RETRIES)
            self._retries = raw[0] if raw and len(raw) == 1 else self._spec.pin_retries
        return self._retries

    def _set_retries(self, value: int) -> None:
        if value != self.pin_retries:
            self._storage.put(KEY_PIN_RETRIES, bytes((value,)))
            self._retries = value

    def _store_pin(self, pin_hash: bytes, length: int) -> None:
        with self._storage.transaction() as txn:
            txn.put(KEY_PIN, codec.encode({"hash": pin_hash, "len": length}))
            txn.put(KEY_PIN_RETRIES, bytes((self._spec.pin_retries,)))
        self._pin = (pin_hash, length)
        self._retries = self._spec.pin_retries

    @property
    def power_cycle_state(self) -> bool:
        """Whether PIN entry waits for a power cycle (getPINRetries powerCycleState)."""
        return self._mismatches >= CONSECUTIVE_MISMATCH_LIMIT

    # -- tokens -------------------------------------------------------------------------------

    def _observe_timers(self) -> None:
        """pinUvAuthTokenUsageTimerObserver (§6.5.2.1): end a token that outlived its limits."""
        token = self.token
        if not token.in_use:
            return
        age = self._clock() - token.started
        if age > MAX_USAGE_S or (not token.used and age > INITIAL_USAGE_LIMIT_S):
            self._reset_tokens()
        elif token.user_present and age > USER_PRESENT_LIMIT_S:
            token.user_present = False

    def _begin_using(self, protocol: int, user_present: bool) -> bytes:
        self._reset_tokens()
        self.token = TokenState(
            in_use=True, user_present=user_present, user_verified=True, started=self._clock()
        )
        return self._tokens[protocol]

    def protocol(self, version: int | None) -> PinUvAuthProtocol:
        """A supported protocol; an absent one is MISSING_PARAMETER, unknown INVALID_PARAMETER."""
        if version is None:
            raise CtapError(ERR.MISSING_PARAMETER)
        found = self.protocols.get(version)
        if found is None:
            raise CtapError(ERR.INVALID_PARAMETER)
        return found

    def verify(self, version: int, message: bytes, param: bytes) -> None:
        """verify(pinUvAuthToken, message, pinUvAuthParam) or ``CTAP2_ERR_PIN_AUTH_INVALID``."""
        protocol = self.protocol(version)
        self._observe_timers()
        if not self.token.in_use or not protocol.verify(self._tokens[version], message, param):
            raise CtapError(ERR.PIN_AUTH_INVALID)
        self.token.used = True

    def require(self, permission: Permission) -> None:
        if not self.token.permissions & int(permission):
            raise CtapError(ERR.PIN_AUTH_INVALID)

    def bind_rp(self, rp_id: str) -> None:
        """Check the permissions RP ID, or associate this one (§6.1.2 steps 11.1.3 and 11.1.7)."""
        if self.token.rp_id is None:
            self.token.rp_id = rp_id
        elif self.token.rp_id != rp_id:
            raise CtapError(ERR.PIN_AUTH_INVALID)

    def user_present_flag(self) -> bool:
        self._observe_timers()
        return self.token.in_use and self.token.user_present

    def user_verified_flag(self) -> bool:
        self._observe_timers()
        return self.token.in_use and self.token.user_verified

    def consume(self) -> None:
        """clearUserPresentFlag, clearUserVerifiedFlag, clearPinUvAuthTokenPermissionsExceptLbw.

        No-ops without an in-use token (§6.5.2.1).
        """
        token = self.token
        if token.in_use:
            token.user_present = False
            token.user_verified = False
            token.permissions &= _LBW

    # -- the command ----------------------------------------------------------------------------

    def handle(self, params: Mapping[int, Any]) -> dict[int, Any]:
        """Dispatch one authenticatorClientPIN request (§6.5.5)."""
        P = ClientPin.PARAM
        version = codec.get_uint(params, P.PROTOCOL)
        sub = codec.need_uint(params, P.SUB_COMMAND)
        key_agreement = codec.get_map(params, P.KEY_AGREEMENT)
        pin_param = codec.get_bytes(params, P.PIN_UV_AUTH_PARAM)
        new_pin_enc = codec.get_bytes(params, P.NEW_PIN_ENC)
        pin_hash_enc = codec.get_bytes(params, P.PIN_HASH_ENC)
        permissions = codec.get_uint(params, P.PERMISSIONS)
        rp_id = codec.get_str(params, P.RP_ID)
        C = ClientPin.CMD
        uv_token = self._features.builtin_uv and (
            self._features.pin_uv_auth_token or self._features.uv_token_unadvertised)
        if sub == C.GET_PIN_RETRIES:
            if self._features.client_pin and not self.pin_set:
                # No PIN, no retries to count: deployed authenticators answer PIN_NOT_SET here,
                # and platforms (python-fido2 among them) rely on it after a reset.
                raise CtapError(ERR.PIN_NOT_SET)
            return {
                ClientPin.RESULT.PIN_RETRIES: self.pin_retries,
                ClientPin.RESULT.POWER_CYCLE_STATE: self.power_cycle_state,
            }
        if sub == C.GET_KEY_AGREEMENT:
            protocol = self.protocol(version)
            return {ClientPin.RESULT.KEY_AGREEMENT: protocol.get_public_key()}
        if sub == C.SET_PIN and self._features.client_pin:
            self._set_pin(version, key_agreement, pin_param, new_pin_enc)
            return {}
        if sub == C.CHANGE_PIN and self._features.client_pin:
            self._change_pin(version, key_agreement, pin_param, new_pin_enc, pin_hash_enc)
            return {}
        if sub == C.GET_PIN_TOKEN and self._features.client_pin:
            return self._pin_token(
                version, key_agreement, pin_hash_enc, permissions, rp_id, legacy=True
            )
        if (
            sub == C.GET_TOKEN_USING_PIN
            and self._features.client_pin
            and self._features.pin_uv_auth_token
        ):
            return self._pin_token(
                version, key_agreement, pin_hash_enc, permissions, rp_id, legacy=False
            )
        if sub == C.GET_TOKEN_USING_UV and uv_token:
            return self._uv_token(version, key_agreement, permissions, rp_id)
        if sub == C.GET_UV_RETRIES and self._features.builtin_uv:
            return {ClientPin.RESULT.UV_RETRIES: self._user.uv_retries}
        raise CtapError(ERR.INVALID_SUBCOMMAND)

    # -- subcommands ------------------------------------------------------------------------------

    def _new_pin(
        self, protocol: PinUvAuthProtocol, secret: bytes, new_pin_enc: bytes
    ) -> tuple[bytes, int]:
        """Decrypt and check paddedNewPin (§6.5.5.5 steps 6-10); return its hash and length."""
        padded = protocol.decrypt(secret, new_pin_enc)
        if padded is None:
            raise CtapError(ERR.PIN_AUTH_INVALID)
        if len(padded) != 64:
            raise CtapError(ERR.INVALID_PARAMETER)
        pin = padded.rstrip(b"\x00")
        if len(pin) > MAX_PIN_BYTES or b"\x00" in pin:
            raise CtapError(ERR.PIN_POLICY_VIOLATION)
        try:
            length = len(pin.decode("utf-8"))
        except UnicodeDecodeError:
            raise CtapError(ERR.PIN_POLICY_VIOLATION) from None
        if length < self._settings.state.min_pin_length:
            raise CtapError(ERR.PIN_POLICY_VIOLATION)
        return hashlib.sha256(pin).digest()[:16], length

    def _set_pin(
        self,
        version: int | None,
        key_agreement: dict[Any, Any] | None,
        pin_param: bytes | None,
        new_pin_enc: bytes | None,
    ) -> None:
        """setPIN (§6.5.5.5)."""
        if version is None or key_agreement is None or pin_param is None or new_pin_enc is None:
            raise CtapError(ERR.MISSING_PARAMETER)
        protocol = self.protocol(version)
        if self.pin_set:
            raise CtapError(ERR.PIN_AUTH_INVALID)
        secret = protocol.decapsulate(key_agreement)
        if not protocol.verify(secret, new_pin_enc, pin_param):
            raise CtapError(ERR.PIN_AUTH_INVALID)
        pin_hash, length = self._new_pin(protocol, secret, new_pin_enc)
        self._store_pin(pin_hash, length)
        self._user.reset_uv_retries()

    def _check_pin(self, protocol: PinUvAuthProtocol, secret: bytes, pin_hash_enc: bytes) -> None:
        """Steps shared by changePIN and the token subcommands: decrement, compare, block."""
        stored = self._stored_pin()
        assert stored is not None
        self._set_retries(self.pin_retries - 1)
        given = protocol.decrypt(secret, pin_hash_enc)
        if given is None or not hmac.compare_digest(given, stored[0]):
            protocol.regenerate()
            self._mismatches += 1
            if self.pin_retries == 0:
                raise CtapError(ERR.PIN_BLOCKED)
            if self._mismatches >= CONSECUTIVE_MISMATCH_LIMIT:
                raise CtapError(ERR.PIN_AUTH_BLOCKED)
            raise CtapError(ERR.PIN_INVALID)
        self._mismatches = 0
        self._set_retries(self._spec.pin_retries)
        self._user.reset_uv_retries()

    def _pin_entry_allowed(self) -> None:
        if not self.pin_set:
            raise CtapError(ERR.PIN_NOT_SET)
        if self.pin_retries == 0:
            raise CtapError(ERR.PIN_BLOCKED)
        if self.power_cycle_state:
            raise CtapError(ERR.PIN_AUTH_BLOCKED)

    def _change_pin(
        self,
        version: int | None,
        key_agreement: dict[Any, Any] | None,
        pin_param: bytes | None,
        new_pin_enc: bytes | None,
        pin_hash_enc: bytes | None,
    ) -> None:
        """changePIN (§6.5.5.6)."""
        if (
            version is None
            or key_agreement is None
            or pin_param is None
            or new_pin_enc is None
            or pin_hash_enc is None
        ):
            raise CtapError(ERR.MISSING_PARAMETER)
        protocol = self.protocol(version)
        self._pin_entry_allowed()
        secret = protocol.decapsulate(key_agreement)
        if not protocol.verify(secret, new_pin_enc + pin_hash_enc, pin_param):
            raise CtapError(ERR.PIN_AUTH_INVALID)
        self._check_pin(protocol, secret, pin_hash_enc)
        pin_hash, length = self._new_pin(protocol, secret, new_pin_enc)
        stored = self._stored_pin()
        if self._settings.state.force_pin_change and stored and stored[0] == pin_hash:
            raise CtapError(ERR.PIN_POLICY_VIOLATION)
        self._store_pin(pin_hash, length)
        if self._settings.state.force_pin_change:
            self._settings.update(force_pin_change=False)
        self._reset_tokens()

    def _check_permissions(self, permissions: int, *, using_uv: bool) -> Permission:
        """Refuse permissions whose feature is off (§6.5.5.7.2 step 4, §6.5.5.7.3 step 4)."""
        if permissions == 0:
            raise CtapError(ERR.INVALID_PARAMETER)
        granted = Permission(permissions & 0x3F)
        options = dict(self._features.options)
        denied = {
            Permission.CM: not self._features.cred_mgmt,
            Permission.BE: (not options.get("uvBioEnroll"))
            if using_uv
            else not self._features.bio_enroll,
            Permission.LBW: not self._features.large_blobs,
            Permission.ACFG: (not options.get("uvAcfg")) if using_uv else not self._features.config,
        }
        for flag, refused in denied.items():
            if granted & flag and refused:
                raise CtapError(ERR.UNAUTHORIZED_PERMISSION)
        return granted

    def _pin_token(
        self,
        version: int | None,
        key_agreement: dict[Any, Any] | None,
        pin_hash_enc: bytes | None,
        permissions: int | None,
        rp_id: str | None,
        *,
        legacy: bool,
    ) -> dict[int, Any]:
        """getPinToken (§6.5.5.7.1) and getPinUvAuthTokenUsingPinWithPermissions (§6.5.5.7.2)."""
        if version is None or key_agreement is None or pin_hash_enc is None:
            raise CtapError(ERR.MISSING_PARAMETER)
        if not legacy and permissions is None:
            raise CtapError(ERR.MISSING_PARAMETER)
        protocol = self.protocol(version)
        if legacy:
            if permissions is not None or rp_id is not None:
                raise CtapError(ERR.INVALID_PARAMETER)
            granted = Permission.MC | Permission.GA
        else:
            assert permissions is not None
            granted = self._check_permissions(permissions, using_uv=False)
        self._pin_entry_allowed()
        secret = protocol.decapsulate(key_agreement)
        self._check_pin(protocol, secret, pin_hash_enc)
        if self._settings.state.force_pin_change:
            raise CtapError(ERR.PIN_INVALID if legacy else ERR.PIN_POLICY_VIOLATION)
        token = self._begin_using(version, user_present=False)
        self.token.permissions = int(granted)
        self.token.rp_id = rp_id
        return {ClientPin.RESULT.PIN_UV_AUTH_TOKEN: protocol.encrypt(secret, token)}

    def _uv_token(
        self,
        version: int | None,
        key_agreement: dict[Any, Any] | None,
        permissions: int | None,
        rp_id: str | None,
    ) -> dict[int, Any]:
        """getPinUvAuthTokenUsingUvWithPermissions (§6.5.5.7.3)."""
        if version is None or key_agreement is None or permissions is None:
            raise CtapError(ERR.MISSING_PARAMETER)
        protocol = self.protocol(version)
        granted = self._check_permissions(permissions, using_uv=True)
        if not self._user.uv_configured():
            raise CtapError(ERR.NOT_ALLOWED)
        secret = protocol.decapsulate(key_agreement)
        user_present = self._user.uv_for_token()
        token = self._begin_using(version, user_present=user_present)
        self.token.permissions = int(granted)
        self.token.rp_id = rp_id
        return {ClientPin.RESULT.PIN_UV_AUTH_TOKEN: protocol.encrypt(secret, token)}
