"""The authenticator's parts, shared by the command handlers.

:class:`Core` owns the persistent components (credential store, PIN, settings, templates), the
user-interaction seam, the attestation material, and the volatile per-command state a stateful
command leaves behind (getNextAssertion, credential-management enumeration, a bio enrollment, a
pending large-blob write).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable

from simulator.band.storage import FlashStorage
from simulator.fixtures import Fixture
from simulator.fixtures_ctap import CtapSpec

from .attestation import Attestation
from .client_pin import ClientPin
from .credentials import CredentialStore
from .features import Features
from .settings import Settings
from .templates import Templates
from .user import UserInteraction
from .wearer import Wearer

_RP_HASH_CACHE_LIMIT = 256


class Core:
    """Everything a command handler may touch."""

    def __init__(
        self,
        fixture: Fixture,
        storage: FlashStorage,
        wearer: Wearer,
        *,
        rng: Callable[[int], bytes] = os.urandom,
        clock: Callable[[], float],
    ) -> None:
        if fixture.ctap is None:
            raise ValueError(f"fixture {fixture.id} has no [ctap] table (no FIDO2 authenticator)")
        spec: CtapSpec = fixture.ctap
        self.fixture = fixture
        self.spec = spec
        self.features = Features.from_spec(spec)
        self.storage = storage
        self.wearer = wearer
        self.rng = rng
        self.clock = clock
        self.aaguid = uuid.UUID(spec.aaguid).bytes
        self.attestation = Attestation(spec)
        self.templates = Templates(storage)
        self.settings = Settings(
            storage,
            always_uv=bool(spec.options.get("alwaysUv", False)),
            min_pin_length=spec.min_pin_length,
        )
        self.user = UserInteraction(spec, self.features, storage, wearer, self.templates.enrolled)
        self.pin = ClientPin(spec, self.features, storage, rng, clock, self.user, self.settings)
        self.user.pin_is_set = lambda: self.pin.pin_set
        self.creds = CredentialStore(
            storage, rng, counter_reserve=spec.counter_reserve, slots=spec.resident_credential_slots
        )
        self.power_up = clock()
        #: getNextAssertion or credential-management enumeration state (one stateful command).
        self.pending: object | None = None
        #: A fingerprint enrollment in progress.
        self.enrollment: object | None = None
        #: A large-blob array being written in fragments.
        self.blob_write: object | None = None
        #: SHA-256 of recently seen RP IDs (read directly by the getAssertion hot path).
        self.rp_id_hashes: dict[str, bytes] = {}

    # -- helpers ---------------------------------------------------------------------------------

    def rp_id_hash(self, rp_id: str) -> bytes:
        """SHA-256 of the RP ID (cached; the hot path asks for the same few RPs)."""
        digest = self.rp_id_hashes.get(rp_id)
        if digest is None:
            digest = hashlib.sha256(rp_id.encode()).digest()
            if len(self.rp_id_hashes) >= _RP_HASH_CACHE_LIMIT:
                self.rp_id_hashes.clear()
            self.rp_id_hashes[rp_id] = digest
        return digest

    def protected(self) -> bool:
        """ "Protected by some form of user verification": a PIN set or built-in UV enabled."""
        return self.pin.pin_set or self.user.uv_configured()

    def always_uv(self) -> bool:
        return self.features.always_uv and self.settings.state.always_uv

    def drop_volatile(self) -> None:
        """Forget tokens, key-agreement keys and every command state (a power cycle)."""
        self.pin.power_cycle()
        self.pending = None
        self.enrollment = None
        self.blob_write = None

    def invalidate(self) -> None:
        """Forget every cache of user data (after Delete User Data / Reset)."""
        self.creds.invalidate()
        self.pin.invalidate()
        self.settings.invalidate()
        self.templates.invalidate()
        self.user.invalidate()
        self.pending = None
        self.enrollment = None
        self.blob_write = None
