"""Facts the band proves (SEOS, Secure NFC, its device id and NFC id) are recorded when the NES
first sees the band; what a client reports later cannot clear or change them."""

from __future__ import annotations

import pytest

from simulator.nes import Action, Nes, NesConflict, NesRefusal, RefusalCode, create_app
from tests.nes.conftest import PASSWORD
from tests.nes.helpers import U1, U2, band, self_service
from tests.nes.http_client import TestClient


def test_reenrolling_own_seos_band_as_not_seos_keeps_the_flag(nes: Nes) -> None:
    self_service(nes, own=True, any_band=True)
    nes.enroll(U1, band("ACAK-00056", seos_enabled=True))
    assert nes.enroll(U1, band("ACAK-00056", seos_enabled=False)).action is Action.REENROLL_OWN
    assert nes.band("ACAK-00056").seos_enabled is True
    nes.enroll(U2, band("AAAH-00125"))
    with pytest.raises(NesRefusal) as refused:
        nes.enroll(U2, band("ACAK-00056"))
    assert refused.value.code is RefusalCode.SEOS
    assert nes.band("ACAK-00056").owner == U1


def test_seos_downgrade_over_http_is_ignored(nes: Nes) -> None:
    self_service(nes, own=True, any_band=True)
    with TestClient(create_app(nes), raise_server_exceptions=False) as c:
        body = {"serial": "ACAK-00056", "device_id": "dev-acak-00056", "seos_enabled": True}
        assert c.post("/api/v1/me/enrollments", json=body, auth=(U1, PASSWORD)).status_code == 201
        downgrade = {**body, "seos_enabled": False}
        assert c.post("/api/v1/me/enrollments", json=downgrade,
                      auth=(U1, PASSWORD)).status_code == 201
        c.post("/api/v1/me/enrollments", json={"serial": "AAAH-00125",
                                               "device_id": "dev-aaah-00125"},
               auth=(U2, PASSWORD))
        takeover = c.post("/api/v1/me/enrollments", json=downgrade, auth=(U2, PASSWORD))
        assert takeover.status_code == 403, takeover.text
        assert takeover.json()["detail"]["code"] == RefusalCode.SEOS.value
    assert nes.band("ACAK-00056").seos_enabled and nes.band("ACAK-00056").owner == U1


def test_secure_nfc_flag_cannot_be_cleared(nes: Nes) -> None:
    self_service(nes, own=True)
    nes.update_policy("Default Settings Set", {"Enrollment destination": "NES and Evidian"})
    nes.enroll(U2, band("AAAH-00125", secure_nfc=True, nfc_id="04A1B2C3D4E5F6"))
    # Claiming the band is not Secure NFC must not skip the EAM registry's rule.
    with pytest.raises(NesRefusal) as refused:
        nes.enroll(U2, band("AAAH-00125", secure_nfc=False, nfc_id="04A1B2C3D4E5F6"))
    assert refused.value.code is RefusalCode.EAM_ENTRY
    assert nes.band("AAAH-00125").secure_nfc is True


def test_device_id_stays_as_first_recorded(nes: Nes) -> None:
    self_service(nes, own=True)
    nes.enroll(U2, band("AAAH-00125"))
    impostor = band("AAAH-00125").__class__("AAAH-00125", device_id="another-band")
    with pytest.raises(NesConflict, match="device id"):
        nes.enroll(U2, impostor)
    assert nes.band("AAAH-00125").device_id == "dev-aaah-00125"
    # The band's own id still works, and an upgrade to SEOS is recorded.
    assert nes.enroll(U2, band("AAAH-00125", seos_enabled=True)).action is Action.REENROLL_OWN
    assert nes.band("AAAH-00125").seos_enabled is True


def test_nfc_id_stays_as_first_recorded(nes: Nes) -> None:
    self_service(nes, own=True)
    nes.enroll(U2, band("AAAH-00125"))
    nes.enroll(U2, band("AAAH-00125", nfc_id="04A1B2C3D4E5F6"))  # first report is recorded
    with pytest.raises(NesConflict, match="NFC id"):
        nes.enroll(U2, band("AAAH-00125", nfc_id="04FFFFFFFFFFFF"))
    assert nes.band("AAAH-00125").nfc_id == "04A1B2C3D4E5F6"
