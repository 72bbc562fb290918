"""storage: primary storage pools, their tags and the hosts each is defined on

Revision ID: 005
Revises: 004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "005"
down_revision = "004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "storage_pools",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("pod_id", sa.Integer(), nullable=True),
        sa.Column("cluster_id", sa.Integer(), nullable=True),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("pool_type", sa.String(length=32), nullable=False),
        sa.Column("host_address", sa.String(length=255), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("url", sa.String(length=255), nullable=False),
        sa.Column("hypervisor", sa.String(length=32), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("managed", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("capacity_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("available_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("capacity_limit", sa.BigInteger(), nullable=True),
        sa.Column("capacity_iops", sa.BigInteger(), nullable=True),
        sa.Column("stats_updated", sa.Integer(), nullable=True),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"]),
        sa.ForeignKeyConstraint(["pod_id"], ["pods.id"]),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid"),
    )
    op.create_index("storage_pools_zone", "storage_pools", ["zone_id", "state"])
    op.create_index("storage_pools_cluster", "storage_pools", ["cluster_id"])
    op.create_table(
        "storage_pool_tags",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["pool_id"], ["storage_pools.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("storage_pool_tags_pool", "storage_pool_tags", ["pool_id"])
    op.create_table(
        "storage_pool_hosts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("local_path", sa.String(length=255), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["pool_id"], ["storage_pools.id"]),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pool_id", "host_id", name="storage_pool_hosts_pool_host"),
    )
    op.create_index("storage_pool_hosts_host", "storage_pool_hosts", ["host_id"])


def downgrade() -> None:
    op.drop_table("storage_pool_hosts")
    op.drop_table("storage_pool_tags")
    op.drop_table("storage_pools")
