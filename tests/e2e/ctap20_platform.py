"""A CTAP 2.0 platform: python-fido2 0.8.x (its ``CTAP2``, ``PinProtocolV1``, ``CTAP1``) over
CTAPHID-UDP, run in its own virtual environment against a served band.

Usage (with python-fido2 0.8.x's interpreter): ``python ctap20_platform.py HOST PORT LOCAL_PORT``.
Prints one JSON object of checks and exits 0 when every check held. Imports nothing of this
project: it is the platform as it was shipped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import sys
from typing import Any

from fido2._pyu2f.base import HidDevice
from fido2._pyu2f.hidtransport import UsbHidTransport
from fido2.attestation import Attestation
from fido2.ctap import CtapError
from fido2.ctap1 import CTAP1
from fido2.ctap2 import CTAP2, PinProtocolV1
from fido2.extensions import HmacSecretExtension
from fido2.hid import CtapHidDevice

PIN = "1234"
RP = {"id": "example.com", "name": "Example"}
ES256 = [{"type": "public-key", "alg": -7}]
CRED_PROTECT_OPTIONAL_WITH_LIST = 2


class UdpHid(HidDevice):  # type: ignore[misc]
    """A HID device whose reports are UDP datagrams (one 64-byte report each)."""

    def __init__(self, host: str, port: int, local_port: int) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", local_port))
        self._sock.connect((host, port))
        self._sock.settimeout(5.0)

    def GetInReportDataLength(self) -> int:
        return 64

    def GetOutReportDataLength(self) -> int:
        return 64

    def Write(self, packet: list[int]) -> None:
        self._sock.send(bytes(packet))

    def Read(self) -> list[int]:
        return list(self._sock.recv(64))


def _code(call: Any) -> int:
    try:
        call()
    except CtapError as exc:
        return int(exc.code)
    return 0


def run(host: str, port: int, local_port: int) -> dict[str, Any]:
    device = CtapHidDevice({"path": f"udp:{host}:{port}"},
                           UsbHidTransport(UdpHid(host, port, local_port)))
    ctap2 = CTAP2(device)
    checks: dict[str, Any] = {}
    info = ctap2.get_info()
    checks["versions"] = list(info.versions)
    pin = PinProtocolV1(ctap2)
    pin.set_pin(PIN)
    checks["pin_retries"] = pin.get_pin_retries()
    token = pin.get_pin_token(PIN)  # the legacy getPinToken subcommand (0x05)

    def pin_auth(cdh: bytes) -> bytes:  # pinAuth of protocol 1: LEFT(HMAC(token, cdh), 16)
        return hmac.new(token, cdh, hashlib.sha256).digest()[:16]

    cdh = os.urandom(32)
    hmac_ext = HmacSecretExtension(ctap2)
    made = ctap2.make_credential(
        cdh, RP, {"id": b"user-2.0", "name": "user"}, ES256,
        extensions={"hmac-secret": hmac_ext.create_data(),
                    "credProtect": CRED_PROTECT_OPTIONAL_WITH_LIST},
        options={"rk": True}, pin_auth=pin_auth(cdh), pin_protocol=PinProtocolV1.VERSION)
    checks["mc_uv"] = made.auth_data.is_user_verified()
    checks["mc_extensions"] = made.auth_data.extensions
    cred = {"type": "public-key", "id": made.auth_data.credential_data.credential_id}
    Attestation.for_type(made.fmt)().verify(made.att_statement, made.auth_data, cdh)
    # CTAP 2.1 §6.5.5.7: a token's mc/ga permissions end with the first use; a 2.0 platform
    # reusing one token for a second makeCredential is refused, and asks for a new token.
    cdh2 = os.urandom(32)
    checks["second_mc_same_token"] = _code(lambda: ctap2.make_credential(
        cdh2, RP, {"id": b"user-b", "name": "b"}, ES256,
        pin_auth=pin_auth(cdh2), pin_protocol=PinProtocolV1.VERSION))
    token = pin.get_pin_token(PIN)
    cdh = os.urandom(32)
    salt = b"\x05" * 32
    outputs = []
    for _ in range(2):
        cdh = os.urandom(32)
        assertion = ctap2.get_assertion(
            RP["id"], cdh, [cred], extensions={"hmac-secret": hmac_ext.get_data(salt)},
            pin_auth=pin_auth(cdh), pin_protocol=PinProtocolV1.VERSION)
        assertion.verify(cdh, made.auth_data.credential_data.public_key)
        checks["ga_uv"] = assertion.auth_data.is_user_verified()
        outputs.append(hmac_ext.get_result(assertion.auth_data.extensions["hmac-secret"])[0])
        token = pin.get_pin_token(PIN)  # a fresh token for every use (see above)
    checks["hmac_secret_stable"] = outputs[0] == outputs[1] and len(outputs[0]) == 32
    # credProtect level 2 on a discoverable credential: usable with its id in allowList (above),
    # not discoverable without UV.
    checks["cred_protect_hidden"] = _code(lambda: ctap2.get_assertion(RP["id"], os.urandom(32)))

    # CTAP1 / U2F, and the same key through CTAP2 (CTAP 2.1 §10.3 interoperability).
    ctap1 = CTAP1(device)
    checks["u2f_version"] = ctap1.get_version()
    app_param = hashlib.sha256(RP["id"].encode()).digest()
    client_param = os.urandom(32)
    registration = ctap1.register(client_param, app_param)
    registration.verify(app_param, client_param)
    signature = ctap1.authenticate(client_param, app_param, registration.key_handle)
    signature.verify(app_param, client_param, registration.public_key)
    checks["u2f_counter"] = signature.counter
    cdh = os.urandom(32)
    token = pin.get_pin_token(PIN)
    via_ctap2 = ctap2.get_assertion(RP["id"], cdh, [{"type": "public-key",
                                                    "id": registration.key_handle}])
    checks["u2f_key_via_ctap2"] = via_ctap2.credential["id"] == registration.key_handle
    checks["u2f_key_via_ctap2_counter_up"] = via_ctap2.auth_data.counter > signature.counter
    checks["device_ctap2_capability"] = bool(device.capabilities & 0x04)
    return checks


EXPECTED: dict[str, Any] = {
    "pin_retries": 8,
    "mc_uv": True,
    "mc_extensions": {"hmac-secret": True, "credProtect": CRED_PROTECT_OPTIONAL_WITH_LIST},
    "second_mc_same_token": 0x33,  # CTAP2_ERR_PIN_AUTH_INVALID
    "ga_uv": True,
    "hmac_secret_stable": True,
    "cred_protect_hidden": 0x2E,  # CTAP2_ERR_NO_CREDENTIALS
    "u2f_version": "U2F_V2",
    "u2f_counter": 1,
    "u2f_key_via_ctap2": True,
    "u2f_key_via_ctap2_counter_up": True,
    "device_ctap2_capability": True,
}


def main() -> int:
    host, port, local_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    checks = run(host, port, local_port)
    failed = {k: (checks.get(k), v) for k, v in EXPECTED.items() if checks.get(k) != v}
    print(json.dumps({"checks": {k: repr(v) for k, v in checks.items()},
                      "failed": {k: repr(v) for k, v in failed.items()}}))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
