"""Fingerprint templates enrolled through authenticatorBioEnrollment (CTAP 2.1 §6.7).

Only their IDs and friendly names live here (``user/ctap/bio``); matching is the sensor's job,
reached through :meth:`Wearer.verify_user <simulator.band.ctap.wearer.Wearer.verify_user>`.
Built-in UV counts as configured (getInfo ``uv``/``bioEnroll`` true) once one template exists.
"""

from __future__ import annotations

from simulator.band.storage import FlashStorage

from . import codec
from .constants import KEY_BIO
from .errors import CtapError


class Templates:
    """The enrolled templates: template ID -> friendly name (possibly empty)."""

    def __init__(self, storage: FlashStorage) -> None:
        self._storage = storage
        self._items: dict[bytes, str] | None = None

    def invalidate(self) -> None:
        self._items = None

    @property
    def items(self) -> dict[bytes, str]:
        if self._items is None:
            items: dict[bytes, str] = {}
            raw = self._storage.get(KEY_BIO)
            if raw is not None:
                try:
                    for entry in codec.decode_item(raw):
                        items[bytes(entry[0])] = str(entry[1])
                except (CtapError, TypeError, IndexError, KeyError):
                    items = {}
            self._items = items
        return self._items

    def enrolled(self) -> bool:
        return bool(self.items)

    def save(self, items: dict[bytes, str]) -> None:
        self._storage.put(KEY_BIO, codec.encode([[tid, name] for tid, name in items.items()]))
        self._items = dict(items)
