"""Policy administration inside a transaction: seed, create / copy, change, activate, delete,
assign to users (DOMAIN.md 8.3).

Exactly one group policy is active at any time: activating one deactivates the other in the
same transaction, the active one cannot be deleted, and a partial unique index backs this up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nymi_device.protocol.nes.errors import NesConflict, NesInvalidInput
from nymi_device.protocol.nes.views import PolicyView
from simulator.nes.config import NesConfig
from simulator.nes.models import Policy, PolicyKind, User
from simulator.nes.policy import (
    DEFAULT_GROUP_POLICY,
    READY_MADE_INDIVIDUAL_POLICIES,
    PolicyOverrides,
    default_settings,
    overrides_from_row,
    write_row,
)
from simulator.nes.store import active_group_policy, get_policy, now, policy_view


def seed(session: Session, config: NesConfig) -> bool:
    """Create the policies present after installation, if the NES has none. True if created."""
    if session.scalar(select(func.count(Policy.id))):
        return False
    _create(session, DEFAULT_GROUP_POLICY, PolicyKind.GROUP,
            PolicyOverrides.of(default_settings(liveness=config.default_liveness)),
            "The group policy present after installation.", active=True)
    for name, values in READY_MADE_INDIVIDUAL_POLICIES.items():
        _create(session, name, PolicyKind.INDIVIDUAL, values,
                "Ready-made individual policy present after installation.")
    return True


def _create(session: Session, name: str, kind: PolicyKind, values: PolicyOverrides,
            description: str, *, active: bool = False) -> Policy:
    stamp = now(session)
    row = Policy(name=name, kind=kind, is_active=active, description=description,
                 created_at=stamp, updated_at=stamp)
    write_row(row, values)
    session.add(row)
    session.flush()
    return row


def list_views(session: Session) -> list[PolicyView]:
    rows = session.scalars(select(Policy).order_by(Policy.kind, Policy.name))
    return [policy_view(session, row) for row in rows]


def create(session: Session, name: str, kind: PolicyKind, *,
           values: PolicyOverrides | Mapping[str, Any] | None = None,
           copy_of: str | None = None, description: str = "") -> PolicyView:
    """A new policy; ``copy_of`` starts from another policy's values ("Make a Copy")."""
    name = name.strip()
    if not name or len(name) > 128:
        raise NesInvalidInput("a policy name has 1 to 128 characters")
    if session.scalar(select(Policy.id).where(func.lower(Policy.name) == name.casefold())):
        raise NesConflict(f"a policy named {name!r} already exists", policy=name)
    base = PolicyOverrides()
    if copy_of is not None:
        base = overrides_from_row(get_policy(session, copy_of))
    elif kind is PolicyKind.GROUP:
        base = overrides_from_row(active_group_policy(session))
    changes = values.set_values() if isinstance(values, PolicyOverrides) else dict(values or {})
    merged = base.updated(changes)
    if kind is PolicyKind.GROUP:
        merged.complete()
    row = _create(session, name, kind, merged, description)
    return policy_view(session, row)


def update(session: Session, name: str, changes: Mapping[str, Any]) -> PolicyView:
    """Change settings (by setting name or option label); ``None`` clears an individual value."""
    row = get_policy(session, name)
    values = overrides_from_row(row).updated(dict(changes))
    if row.kind is PolicyKind.GROUP:
        values.complete()
    write_row(row, values)
    if session.is_modified(row):
        row.updated_at = now(session)
    session.flush()
    return policy_view(session, row)


def activate(session: Session, name: str) -> PolicyView:
    """Make a group policy the active one (and the previous one inactive)."""
    row = get_policy(session, name)
    if row.kind is not PolicyKind.GROUP:
        raise NesInvalidInput(f"{row.name!r} is an individual policy; only a group policy can be "
                              "the active policy")
    current = active_group_policy(session)
    if current.id != row.id:
        current.is_active = False
        current.updated_at = now(session)
        session.flush()
        row.is_active = True
        row.updated_at = now(session)
        session.flush()
    return policy_view(session, row)


def delete(session: Session, name: str) -> None:
    row = get_policy(session, name)
    if row.kind is PolicyKind.GROUP and row.is_active:
        raise NesConflict(f"{row.name!r} is the active group policy; activate another one first",
                          policy=row.name)
    users = session.scalar(select(func.count(User.id))
                           .where(User.individual_policy_id == row.id)) or 0
    if users:
        raise NesConflict(f"{row.name!r} is the individual policy of {users} user(s); assign "
                          "them another policy first", policy=row.name, users=users)
    session.delete(row)
    session.flush()


def assign(session: Session, user: User, name: str | None) -> None:
    """Set (or, with None, clear) the user's individual policy."""
    if name is None:
        policy_id = None
    else:
        row = get_policy(session, name)
        if row.kind is not PolicyKind.INDIVIDUAL:
            raise NesInvalidInput(f"{row.name!r} is a group policy, not an individual policy")
        policy_id = row.id
    if user.individual_policy_id != policy_id:
        user.individual_policy_id = policy_id
        session.flush()
        session.expire(user, ["individual_policy"])
