"""The Core schema of the management server: one MetaData holding every table.

Portable across SQLite and MariaDB/MySQL: SmallInteger for booleans, epoch-second integers for
timestamps, explicit String lengths. Only Alembic revisions change the schema; `is_current` and
the migration tests compare the live database with this metadata.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# The domain tree. `path` is CloudStack's form: "/" for ROOT, "/a/b/" below it.
domains = sa.Table(
    "domains",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("domains.id"), nullable=True),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("network_domain", sa.String(255), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("domains_parent", domains.c.parent_id)
sa.Index("domains_path", domains.c.path)

roles = sa.Table(
    "roles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("role_type", sa.String(16), nullable=False),
    sa.Column("description", sa.String(255), nullable=True),
    sa.Column("is_default", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)

role_permissions = sa.Table(
    "role_permissions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("role_id", sa.Integer, sa.ForeignKey("roles.id", ondelete="CASCADE"), nullable=False),
    sa.Column("rule", sa.String(255), nullable=False),
    # "allow" or "deny"
    sa.Column("permission", sa.String(8), nullable=False),
    sa.Column("sort_order", sa.Integer, nullable=False),
    sa.Column("description", sa.String(255), nullable=True),
)
sa.Index("role_permissions_role", role_permissions.c.role_id, role_permissions.c.sort_order)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    # CloudStack account types: 0 user, 1 root admin, 2 domain admin, 3 resource admin
    sa.Column("account_type", sa.SmallInteger, nullable=False),
    sa.Column("role_id", sa.Integer, sa.ForeignKey("roles.id"), nullable=False),
    sa.Column("domain_id", sa.Integer, sa.ForeignKey("domains.id"), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("network_domain", sa.String(255), nullable=True),
    sa.Column("is_default", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("accounts_domain", accounts.c.domain_id, accounts.c.name)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("username", sa.String(255), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("firstname", sa.String(255), nullable=True),
    sa.Column("lastname", sa.String(255), nullable=True),
    sa.Column("email", sa.String(255), nullable=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=True),
    sa.Column("api_key", sa.String(255), nullable=True, unique=True),
    # sealed (cloudd.util.sealing): a version, a key id and the AES-GCM ciphertext bound to the uuid
    sa.Column("secret_key", sa.Text, nullable=True),
    sa.Column("is_default", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("users_account", users.c.account_id)
sa.Index("users_username", users.c.username)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # HMAC-SHA256 (hex) of the session key under a key derived from the secrets key; never the key
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("last_access", sa.Integer, nullable=False),
    sa.Column("timeout", sa.Integer, nullable=False),
)
sa.Index("sessions_user", sessions.c.user_id)

configuration = sa.Table(
    "configuration",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=True),
    sa.Column("updated", sa.Integer, nullable=False),
)

# Management-server processes; each heart-beats here so that the jobs of a dead one can be failed.
mshosts = sa.Table(
    "mshosts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("runid", sa.String(40), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("last_heartbeat", sa.Integer, nullable=False),
)

async_jobs = sa.Table(
    "async_jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("domain_id", sa.Integer, sa.ForeignKey("domains.id"), nullable=False),
    sa.Column("command", sa.String(255), nullable=False),
    sa.Column("cmd", sa.String(255), nullable=False),
    # parameters with every secret removed; the job itself receives the full set in memory
    sa.Column("cmd_info", sa.Text, nullable=False),
    sa.Column("instance_type", sa.String(64), nullable=True),
    sa.Column("instance_uuid", sa.String(40), nullable=True),
    # the object a job serialises on ("Account:12"): one running job per object
    sa.Column("sync_object", sa.String(128), nullable=True),
    # 0 pending/in progress, 1 succeeded, 2 failed, 3 cancelled
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("proc_status", sa.Integer, nullable=False, server_default="0"),
    sa.Column("result_code", sa.Integer, nullable=False, server_default="0"),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("msid", sa.Integer, sa.ForeignKey("mshosts.id"), nullable=True),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("completed", sa.Integer, nullable=True),
)
sa.Index("async_jobs_status", async_jobs.c.status, async_jobs.c.msid)
sa.Index("async_jobs_sync", async_jobs.c.sync_object, async_jobs.c.status)
sa.Index("async_jobs_account", async_jobs.c.account_id)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    # Created, Scheduled, Started, Completed
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("user_id", sa.Integer, nullable=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("domain_id", sa.Integer, sa.ForeignKey("domains.id"), nullable=False),
    sa.Column("resource_type", sa.String(64), nullable=True),
    sa.Column("resource_uuid", sa.String(40), nullable=True),
    sa.Column("resource_name", sa.String(255), nullable=True),
    sa.Column("start_id", sa.Integer, nullable=True),
    sa.Column("archived", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("created", sa.Integer, nullable=False),
)
sa.Index("events_account", events.c.account_id, events.c.created)
sa.Index("events_domain", events.c.domain_id)

# --- infrastructure (zones, pods, clusters, hosts) -------------------------------------------------

zones = sa.Table(
    "zones",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.String(255), nullable=True),
    sa.Column("dns1", sa.String(64), nullable=True),
    sa.Column("dns2", sa.String(64), nullable=True),
    sa.Column("ip6_dns1", sa.String(64), nullable=True),
    sa.Column("ip6_dns2", sa.String(64), nullable=True),
    sa.Column("internal_dns1", sa.String(64), nullable=True),
    sa.Column("internal_dns2", sa.String(64), nullable=True),
    sa.Column("guest_cidr", sa.String(64), nullable=True),
    sa.Column("network_domain", sa.String(255), nullable=True),
    # Advanced or Basic
    sa.Column("network_type", sa.String(16), nullable=False),
    sa.Column("security_groups", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("local_storage", sa.SmallInteger, nullable=False, server_default="0"),
    # dedicated to a domain (listZones domainid), or public
    sa.Column("domain_id", sa.Integer, sa.ForeignKey("domains.id"), nullable=True),
    # Enabled or Disabled
    sa.Column("allocation_state", sa.String(16), nullable=False),
    sa.Column("tags", sa.String(255), nullable=True),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("zones_name", zones.c.name)

pods = sa.Table(
    "pods",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("zone_id", sa.Integer, sa.ForeignKey("zones.id"), nullable=False),
    sa.Column("gateway", sa.String(64), nullable=True),
    sa.Column("netmask", sa.String(64), nullable=True),
    sa.Column("start_ip", sa.String(64), nullable=True),
    sa.Column("end_ip", sa.String(64), nullable=True),
    sa.Column("allocation_state", sa.String(16), nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("pods_zone", pods.c.zone_id)

clusters = sa.Table(
    "clusters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("zone_id", sa.Integer, sa.ForeignKey("zones.id"), nullable=False),
    sa.Column("pod_id", sa.Integer, sa.ForeignKey("pods.id"), nullable=False),
    # KVM or Simulator
    sa.Column("hypervisor", sa.String(32), nullable=False),
    sa.Column("cluster_type", sa.String(32), nullable=False),
    sa.Column("allocation_state", sa.String(16), nullable=False),
    sa.Column("managed_state", sa.String(16), nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("clusters_pod", clusters.c.pod_id)

hosts = sa.Table(
    "hosts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    # Routing (hypervisor hosts); SecondaryStorageVM and others for system VMs
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("zone_id", sa.Integer, sa.ForeignKey("zones.id"), nullable=False),
    sa.Column("pod_id", sa.Integer, sa.ForeignKey("pods.id"), nullable=True),
    sa.Column("cluster_id", sa.Integer, sa.ForeignKey("clusters.id"), nullable=True),
    sa.Column("url", sa.String(1024), nullable=False),
    sa.Column("hypervisor", sa.String(32), nullable=True),
    sa.Column("hypervisor_version", sa.String(64), nullable=True),
    sa.Column("ip_address", sa.String(64), nullable=True),
    # the connection state: Up, Down, Disconnected, Alert, Connecting
    sa.Column("state", sa.String(32), nullable=False),
    # the operator's state: Enabled, Disabled, PrepareForMaintenance, Maintenance, ErrorInMaintenance
    sa.Column("resource_state", sa.String(32), nullable=False),
    sa.Column("cpus", sa.Integer, nullable=True),
    sa.Column("cpu_speed", sa.Integer, nullable=True),
    sa.Column("cpu_sockets", sa.Integer, nullable=True),
    sa.Column("memory", sa.BigInteger, nullable=True),
    sa.Column("cpu_model", sa.String(255), nullable=True),
    sa.Column("arch", sa.String(32), nullable=True),
    sa.Column("version", sa.String(64), nullable=True),
    sa.Column("last_pinged", sa.Integer, nullable=True),
    # when the state last changed (Disconnected for longer than the limit turns Down)
    sa.Column("state_changed", sa.Integer, nullable=True),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("hosts_cluster", hosts.c.cluster_id)
sa.Index("hosts_zone_state", hosts.c.zone_id, hosts.c.state)

host_tags = sa.Table(
    "host_tags",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), nullable=False),
    sa.Column("tag", sa.String(255), nullable=False),
)
sa.Index("host_tags_host", host_tags.c.host_id)

# Alerts for operators (listAlerts): CloudStack's numeric types (AlertManager.AlertType).
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("subject", sa.String(999), nullable=False),
    sa.Column("zone_id", sa.Integer, nullable=True),
    sa.Column("pod_id", sa.Integer, nullable=True),
    sa.Column("cluster_id", sa.Integer, nullable=True),
    sa.Column("archived", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("alerts_type", alerts.c.type, alerts.c.created)
