"""ensure_pcscd's refusals, without touching the system's pcscd (the e2e conftest starts it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nymi_device.errors import BandUnreachableError, UnreachableReason
from simulator.pcscd import ensure_pcscd, pcscd_running, tcp_listening


def test_missing_vpcd_reader_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BandUnreachableError) as missing:
        ensure_pcscd(socket_path=tmp_path / "pcscd.comm", vpcd_config=tmp_path / "vpcd",
                     executable="/bin/true")
    assert missing.value.reason is UnreachableReason.NO_ADAPTER
    assert "vpcd" in str(missing.value) and "setup.sh" in str(missing.value)


def test_a_daemon_that_does_not_come_up_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "vpcd"
    config.write_text("FRIENDLYNAME \"Virtual PCD\"\n")
    with pytest.raises(BandUnreachableError) as failed:
        ensure_pcscd(socket_path=tmp_path / "pcscd.comm", vpcd_config=config,
                     executable="/bin/false", timeout=2)
    assert failed.value.reason is UnreachableReason.NO_ADAPTER


def test_probes_do_not_connect(tmp_path: Path) -> None:
    assert not pcscd_running(tmp_path / "nothing.comm")
    assert not tcp_listening(1)
