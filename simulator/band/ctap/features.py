"""What a fixture's authenticator supports, derived once from its ``[ctap]`` table.

The getInfo options of a fixture (CTAP 2.1 §6.4) say which features exist: an option that is
*absent* means "not supported", ``false`` means "supported but not configured/enabled" and
``true`` "supported and enabled". Commands follow from the options exactly as the spec ties them:
authenticatorClientPIN needs ``clientPin`` or ``pinUvAuthToken``, authenticatorBioEnrollment needs
``bioEnroll`` (or ``userVerificationMgmtPreview`` for the FIDO_2_1_PRE prototype 0x40),
authenticatorCredentialManagement needs ``credMgmt`` (0x0A; the prototype 0x41 also answers on a
FIDO_2_1_PRE authenticator), authenticatorConfig needs ``authnrCfg``, authenticatorLargeBlobs needs
``largeBlobs``, and authenticatorSelection (0x0B) is a FIDO_2_1 command.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.fixtures_ctap import CtapSpec

from .constants import ALGORITHM_BY_NAME, CoseAlg


@dataclass(frozen=True)
class Features:
    """The static feature set of one authenticator model."""

    versions: tuple[str, ...]
    extensions: frozenset[str]
    algorithms: tuple[CoseAlg, ...]
    pin_protocols: tuple[int, ...]
    fido_2_1: bool
    fido_2_1_pre: bool
    #: Options as the fixture lists them (the static part of getInfo 0x04).
    options: tuple[tuple[str, bool], ...]
    rk: bool
    client_pin: bool
    pin_uv_auth_token: bool
    uv_token_unadvertised: bool
    #: Built-in user verification exists (``uv`` option present).
    builtin_uv: bool
    #: Built-in UV is the band's wrist authentication (always configured), not enrolled templates.
    wrist_uv: bool
    bio_enroll: bool
    bio_enroll_preview: bool
    cred_mgmt: bool
    cred_mgmt_preview: bool
    config: bool
    large_blobs: bool
    always_uv: bool
    set_min_pin_length: bool
    make_cred_uv_not_rqd: bool
    wrist_presence: bool
    u2f: bool

    @classmethod
    def from_spec(cls, spec: CtapSpec) -> Features:
        opts = spec.options
        pre = "FIDO_2_1_PRE" in spec.versions
        fido21 = "FIDO_2_1" in spec.versions
        bio = "bioEnroll" in opts
        bio_preview = pre and ("userVerificationMgmtPreview" in opts or bio)
        cred_mgmt = "credMgmt" in opts
        cred_mgmt_preview = pre and (cred_mgmt or "credentialMgmtPreview" in opts)
        return cls(
            versions=tuple(spec.versions),
            extensions=frozenset(spec.extensions),
            algorithms=tuple(ALGORITHM_BY_NAME[name] for name in spec.algorithms),
            pin_protocols=tuple(spec.pin_uv_auth_protocols),
            fido_2_1=fido21,
            fido_2_1_pre=pre,
            options=tuple(opts.items()),
            rk=opts.get("rk", False),
            client_pin="clientPin" in opts,
            pin_uv_auth_token=opts.get("pinUvAuthToken", False),
            uv_token_unadvertised=spec.uv_token_unadvertised,
            builtin_uv="uv" in opts,
            wrist_uv=spec.presence == "wrist-authenticated" and opts.get("uv", False),
            bio_enroll=bio,
            bio_enroll_preview=bio_preview,
            cred_mgmt=cred_mgmt,
            cred_mgmt_preview=cred_mgmt_preview,
            config=opts.get("authnrCfg", False),
            large_blobs=opts.get("largeBlobs", False),
            always_uv="alwaysUv" in opts,
            set_min_pin_length=opts.get("setMinPINLength", False),
            make_cred_uv_not_rqd=opts.get("makeCredUvNotRqd", False),
            wrist_presence=spec.presence == "wrist-authenticated",
            u2f=spec.u2f and "U2F_V2" in spec.versions,
        )

    @property
    def client_pin_command(self) -> bool:
        """authenticatorClientPIN (0x06) is served (CTAP 2.1 §6.5)."""
        return self.client_pin or self.pin_uv_auth_token or bool(self.pin_protocols)
