"""The audit trail: every create / update / delete of an audited row, in the same transaction.

Rows are captured by session events, so no operation can forget to audit: updates and deletes
are snapshotted before the flush (when the old values are still at hand), creates after it
(when the new primary keys exist), and all of them are inserted on the flush's own connection.
Each row carries the table, the operation, a natural key (account, serial, policy name…), the
user it concerns, the time (UTC), the actor, and the values before and after (for an update only
the changed columns).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, insert, inspect
from sqlalchemy.orm import Session, UOWTransaction

from simulator.nes.models import Audited, AuditEvent

_PENDING = "nes_audit_pending"


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        from nymi_device.protocol.text import b64url

        return b64url(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _columns(obj: object) -> dict[str, Any]:
    mapper = inspect(obj).mapper
    return {attr.key: _jsonable(getattr(obj, attr.key)) for attr in mapper.column_attrs}


def _changes(obj: object) -> tuple[dict[str, Any], dict[str, Any]]:
    state = inspect(obj)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        hist = state.attrs[attr.key].history
        if not hist.has_changes():
            continue
        old = hist.deleted[0] if hist.deleted else None
        new = hist.added[0] if hist.added else None
        if old == new:
            continue
        before[attr.key] = _jsonable(old)
        after[attr.key] = _jsonable(new)
    return before, after


def _row(session: Session, obj: Audited, op: str, before: dict[str, Any] | None,
         after: dict[str, Any] | None) -> dict[str, Any]:
    table = inspect(obj).mapper.local_table
    return {
        "table_name": getattr(table, "name", str(table)),
        "op": op,
        "key": obj.audit_key()[:255],
        "user_id": obj.audit_user_id(),
        "at_utc": session.info.get("now") or datetime.now(UTC),
        "actor": str(session.info.get("actor", "system"))[:200],
        "before": before,
        "after": after,
    }


def _before_flush(session: Session, flush_context: UOWTransaction, instances: object) -> None:
    pending: list[dict[str, Any]] = session.info.setdefault(_PENDING, [])
    for obj in list(session.dirty):
        if isinstance(obj, Audited) and session.is_modified(obj, include_collections=False):
            before, after = _changes(obj)
            if after:
                pending.append(_row(session, obj, "update", before, after))
    for obj in list(session.deleted):
        if isinstance(obj, Audited):
            pending.append(_row(session, obj, "delete", _columns(obj), None))


def _after_flush(session: Session, flush_context: UOWTransaction) -> None:
    rows: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    for obj in list(session.new):
        if isinstance(obj, Audited):
            rows.append(_row(session, obj, "create", None, _columns(obj)))
    if rows:
        session.connection().execute(insert(AuditEvent), rows)


def install(session_class: type[Session]) -> None:
    """Audit every flush of sessions of ``session_class``."""
    event.listen(session_class, "before_flush", _before_flush)
    event.listen(session_class, "after_flush", _after_flush)
