"""templates and ISOs, their copies per zone, and their permissions

Revision ID: 007
Revises: 006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "007"
down_revision = "006"
branch_labels = None
depends_on = None


def _flag(name: str, default: str = "0") -> sa.Column:
    return sa.Column(name, sa.SmallInteger(), nullable=False, server_default=default)


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("display_text", sa.String(length=4096), nullable=True),
        _flag("is_iso"),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("hypervisor", sa.String(length=32), nullable=True),
        sa.Column("os_type_uuid", sa.String(length=40), nullable=True),
        sa.Column("template_type", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=4096), nullable=True),
        sa.Column("checksum", sa.String(length=255), nullable=True),
        sa.Column("bits", sa.Integer(), nullable=False, server_default="64"),
        _flag("public"),
        _flag("featured"),
        _flag("extractable"),
        _flag("password_enabled"),
        _flag("sshkey_enabled"),
        _flag("dynamically_scalable"),
        _flag("requires_hvm", "1"),
        _flag("bootable", "1"),
        _flag("cross_zones"),
        _flag("direct_download"),
        _flag("deploy_as_is"),
        sa.Column("template_tag", sa.String(length=255), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("source_template_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid"),
    )
    op.create_index("templates_account", "templates", ["account_id"])
    op.create_index("templates_listing", "templates", ["is_iso", "removed", "public", "featured"])
    op.create_table(
        "template_zones",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("download_id", sa.String(length=64), nullable=False),
        sa.Column("source_url", sa.String(length=4096), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("percent", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("error", sa.String(length=1024), nullable=True),
        sa.Column("install_path", sa.String(length=1024), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("physical_size", sa.BigInteger(), nullable=True),
        sa.Column("checksum", sa.String(length=255), nullable=True),
        sa.Column("restarts", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["template_id"], ["templates.id"]),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"]),
        sa.ForeignKeyConstraint(["store_id"], ["image_stores.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("template_zones_template", "template_zones", ["template_id", "zone_id"])
    op.create_index("template_zones_state", "template_zones", ["state"])
    op.create_table(
        "template_permissions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["template_id"], ["templates.id"]),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("template_id", "account_id", name="template_permissions_unique"),
    )
    op.create_index("template_permissions_account", "template_permissions", ["account_id"])


def downgrade() -> None:
    op.drop_table("template_permissions")
    op.drop_table("template_zones")
    op.drop_table("templates")
