"""Initial NES schema: users, policies, bands, assignments, external authenticators, FIDO2 keys,
EAM registry and audit events.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from simulator.nes.models import UtcDateTime

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32, create_constraint=False)


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", _enum("policy_kind", "group", "individual"), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("liveness_detection", sa.Boolean(), nullable=True),
        sa.Column("haptic_feedback", sa.Boolean(), nullable=True),
        sa.Column("corporate_credentials", sa.Boolean(), nullable=True),
        sa.Column("band_label", sa.Boolean(), nullable=True),
        sa.Column("band_label_customize", sa.Boolean(), nullable=True),
        sa.Column("self_reenroll_own", sa.Boolean(), nullable=True),
        sa.Column("self_reenroll_any", sa.Boolean(), nullable=True),
        sa.Column("lock_control", sa.Boolean(), nullable=True),
        sa.Column("lock_when_away", sa.Boolean(), nullable=True),
        sa.Column("unlock_when_present", sa.Boolean(), nullable=True),
        sa.Column("enrollment_destination",
                  _enum("enrollment_destination", "nes", "nes-and-evidian"), nullable=True),
        sa.Column("nba_idle_logout_min", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_policies_name")),
    )
    op.create_index("uq_policies_one_active_group", "policies", ["kind"], unique=True,
                    sqlite_where=sa.text("is_active"), postgresql_where=sa.text("is_active"))

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(64), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("account_key", sa.String(200), nullable=False),
        sa.Column("first_name", sa.String(128), nullable=False),
        sa.Column("last_name", sa.String(128), nullable=False),
        sa.Column("individual_policy_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["individual_policy_id"], ["policies.id"],
                                name=op.f("fk_users_individual_policy_id_policies"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("account_key", name=op.f("uq_users_account_key")),
    )

    op.create_table(
        "bands",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(16), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("seos_enabled", sa.Boolean(), nullable=False),
        sa.Column("secure_nfc", sa.Boolean(), nullable=False),
        sa.Column("liveness_configurable", sa.Boolean(), nullable=False),
        sa.Column("nfc_id", sa.String(64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bands")),
        sa.UniqueConstraint("serial", name=op.f("uq_bands_serial")),
    )

    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("band_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("enrolled_at_nes", sa.String(64), nullable=True),
        sa.Column("registered_at_nes", sa.String(64), nullable=True),
        sa.Column("nba_version", sa.String(32), nullable=True),
        sa.Column("label", sa.String(12), nullable=True),
        sa.Column("policy_digest", sa.String(64), nullable=True),
        sa.Column("policy_applied_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["band_id"], ["bands.id"],
                                name=op.f("fk_assignments_band_id_bands"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_assignments_user_id_users"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.UniqueConstraint("band_id", name=op.f("uq_assignments_band_id")),
    )
    op.create_index(op.f("ix_assignments_user_id"), "assignments", ["user_id"])
    op.create_index("uq_assignments_one_active_per_user", "assignments", ["user_id"],
                    unique=True, sqlite_where=sa.text("is_active"),
                    postgresql_where=sa.text("is_active"))

    op.create_table(
        "external_authenticators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("band_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["band_id"], ["bands.id"],
                                name=op.f("fk_external_authenticators_band_id_bands"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_external_authenticators_user_id_users"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_authenticators")),
        sa.UniqueConstraint("band_id", name=op.f("uq_external_authenticators_band_id")),
    )
    op.create_index(op.f("ix_external_authenticators_user_id"), "external_authenticators",
                    ["user_id"])

    op.create_table(
        "fido2_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("band_id", sa.Integer(), nullable=False),
        sa.Column("rp_id", sa.String(255), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(), nullable=False),
        sa.Column("public_key_cose", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["band_id"], ["bands.id"],
                                name=op.f("fk_fido2_keys_band_id_bands"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_fido2_keys_user_id_users"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fido2_keys")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_fido2_keys_credential_id")),
    )
    op.create_index(op.f("ix_fido2_keys_user_id"), "fido2_keys", ["user_id"])
    op.create_index(op.f("ix_fido2_keys_band_id"), "fido2_keys", ["band_id"])

    op.create_table(
        "eam_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("band_id", sa.Integer(), nullable=False),
        sa.Column("kind", _enum("eam_kind", "RFID", "Wearable", "Smart Card"), nullable=False),
        sa.Column("identifier", sa.String(64), nullable=False),
        sa.Column("state", _enum("eam_state", "active", "blacklisted", "deleted"),
                  nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["band_id"], ["bands.id"],
                                name=op.f("fk_eam_entries_band_id_bands"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_eam_entries_user_id_users"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eam_entries")),
    )
    op.create_index(op.f("ix_eam_entries_user_id"), "eam_entries", ["user_id"])
    op.create_index(op.f("ix_eam_entries_band_id"), "eam_entries", ["band_id"])

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(64), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("at_utc", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_table_name"), "audit_events", ["table_name"])
    op.create_index(op.f("ix_audit_events_key"), "audit_events", ["key"])
    op.create_index(op.f("ix_audit_events_user_id"), "audit_events", ["user_id"])
    op.create_index(op.f("ix_audit_events_at_utc"), "audit_events", ["at_utc"])


def downgrade() -> None:
    for table in ("audit_events", "eam_entries", "fido2_keys", "external_authenticators",
                  "assignments", "bands", "users"):
        op.drop_table(table)
    op.drop_index("uq_policies_one_active_group", table_name="policies")
    op.drop_table("policies")
