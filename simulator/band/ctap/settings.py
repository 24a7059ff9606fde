"""Persistent authenticator settings changed by authenticatorConfig (CTAP 2.1 §6.11).

alwaysUv (§7.2), the minimum PIN length with the RP IDs allowed to read it (§7.4, §12.4) and
forcePINChange (§6.4 getInfo 0x0C) live under ``user/ctap/config``, so Reset and Delete User Data
return them to the fixture's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from simulator.band.storage import FlashStorage

from . import codec
from .constants import KEY_CONFIG
from .errors import CtapError


@dataclass(frozen=True)
class SettingsState:
    always_uv: bool
    min_pin_length: int
    min_pin_rp_ids: tuple[str, ...] = field(default_factory=tuple)
    force_pin_change: bool = False


class Settings:
    """Cached view of ``user/ctap/config`` with the fixture's defaults."""

    def __init__(self, storage: FlashStorage, *, always_uv: bool, min_pin_length: int) -> None:
        self._storage = storage
        self._defaults = SettingsState(always_uv=always_uv, min_pin_length=min_pin_length)
        self._state: SettingsState | None = None

    def invalidate(self) -> None:
        self._state = None

    @property
    def state(self) -> SettingsState:
        if self._state is None:
            raw = self._storage.get(KEY_CONFIG)
            state = self._defaults
            if raw is not None:
                try:
                    body = codec.decode_item(raw)
                    state = SettingsState(
                        always_uv=bool(body["alwaysUv"]),
                        min_pin_length=int(body["minPin"]),
                        min_pin_rp_ids=tuple(body["rpIds"]),
                        force_pin_change=bool(body["force"]),
                    )
                except (CtapError, KeyError, TypeError, ValueError):
                    state = self._defaults
            self._state = state
        return self._state

    def update(self, **changes: object) -> None:
        state = replace(self.state, **changes)  # type: ignore[arg-type]
        self._storage.put(
            KEY_CONFIG,
            codec.encode(
                {
                    "alwaysUv": state.always_uv,
                    "minPin": state.min_pin_length,
                    "rpIds": list(state.min_pin_rp_ids),
                    "force": state.force_pin_change,
                }
            ),
        )
        self._state = state
