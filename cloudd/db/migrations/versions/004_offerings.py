"""offerings: guest OS categories and types, disk and service offerings, their domains and zones;
seeded with CloudStack's OS list and default offerings

Revision ID: 004
Revises: 003
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

from cloudd.db import ostypes_data

revision = "004"
down_revision = "003"
branch_labels = None
depends_on = None

RATES = (
    "bytes_read_rate", "bytes_read_rate_max", "bytes_read_rate_max_length",
    "bytes_write_rate", "bytes_write_rate_max", "bytes_write_rate_max_length",
    "iops_read_rate", "iops_read_rate_max", "iops_read_rate_max_length",
    "iops_write_rate", "iops_write_rate_max", "iops_write_rate_max_length",
)
GB = 1024 ** 3

# CloudStack's default disk offerings: (name, display text, GB, customized)
DISK_OFFERINGS = (
    ("Small", "Small Disk, 5 GB", 5, False),
    ("Medium", "Medium Disk, 20 GB", 20, False),
    ("Large", "Large Disk, 100 GB", 100, False),
    ("Custom", "Custom Disk", 0, True),
)
# CloudStack's default service offerings: (name, display text, CPUs, MHz, MB, system VM type)
SERVICE_OFFERINGS = (
    ("Small Instance", "Small Instance", 1, 500, 512, None),
    ("Medium Instance", "Medium Instance", 1, 1000, 1024, None),
    ("System Offering For Software Router", "System Offering For Software Router", 1, 500, 256,
     "domainrouter"),
    ("System Offering For Secondary Storage VM", "System Offering For Secondary Storage VM", 1, 500, 512,
     "secondarystoragevm"),
    ("System Offering For Console Proxy", "System Offering For Console Proxy", 1, 500, 1024, "consoleproxy"),
    ("System Offering For Internal LB VM", "System Offering For Internal LB VM", 1, 256, 256,
     "internalloadbalancervm"),
)


def _rates() -> list[sa.Column]:
    return [sa.Column(name, sa.BigInteger(), nullable=True) for name in RATES]


def upgrade() -> None:
    guest_os_categories = op.create_table(
        "guest_os_categories",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid"),
    )
    guest_os = op.create_table(
        "guest_os",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=40), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("is_user_defined", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("for_display", sa.SmallInteger(), nullable=False, server_default="1"),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["category_id"], ["guest_os_categories.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid"),
    )
    op.create_index("guest_os_category", "guest_os", ["category_id"])
    disk_offerings = op.create_table(
        "disk_offerings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("display_text", sa.String(length=1024), nullable=False),
        sa.Column("disk_size", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("customized", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("customized_iops", sa.SmallInteger(), nullable=True),
        sa.Column("min_iops", sa.BigInteger(), nullable=True),
        sa.Column("max_iops", sa.BigInteger(), nullable=True),
        sa.Column("storage_type", sa.String(length=16), nullable=False),
        sa.Column("provisioning_type", sa.String(length=16), nullable=False),
        sa.Column("tags", sa.String(length=1024), nullable=True),
        sa.Column("cache_mode", sa.String(length=16), nullable=True),
        sa.Column("hypervisor_snapshot_reserve", sa.Integer(), nullable=True),
        *_rates(),
        sa.Column("display_offering", sa.SmallInteger(), nullable=False, server_default="1"),
        sa.Column("disk_size_strictness", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("encrypt", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("sort_key", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid"),
    )
    op.create_index("disk_offerings_name", "disk_offerings", ["name"])
    service_offerings = op.create_table(
        "service_offerings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("display_text", sa.String(length=1024), nullable=False),
        sa.Column("cpu", sa.Integer(), nullable=True),
        sa.Column("speed", sa.Integer(), nullable=True),
        sa.Column("ram_size", sa.Integer(), nullable=True),
        sa.Column("min_cpu", sa.Integer(), nullable=True),
        sa.Column("max_cpu", sa.Integer(), nullable=True),
        sa.Column("min_memory", sa.Integer(), nullable=True),
        sa.Column("max_memory", sa.Integer(), nullable=True),
        sa.Column("storage_type", sa.String(length=16), nullable=False),
        sa.Column("provisioning_type", sa.String(length=16), nullable=False),
        sa.Column("offer_ha", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("limit_cpu_use", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("is_volatile", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("tags", sa.String(length=1024), nullable=True),
        sa.Column("host_tags", sa.String(length=1024), nullable=True),
        sa.Column("is_system", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("system_vm_type", sa.String(length=32), nullable=True),
        sa.Column("default_use", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("network_rate", sa.Integer(), nullable=True),
        sa.Column("deployment_planner", sa.String(length=255), nullable=True),
        sa.Column("root_disk_size", sa.BigInteger(), nullable=True),
        sa.Column("dynamic_scaling_enabled", sa.SmallInteger(), nullable=False, server_default="1"),
        sa.Column("disk_offering_id", sa.Integer(), nullable=True),
        sa.Column("disk_offering_strictness", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("encrypt_root", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("customized_iops", sa.SmallInteger(), nullable=True),
        sa.Column("min_iops", sa.BigInteger(), nullable=True),
        sa.Column("max_iops", sa.BigInteger(), nullable=True),
        sa.Column("hypervisor_snapshot_reserve", sa.Integer(), nullable=True),
        sa.Column("cache_mode", sa.String(length=16), nullable=True),
        *_rates(),
        sa.Column("sort_key", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["disk_offering_id"], ["disk_offerings.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid"),
    )
    op.create_index("service_offerings_name", "service_offerings", ["name"])
    op.create_index("service_offerings_system", "service_offerings", ["is_system", "system_vm_type"])
    for kind, column, target in (("domains", "domain_id", "domains.id"), ("zones", "zone_id", "zones.id")):
        op.create_table(
            f"offering_{kind}",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("offering_type", sa.String(length=16), nullable=False),
            sa.Column("offering_id", sa.Integer(), nullable=False),
            sa.Column(column, sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint([column], [target]),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(f"offering_{kind}_offering", f"offering_{kind}", ["offering_type", "offering_id"])
        op.create_index(f"offering_{kind}_{column.split('_')[0]}", f"offering_{kind}", [column])
    _seed(guest_os_categories, guest_os, disk_offerings, service_offerings)


def _now(conn: sa.engine.Connection) -> int:
    """The install time, from the database's clock (a migration runs before any reactor)."""
    if conn.dialect.name == "mysql":
        query = "SELECT UNIX_TIMESTAMP()"
    else:
        query = "SELECT CAST(strftime('%s', 'now') AS INTEGER)"
    return int(conn.execute(sa.text(query)).scalar_one())


def _seed(categories: sa.Table, guest_os: sa.Table, disks: sa.Table, services: sa.Table) -> None:
    """CloudStack's OS list (into the new, empty tables) and default offerings."""
    now = _now(op.get_bind())
    op.bulk_insert(categories, [{"id": cid, "uuid": ostypes_data.category_uuid(cid), "name": name,
                                 "created": now} for cid, name in ostypes_data.CATEGORIES])
    op.bulk_insert(guest_os, [{"id": oid, "uuid": ostypes_data.os_type_uuid(oid), "category_id": cat,
                               "display_name": name, "is_user_defined": 0, "for_display": 1, "created": now}
                              for oid, cat, name in ostypes_data.OS_TYPES])
    seed_offerings(op.get_bind(), disks, services)


def seed_offerings(conn: sa.engine.Connection, disks: sa.Table, services: sa.Table) -> None:
    """CloudStack's default offerings; one whose name a live offering of the same kind has already is
    not added again."""
    now = _now(conn)

    def absent(table: sa.Table, name: str) -> bool:
        query = sa.select(table.c.id).where(table.c.name == name, table.c.removed.is_(None))
        found = conn.execute(query).first()
        return found is None

    for name, text, size, customized in DISK_OFFERINGS:
        if absent(disks, name):
            conn.execute(disks.insert().values(
                uuid=str(uuid.uuid4()), name=name, display_text=text, disk_size=size * GB,
                customized=int(customized), storage_type="shared", provisioning_type="thin",
                display_offering=1, disk_size_strictness=0, encrypt=0, sort_key=0, state="Active",
                created=now))
    for name, text, cpu, speed, memory, vm_type in SERVICE_OFFERINGS:
        if absent(services, name):
            system = vm_type is not None
            conn.execute(services.insert().values(
                uuid=str(uuid.uuid4()), name=name, display_text=text, cpu=cpu, speed=speed, ram_size=memory,
                storage_type="shared", provisioning_type="thin", offer_ha=int(system), limit_cpu_use=0,
                is_volatile=0, is_system=int(system), system_vm_type=vm_type, default_use=int(system),
                dynamic_scaling_enabled=0 if system else 1, disk_offering_strictness=0, encrypt_root=0,
                sort_key=0, state="Active", created=now))


def downgrade() -> None:
    op.drop_table("offering_zones")
    op.drop_table("offering_domains")
    op.drop_table("service_offerings")
    op.drop_table("disk_offerings")
    op.drop_table("guest_os")
    op.drop_table("guest_os_categories")
