"""The enterprise server's vocabulary, shared by the server and its clients: errors
(:mod:`.errors`), named values (:mod:`.enums`), policy settings (:mod:`.policy`), the views a
server answers with (:mod:`.views`), directory accounts (:mod:`.directory`), and the calls a
host flow makes (:mod:`.client`). Pure data and typing: no I/O.
"""

from __future__ import annotations

from nymi_device.protocol.nes.client import (
    BandFacts,
    BandRecord,
    DirectoryAccount,
    EffectivePolicy,
    EnrollmentAnswer,
    EnrollmentOutcome,
    Fido2KeyRecord,
    NesClient,
    NesDirectory,
    NesService,
    UserRecord,
)
from nymi_device.protocol.nes.errors import (
    NesConflict,
    NesError,
    NesInvalidInput,
    NesRefusal,
    NesStorageError,
    NotFound,
    RefusalCode,
)

__all__ = [
    "BandFacts",
    "BandRecord",
    "DirectoryAccount",
    "EffectivePolicy",
    "EnrollmentAnswer",
    "EnrollmentOutcome",
    "Fido2KeyRecord",
    "NesClient",
    "NesConflict",
    "NesDirectory",
    "NesError",
    "NesInvalidInput",
    "NesRefusal",
    "NesService",
    "NesStorageError",
    "NotFound",
    "RefusalCode",
    "UserRecord",
]
