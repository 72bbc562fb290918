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

# --- images (image stores, system VMs, templates and ISOs, their per-zone copies, permissions) -------

# Secondary storage (addImageStore / addSecondaryStorage). `path` is the local directory the zone's
# ssvm serves as its store root.
image_stores = sa.Table(
    "image_stores",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("zone_id", sa.Integer, sa.ForeignKey("zones.id"), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("protocol", sa.String(16), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("readonly", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("details", sa.Text, nullable=True),  # JSON object
    sa.Column("total_size", sa.BigInteger, nullable=True),
    sa.Column("used_size", sa.BigInteger, nullable=True),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("image_stores_zone", image_stores.c.zone_id)

# System VMs (the secondary-storage VM of each zone with an image store).
system_vms = sa.Table(
    "system_vms",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("vm_type", sa.String(32), nullable=False),
    sa.Column("zone_id", sa.Integer, sa.ForeignKey("zones.id"), nullable=False),
    sa.Column("store_id", sa.Integer, sa.ForeignKey("image_stores.id"), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("public_ip", sa.String(64), nullable=True),
    sa.Column("private_ip", sa.String(64), nullable=True),
    sa.Column("link_local_ip", sa.String(64), nullable=True),
    sa.Column("control_url", sa.String(255), nullable=True),
    sa.Column("public_url", sa.String(255), nullable=True),
    sa.Column("state_changed", sa.Integer, nullable=True),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("system_vms_zone", system_vms.c.zone_id, system_vms.c.vm_type)

# Templates and ISOs (`is_iso`). `template_type` is USER, BUILTIN, SYSTEM or ROUTING.
templates = sa.Table(
    "templates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("display_text", sa.String(4096), nullable=True),
    sa.Column("is_iso", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("hypervisor", sa.String(32), nullable=True),
    sa.Column("os_type_uuid", sa.String(40), nullable=True),
    sa.Column("template_type", sa.String(16), nullable=False),
    sa.Column("url", sa.String(4096), nullable=True),
    sa.Column("checksum", sa.String(255), nullable=True),
    sa.Column("bits", sa.Integer, nullable=False, server_default="64"),
    sa.Column("public", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("featured", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("extractable", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("password_enabled", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("sshkey_enabled", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("dynamically_scalable", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("requires_hvm", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("bootable", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("cross_zones", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("direct_download", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("deploy_as_is", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("template_tag", sa.String(255), nullable=True),
    sa.Column("details", sa.Text, nullable=True),  # JSON object
    sa.Column("source_template_id", sa.Integer, nullable=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("domain_id", sa.Integer, sa.ForeignKey("domains.id"), nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("templates_account", templates.c.account_id)
sa.Index("templates_listing", templates.c.is_iso, templates.c.removed, templates.c.public, templates.c.featured)

# A template's copy in one zone's image store: its download in that zone's ssvm, with the progress as
# ssvm reports it. `state` is CloudStack's download state (VMTemplateStorageResourceAssoc.Status).
template_zones = sa.Table(
    "template_zones",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("template_id", sa.Integer, sa.ForeignKey("templates.id"), nullable=False),
    sa.Column("zone_id", sa.Integer, sa.ForeignKey("zones.id"), nullable=False),
    sa.Column("store_id", sa.Integer, sa.ForeignKey("image_stores.id"), nullable=False),
    sa.Column("download_id", sa.String(64), nullable=False),
    sa.Column("source_url", sa.String(4096), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("percent", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("error", sa.String(1024), nullable=True),
    sa.Column("install_path", sa.String(1024), nullable=True),
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("physical_size", sa.BigInteger, nullable=True),
    sa.Column("checksum", sa.String(255), nullable=True),
    sa.Column("restarts", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("updated", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("template_zones_template", template_zones.c.template_id, template_zones.c.zone_id)
sa.Index("template_zones_state", template_zones.c.state)

# Accounts a private template or ISO is shared with (updateTemplatePermissions).
template_permissions = sa.Table(
    "template_permissions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("template_id", sa.Integer, sa.ForeignKey("templates.id"), nullable=False),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.UniqueConstraint("template_id", "account_id", name="template_permissions_unique"),
)
sa.Index("template_permissions_account", template_permissions.c.account_id)

# --- offerings and OS types ------------------------------------------------------------------------

# CloudStack's guest OS categories (listOsCategories) and guest OS types (listOsTypes)
guest_os_categories = sa.Table(
    "guest_os_categories",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
)

guest_os = sa.Table(
    "guest_os",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("category_id", sa.Integer, sa.ForeignKey("guest_os_categories.id"), nullable=False),
    sa.Column("display_name", sa.String(255), nullable=False),
    # added with addGuestOs (only those may be updated or removed)
    sa.Column("is_user_defined", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("for_display", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("guest_os_category", guest_os.c.category_id)

# the disk I/O limits both kinds of offering carry (CloudStack's bytes/iops read/write rates)
OFFERING_RATES = (
    "bytes_read_rate", "bytes_read_rate_max", "bytes_read_rate_max_length",
    "bytes_write_rate", "bytes_write_rate_max", "bytes_write_rate_max_length",
    "iops_read_rate", "iops_read_rate_max", "iops_read_rate_max_length",
    "iops_write_rate", "iops_write_rate_max", "iops_write_rate_max_length",
)

disk_offerings = sa.Table(
    "disk_offerings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("display_text", sa.String(1024), nullable=False),
    # bytes; 0 for customized offerings (the size is given when the volume is created)
    sa.Column("disk_size", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("customized", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("customized_iops", sa.SmallInteger, nullable=True),
    sa.Column("min_iops", sa.BigInteger, nullable=True),
    sa.Column("max_iops", sa.BigInteger, nullable=True),
    # shared or local
    sa.Column("storage_type", sa.String(16), nullable=False),
    # thin, sparse or fat
    sa.Column("provisioning_type", sa.String(16), nullable=False),
    # storage tags, comma-separated
    sa.Column("tags", sa.String(1024), nullable=True),
    sa.Column("cache_mode", sa.String(16), nullable=True),
    sa.Column("hypervisor_snapshot_reserve", sa.Integer, nullable=True),
    *(sa.Column(name, sa.BigInteger, nullable=True) for name in OFFERING_RATES),
    sa.Column("display_offering", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("disk_size_strictness", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("encrypt", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("sort_key", sa.Integer, nullable=False, server_default="0"),
    # Active or Inactive
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("disk_offerings_name", disk_offerings.c.name)

service_offerings = sa.Table(
    "service_offerings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("display_text", sa.String(1024), nullable=False),
    # all three set for a fixed offering; any of them unset makes the offering customized
    sa.Column("cpu", sa.Integer, nullable=True),
    sa.Column("speed", sa.Integer, nullable=True),
    sa.Column("ram_size", sa.Integer, nullable=True),
    # bounds of a customized offering's CPU count and memory (MB)
    sa.Column("min_cpu", sa.Integer, nullable=True),
    sa.Column("max_cpu", sa.Integer, nullable=True),
    sa.Column("min_memory", sa.Integer, nullable=True),
    sa.Column("max_memory", sa.Integer, nullable=True),
    sa.Column("storage_type", sa.String(16), nullable=False),
    sa.Column("provisioning_type", sa.String(16), nullable=False),
    sa.Column("offer_ha", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("limit_cpu_use", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("is_volatile", sa.SmallInteger, nullable=False, server_default="0"),
    # storage tags and host tags, comma-separated
    sa.Column("tags", sa.String(1024), nullable=True),
    sa.Column("host_tags", sa.String(1024), nullable=True),
    sa.Column("is_system", sa.SmallInteger, nullable=False, server_default="0"),
    # domainrouter, consoleproxy, secondarystoragevm, internalloadbalancervm (system offerings)
    sa.Column("system_vm_type", sa.String(32), nullable=True),
    sa.Column("default_use", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("network_rate", sa.Integer, nullable=True),
    sa.Column("deployment_planner", sa.String(255), nullable=True),
    # GB
    sa.Column("root_disk_size", sa.BigInteger, nullable=True),
    sa.Column("dynamic_scaling_enabled", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("disk_offering_id", sa.Integer, sa.ForeignKey("disk_offerings.id"), nullable=True),
    sa.Column("disk_offering_strictness", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("encrypt_root", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("customized_iops", sa.SmallInteger, nullable=True),
    sa.Column("min_iops", sa.BigInteger, nullable=True),
    sa.Column("max_iops", sa.BigInteger, nullable=True),
    sa.Column("hypervisor_snapshot_reserve", sa.Integer, nullable=True),
    sa.Column("cache_mode", sa.String(16), nullable=True),
    *(sa.Column(name, sa.BigInteger, nullable=True) for name in OFFERING_RATES),
    sa.Column("sort_key", sa.Integer, nullable=False, server_default="0"),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("service_offerings_name", service_offerings.c.name)
sa.Index("service_offerings_system", service_offerings.c.is_system, service_offerings.c.system_vm_type)

# The domains and zones an offering is limited to (none: public, all zones); `offering_type` is
# "Service" or "Disk".
offering_domains = sa.Table(
    "offering_domains",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("offering_type", sa.String(16), nullable=False),
    sa.Column("offering_id", sa.Integer, nullable=False),
    sa.Column("domain_id", sa.Integer, sa.ForeignKey("domains.id"), nullable=False),
)
sa.Index("offering_domains_offering", offering_domains.c.offering_type, offering_domains.c.offering_id)
sa.Index("offering_domains_domain", offering_domains.c.domain_id)

offering_zones = sa.Table(
    "offering_zones",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("offering_type", sa.String(16), nullable=False),
    sa.Column("offering_id", sa.Integer, nullable=False),
    sa.Column("zone_id", sa.Integer, sa.ForeignKey("zones.id"), nullable=False),
)
sa.Index("offering_zones_offering", offering_zones.c.offering_type, offering_zones.c.offering_id)
sa.Index("offering_zones_zone", offering_zones.c.zone_id)

# --- primary storage (storage pools, their tags, the hosts each pool is defined on) -----------------

# Primary storage pools (createStoragePool). `state` follows StoragePoolStatus (Up, Disabled,
# PrepareForMaintenance, Maintenance, ErrorInMaintenance, CancelMaintenance, Removed); the figures are
# the pool's as libvirt last reported them, `capacity_limit` what the operator allows to provision.
storage_pools = sa.Table(
    "storage_pools",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("zone_id", sa.Integer, sa.ForeignKey("zones.id"), nullable=False),
    sa.Column("pod_id", sa.Integer, sa.ForeignKey("pods.id"), nullable=True),
    sa.Column("cluster_id", sa.Integer, sa.ForeignKey("clusters.id"), nullable=True),
    # CLUSTER or ZONE
    sa.Column("scope", sa.String(16), nullable=False),
    # NetworkFilesystem, SharedMountPoint or Filesystem
    sa.Column("pool_type", sa.String(32), nullable=False),
    # the NFS server, or "localhost" for a directory on the hosts
    sa.Column("host_address", sa.String(255), nullable=False),
    # the NFS export, or the directory
    sa.Column("path", sa.String(255), nullable=False),
    sa.Column("url", sa.String(255), nullable=False),
    sa.Column("hypervisor", sa.String(32), nullable=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("managed", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("capacity_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("used_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("available_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("capacity_limit", sa.BigInteger, nullable=True),
    sa.Column("capacity_iops", sa.BigInteger, nullable=True),
    # when the figures were last read from a host
    sa.Column("stats_updated", sa.Integer, nullable=True),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=True),
)
sa.Index("storage_pools_zone", storage_pools.c.zone_id, storage_pools.c.state)
sa.Index("storage_pools_cluster", storage_pools.c.cluster_id)

storage_pool_tags = sa.Table(
    "storage_pool_tags",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pool_id", sa.Integer, sa.ForeignKey("storage_pools.id"), nullable=False),
    sa.Column("tag", sa.String(255), nullable=False),
)
sa.Index("storage_pool_tags_pool", storage_pool_tags.c.pool_id)

# The hosts a pool is defined on (CloudStack's storage_pool_host_ref), with the pool's path there.
storage_pool_hosts = sa.Table(
    "storage_pool_hosts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pool_id", sa.Integer, sa.ForeignKey("storage_pools.id"), nullable=False),
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), nullable=False),
    sa.Column("local_path", sa.String(255), nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.UniqueConstraint("pool_id", "host_id", name="storage_pool_hosts_pool_host"),
)
sa.Index("storage_pool_hosts_host", storage_pool_hosts.c.host_id)
