"""``nymi-band sign-in``: the Nymi Band Application's sign-in while wearing the band.

A policy change (group or individual) reaches a user's band only when the user signs in to the
Nymi Band Application wearing their authenticated band; until then User Properties shows the
policy status "Pending". This command is that sign-in:

1. the user's directory credentials are checked (the NES imports the user on first sign-in);
2. the band is asked for its status: it must be on the wrist and authenticated, and it must be
   the user's active band at the NES;
3. the user's effective policy is written to the band (simulated bands: through their control
   channel; a real band receives it from the vendor's application);
4. the NES records that the band holds the policy: "Pending" becomes "Active".

Nothing is written to the NES when a step before it fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer
from rich.console import Console

from nymi_device.cli_support import emit_json
from nymi_device.errors import BandError
from nymi_device.protocol.model import AuthState, BandStatus
from nymi_device.protocol.nes import NesClient as Nes

console = Console(highlight=False)


class BandNotReadyError(BandError, PermissionError):
    """The band is not worn and authenticated, so the sign-in cannot reach it."""


@dataclass(frozen=True)
class SignInResult:
    account: str
    serial: str
    nes: str
    policy_status: str
    band_updated: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def read_status(target: str, options: dict[str, Any]) -> BandStatus:
    from nymi_device.band import Band

    async with Band.from_target(target, **options) as band:
        return await band.status()


def check_worn_and_authenticated(status: BandStatus) -> None:
    """Refuse unless the band is on the wrist and authenticated (one line naming what is not)."""
    if not status.on_wrist:
        raise BandNotReadyError(f"band {status.serial} is not on the wrist: put it on and "
                                "authenticate to it, then sign in again")
    if status.auth is not AuthState.AUTHENTICATED:
        raise BandNotReadyError(f"band {status.serial} is on the wrist but not authenticated "
                                f"({status.auth}): touch the sensor to authenticate, then sign "
                                "in again")


def sign_in(nes: Nes, account: str, password: str, status: BandStatus, *,
            write_policy: Any = None, nba_version: str | None = None) -> SignInResult:
    """Steps 1 to 4 of the module docstring for a band whose ``status`` was just read;
    ``write_policy(settings)`` writes the effective policy to the band (None: not reachable)."""
    from hosttools.flows.enroll import sign_in as directory_sign_in

    canonical = directory_sign_in(nes, account, password)
    check_worn_and_authenticated(status)
    nes.check_tap(status.serial, account=canonical, task="Nymi Band Application sign-in")
    updated = False
    if write_policy is not None:
        write_policy(nes.effective_policy(canonical))
        updated = True
    policy_status = nes.nba_sign_in(canonical, status.serial, nba_version=nba_version,
                                    actor=canonical)
    return SignInResult(canonical, status.serial, nes.name, policy_status.value, updated)


def register_sign_in(app: typer.Typer) -> None:
    """Add ``sign-in`` to ``nymi-band``."""

    @app.command("sign-in")
    def sign_in_cmd(
        ctx: typer.Context,
        user: Annotated[str, typer.Option("--user", "-u", help="DOMAIN\\username.")],
        password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                              envvar="NYMI_PASSWORD",
                                              help="The user's directory password.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
        = False,
    ) -> None:
        """Sign in to the Nymi Band Application wearing the authenticated band: the user's
        policy reaches the band and its status becomes Active."""
        from hosttools.nes_cli import open_nes
        from hosttools.site import open_flow_band
        from nymi_device.backend import Feature
        from nymi_device.protocol.management_bodies import PolicySettings

        opts = ctx.obj
        band = open_flow_band(opts.require_target(), sim_dir=opts.sim_dir, hci=opts.hci,
                              operator=opts.operator, fido2=opts.fido2)
        ctx.call_on_close(band.close)
        status = band.status()
        writer = None
        if band.has(Feature.ENROLLMENT):
            def writer(settings: Any) -> None:
                band.band.update_policy(PolicySettings(liveness=settings.liveness_detection,
                                                       haptics=settings.haptic_feedback))
        with open_nes(ctx) as nes:
            result = sign_in(nes, user, password, status, write_policy=writer)
        if as_json:
            emit_json(result.to_dict())
        else:
            console.print(f"Signed in as {result.account} wearing {result.serial} at "
                          f"{result.nes}: policy status {result.policy_status}")
