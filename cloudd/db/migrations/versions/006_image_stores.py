"""image stores and system VMs

Revision ID: 006
Revises: 005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "006"
down_revision = "005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_stores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("readonly", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("total_size", sa.BigInteger(), nullable=True),
        sa.Column("used_size", sa.BigInteger(), nullable=True),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid"),
    )
    op.create_index("image_stores_zone", "image_stores", ["zone_id"])
    op.create_table(
        "system_vms",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("vm_type", sa.String(length=32), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("public_ip", sa.String(length=64), nullable=True),
        sa.Column("private_ip", sa.String(length=64), nullable=True),
        sa.Column("link_local_ip", sa.String(length=64), nullable=True),
        sa.Column("control_url", sa.String(length=255), nullable=True),
        sa.Column("public_url", sa.String(length=255), nullable=True),
        sa.Column("state_changed", sa.Integer(), nullable=True),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"]),
        sa.ForeignKeyConstraint(["store_id"], ["image_stores.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid"),
    )
    op.create_index("system_vms_zone", "system_vms", ["zone_id", "vm_type"])


def downgrade() -> None:
    op.drop_table("system_vms")
    op.drop_table("image_stores")
