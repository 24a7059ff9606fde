"""Read-only queries of the console pages: Bands search, Audit filter and export, live stamp."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from nymi_device.protocol.nes.views import AuditEventView, BandView
from simulator.nes.models import Assignment, AuditEvent, Band, User
from simulator.nes.service import Nes
from simulator.nes.store import band_view, find_user

BAND_STATES = {"": "any", "active": "active", "not-active": "not active",
               "unassigned": "not assigned"}
AUDIT_OPS = ("create", "update", "delete")


def search_bands(nes: Nes, *, serial: str = "", owner: str = "", state: str = "",
                 limit: int = 100) -> list[BandView]:
    """Search → Nymi Bands by (partial) serial, (partial) owner username and state."""
    def op(s: Session) -> list[BandView]:
        stmt = (select(Band).outerjoin(Assignment, Assignment.band_id == Band.id)
                .outerjoin(User, User.id == Assignment.user_id)
                .order_by(Band.serial).limit(limit))
        if serial.strip():
            stmt = stmt.where(Band.serial.like(f"%{serial.strip().upper()}%"))
        if owner.strip():
            like = f"%{owner.strip().casefold()}%"
            stmt = stmt.where(or_(User.account_key.like(like),
                                  func.lower(User.first_name).like(like),
                                  func.lower(User.last_name).like(like)))
        if state == "active":
            stmt = stmt.where(Assignment.is_active.is_(True))
        elif state == "not-active":
            stmt = stmt.where(Assignment.is_active.is_(False))
        elif state == "unassigned":
            stmt = stmt.where(Assignment.id.is_(None))
        return [band_view(s, b) for b in s.scalars(stmt)]
    return nes.db.read(op)


@dataclass(frozen=True)
class AuditFilter:
    user: str = ""
    band: str = ""
    action: str = ""
    table: str = ""
    since: datetime | None = None
    until: datetime | None = None


def audit_rows(nes: Nes, flt: AuditFilter, *, limit: int = 500) -> list[AuditEventView]:
    """The newest ``limit`` audit events matching ``flt`` (newest first). An unknown user
    matches nothing."""
    def op(s: Session) -> list[AuditEventView]:
        stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if flt.user.strip():
            user = find_user(s, flt.user.strip())
            if user is None:
                return []
            stmt = stmt.where(AuditEvent.user_id == user.id)
        if flt.band.strip():
            stmt = stmt.where(AuditEvent.key == flt.band.strip().upper())
        if flt.action in AUDIT_OPS:
            stmt = stmt.where(AuditEvent.op == flt.action)
        if flt.table.strip():
            stmt = stmt.where(AuditEvent.table_name == flt.table.strip())
        if flt.since is not None:
            stmt = stmt.where(AuditEvent.at_utc >= flt.since)
        if flt.until is not None:
            stmt = stmt.where(AuditEvent.at_utc <= flt.until)
        return [AuditEventView(id=r.id, table=r.table_name, op=r.op, key=r.key,
                               user_id=r.user_id, at_utc=r.at_utc, actor=r.actor,
                               before=r.before, after=r.after) for r in s.scalars(stmt)]
    return nes.db.read(op)


def audit_csv(rows: list[AuditEventView]) -> str:
    """The rows as CSV; a cell that a spreadsheet would run as a formula is quoted with '."""
    def cell(value: object) -> str:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["id", "at_utc", "table", "op", "key", "actor", "before", "after"])
    for r in rows:
        writer.writerow([r.id, r.at_utc.isoformat(), cell(r.table), cell(r.op), cell(r.key),
                         cell(r.actor), cell(r.before), cell(r.after)])
    return out.getvalue()


def live_stamp(nes: Nes) -> str:
    """Changes whenever anything audited changes: the newest audit id and the row count."""
    def op(s: Session) -> str:
        newest, count = s.execute(select(func.max(AuditEvent.id),
                                         func.count(AuditEvent.id))).one()
        return f"{newest or 0}-{count}"
    return nes.db.read(op)
