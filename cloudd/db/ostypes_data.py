"""The guest OS categories and types cloudd is installed with (revision 004 seeds them).

Names and category assignments are CloudStack's (its `guest_os_category` and `guest_os` rows); the
numbers are the seed's own row ids, and each row's UUID is derived from its number, so every
installation names the same OS type with the same UUID. This list is frozen for revision 004: OS
types added later get a revision of their own.
"""

from __future__ import annotations

import uuid

# a fixed namespace for the seeded rows' UUIDs
NAMESPACE = uuid.UUID("9d3c1c52-6a8e-4a5e-9a43-0c1f3b7e2d10")

CENTOS, DEBIAN, ORACLE, REDHAT, SUSE, WINDOWS, OTHER, NOVEL, UNIX, UBUNTU, NONE = range(1, 12)

CATEGORIES: tuple[tuple[int, str], ...] = (
    (CENTOS, "CentOS"),
    (DEBIAN, "Debian"),
    (ORACLE, "Oracle"),
    (REDHAT, "RedHat"),
    (SUSE, "SUSE"),
    (WINDOWS, "Windows"),
    (OTHER, "Other"),
    (NOVEL, "Novel"),
    (UNIX, "Unix"),
    (UBUNTU, "Ubuntu"),
    (NONE, "None"),
)


def _versions(category: int, fmt: str, versions: str, bits: str = "32,64") -> list[tuple[int, str]]:
    """`fmt` for every version and width, e.g. ("CentOS {v} ({b}-bit)", "6.1 6.2", "32,64")."""
    return [(category, fmt.format(v=v, b=b)) for v in versions.split() for b in bits.split(",")]


# (id, category, name): the types of CloudStack's first schema, ids as CloudStack numbers them
_BASE: tuple[tuple[int, int, str], ...] = (
    (1, CENTOS, "CentOS 4.5 (32-bit)"), (2, CENTOS, "CentOS 4.6 (32-bit)"),
    (3, CENTOS, "CentOS 4.7 (32-bit)"), (4, CENTOS, "CentOS 4.8 (32-bit)"),
    (5, CENTOS, "CentOS 5.0 (32-bit)"), (6, CENTOS, "CentOS 5.0 (64-bit)"),
    (7, CENTOS, "CentOS 5.1 (32-bit)"), (8, CENTOS, "CentOS 5.1 (64-bit)"),
    (9, CENTOS, "CentOS 5.2 (32-bit)"), (10, CENTOS, "CentOS 5.2 (64-bit)"),
    (11, CENTOS, "CentOS 5.3 (32-bit)"), (12, CENTOS, "CentOS 5.3 (64-bit)"),
    (13, CENTOS, "CentOS 5.4 (32-bit)"), (14, CENTOS, "CentOS 5.4 (64-bit)"),
    (15, DEBIAN, "Debian GNU/Linux 5.0 (32-bit)"), (16, ORACLE, "Oracle Enterprise Linux 5.0 (32-bit)"),
    (17, ORACLE, "Oracle Enterprise Linux 5.0 (64-bit)"),
    (18, ORACLE, "Oracle Enterprise Linux 5.1 (32-bit)"),
    (19, ORACLE, "Oracle Enterprise Linux 5.1 (64-bit)"),
    (20, ORACLE, "Oracle Enterprise Linux 5.2 (32-bit)"),
    (21, ORACLE, "Oracle Enterprise Linux 5.2 (64-bit)"),
    (22, ORACLE, "Oracle Enterprise Linux 5.3 (32-bit)"),
    (23, ORACLE, "Oracle Enterprise Linux 5.3 (64-bit)"),
    (24, ORACLE, "Oracle Enterprise Linux 5.4 (32-bit)"),
    (25, ORACLE, "Oracle Enterprise Linux 5.4 (64-bit)"),
    (26, REDHAT, "Red Hat Enterprise Linux 4.5 (32-bit)"),
    (27, REDHAT, "Red Hat Enterprise Linux 4.6 (32-bit)"),
    (28, REDHAT, "Red Hat Enterprise Linux 4.7 (32-bit)"),
    (29, REDHAT, "Red Hat Enterprise Linux 4.8 (32-bit)"),
    (30, REDHAT, "Red Hat Enterprise Linux 5.0 (32-bit)"),
    (31, REDHAT, "Red Hat Enterprise Linux 5.0 (64-bit)"),
    (32, REDHAT, "Red Hat Enterprise Linux 5.1 (32-bit)"),
    (33, REDHAT, "Red Hat Enterprise Linux 5.1 (64-bit)"),
    (34, REDHAT, "Red Hat Enterprise Linux 5.2 (32-bit)"),
    (35, REDHAT, "Red Hat Enterprise Linux 5.2 (64-bit)"),
    (36, REDHAT, "Red Hat Enterprise Linux 5.3 (32-bit)"),
    (37, REDHAT, "Red Hat Enterprise Linux 5.3 (64-bit)"),
    (38, REDHAT, "Red Hat Enterprise Linux 5.4 (32-bit)"),
    (39, REDHAT, "Red Hat Enterprise Linux 5.4 (64-bit)"),
    (40, SUSE, "SUSE Linux Enterprise Server 9 SP4 (32-bit)"),
    (41, SUSE, "SUSE Linux Enterprise Server 10 SP1 (32-bit)"),
    (42, SUSE, "SUSE Linux Enterprise Server 10 SP1 (64-bit)"),
    (43, SUSE, "SUSE Linux Enterprise Server 10 SP2 (32-bit)"),
    (44, SUSE, "SUSE Linux Enterprise Server 10 SP2 (64-bit)"),
    (45, SUSE, "SUSE Linux Enterprise Server 10 SP3 (64-bit)"),
    (46, SUSE, "SUSE Linux Enterprise Server 11 (32-bit)"),
    (47, SUSE, "SUSE Linux Enterprise Server 11 (64-bit)"), (48, WINDOWS, "Windows 7 (32-bit)"),
    (49, WINDOWS, "Windows 7 (64-bit)"), (50, WINDOWS, "Windows Server 2003 Enterprise Edition(32-bit)"),
    (51, WINDOWS, "Windows Server 2003 Enterprise Edition(64-bit)"),
    (52, WINDOWS, "Windows Server 2008 (32-bit)"), (53, WINDOWS, "Windows Server 2008 (64-bit)"),
    (54, WINDOWS, "Windows Server 2008 R2 (64-bit)"), (55, WINDOWS, "Windows 2000 Server SP4 (32-bit)"),
    (56, WINDOWS, "Windows Vista (32-bit)"), (57, WINDOWS, "Windows XP SP2 (32-bit)"),
    (58, WINDOWS, "Windows XP SP3 (32-bit)"), (59, UBUNTU, "Other Ubuntu (32-bit)"),
    (60, OTHER, "Other (32-bit)"), (61, WINDOWS, "Windows 2000 Server"), (62, WINDOWS, "Windows 98"),
    (63, WINDOWS, "Windows 95"), (64, WINDOWS, "Windows NT 4"), (65, WINDOWS, "Windows 3.1"),
    (66, REDHAT, "Red Hat Enterprise Linux 3(32-bit)"), (67, REDHAT, "Red Hat Enterprise Linux 3(64-bit)"),
    (68, OTHER, "Open Enterprise Server"), (69, OTHER, "Asianux 3(32-bit)"), (70, OTHER, "Asianux 3(64-bit)"),
    (72, DEBIAN, "Debian GNU/Linux 5(64-bit)"), (73, DEBIAN, "Debian GNU/Linux 4(32-bit)"),
    (74, DEBIAN, "Debian GNU/Linux 4(64-bit)"), (75, OTHER, "Other 2.6x Linux (32-bit)"),
    (76, OTHER, "Other 2.6x Linux (64-bit)"), (77, NOVEL, "Novell Netware 6.x"),
    (78, NOVEL, "Novell Netware 5.1"), (79, UNIX, "Sun Solaris 10(32-bit)"),
    (80, UNIX, "Sun Solaris 10(64-bit)"), (81, UNIX, "Sun Solaris 9(Experimental)"),
    (82, UNIX, "Sun Solaris 8(Experimental)"), (83, UNIX, "FreeBSD (32-bit)"), (84, UNIX, "FreeBSD (64-bit)"),
    (85, UNIX, "SCO OpenServer 5"), (86, UNIX, "SCO UnixWare 7"),
    (87, WINDOWS, "Windows Server 2003 DataCenter Edition(32-bit)"),
    (88, WINDOWS, "Windows Server 2003 DataCenter Edition(64-bit)"),
    (89, WINDOWS, "Windows Server 2003 Standard Edition(32-bit)"),
    (90, WINDOWS, "Windows Server 2003 Standard Edition(64-bit)"),
    (91, WINDOWS, "Windows Server 2003 Web Edition"), (92, WINDOWS, "Microsoft Small Bussiness Server 2003"),
    (93, WINDOWS, "Windows XP (32-bit)"), (94, WINDOWS, "Windows XP (64-bit)"),
    (95, WINDOWS, "Windows 2000 Advanced Server"), (96, SUSE, "SUSE Linux Enterprise 8(32-bit)"),
    (97, SUSE, "SUSE Linux Enterprise 8(64-bit)"), (98, OTHER, "Other Linux (32-bit)"),
    (99, OTHER, "Other Linux (64-bit)"), (100, UBUNTU, "Other Ubuntu (64-bit)"),
    (101, WINDOWS, "Windows Vista (64-bit)"), (102, WINDOWS, "DOS"), (103, OTHER, "Other (64-bit)"),
    (104, OTHER, "OS/2"), (105, WINDOWS, "Windows 2000 Professional"),
    (106, REDHAT, "Red Hat Enterprise Linux 4(64-bit)"), (107, SUSE, "SUSE Linux Enterprise 9(32-bit)"),
    (108, SUSE, "SUSE Linux Enterprise 9(64-bit)"), (109, SUSE, "SUSE Linux Enterprise 10(32-bit)"),
    (110, SUSE, "SUSE Linux Enterprise 10(64-bit)"), (111, CENTOS, "CentOS 5.5 (32-bit)"),
    (112, CENTOS, "CentOS 5.5 (64-bit)"), (113, REDHAT, "Red Hat Enterprise Linux 5.5 (32-bit)"),
    (114, REDHAT, "Red Hat Enterprise Linux 5.5 (64-bit)"), (115, REDHAT, "Fedora 13"),
    (116, REDHAT, "Fedora 12"), (117, REDHAT, "Fedora 11"), (118, REDHAT, "Fedora 10"),
    (119, REDHAT, "Fedora 9"), (120, REDHAT, "Fedora 8"), (121, UBUNTU, "Ubuntu 10.04 (32-bit)"),
    (122, UBUNTU, "Ubuntu 9.10 (32-bit)"), (123, UBUNTU, "Ubuntu 9.04 (32-bit)"),
    (124, UBUNTU, "Ubuntu 8.10 (32-bit)"), (125, UBUNTU, "Ubuntu 8.04 (32-bit)"),
    (126, UBUNTU, "Ubuntu 10.04 (64-bit)"), (127, UBUNTU, "Ubuntu 9.10 (64-bit)"),
    (128, UBUNTU, "Ubuntu 9.04 (64-bit)"), (129, UBUNTU, "Ubuntu 8.10 (64-bit)"),
    (130, UBUNTU, "Ubuntu 8.04 (64-bit)"), (131, REDHAT, "Red Hat Enterprise Linux 2"),
    (132, DEBIAN, "Debian GNU/Linux 6(32-bit)"), (133, DEBIAN, "Debian GNU/Linux 6(64-bit)"),
    (134, ORACLE, "Oracle Enterprise Linux 5.5 (32-bit)"),
    (135, ORACLE, "Oracle Enterprise Linux 5.5 (64-bit)"),
    (136, REDHAT, "Red Hat Enterprise Linux 6.0 (32-bit)"),
    (137, REDHAT, "Red Hat Enterprise Linux 6.0 (64-bit)"), (138, OTHER, "None"),
    (139, OTHER, "Other PV (32-bit)"), (140, OTHER, "Other PV (64-bit)"),
    (141, CENTOS, "CentOS 5.6 (32-bit)"), (142, CENTOS, "CentOS 5.6 (64-bit)"),
    (143, CENTOS, "CentOS 6.0 (32-bit)"), (144, CENTOS, "CentOS 6.0 (64-bit)"),
    (145, ORACLE, "Oracle Enterprise Linux 5.6 (32-bit)"),
    (146, ORACLE, "Oracle Enterprise Linux 5.6 (64-bit)"),
    (147, ORACLE, "Oracle Enterprise Linux 6.0 (32-bit)"),
    (148, ORACLE, "Oracle Enterprise Linux 6.0 (64-bit)"),
    (149, REDHAT, "Red Hat Enterprise Linux 5.6 (32-bit)"),
    (150, REDHAT, "Red Hat Enterprise Linux 5.6 (64-bit)"),
    (151, SUSE, "SUSE Linux Enterprise Server 10 SP3 (32-bit)"),
    (152, SUSE, "SUSE Linux Enterprise Server 10 SP4 (64-bit)"),
    (153, SUSE, "SUSE Linux Enterprise Server 10 SP4 (32-bit)"),
    (154, SUSE, "SUSE Linux Enterprise Server 11 SP1 (64-bit)"),
    (155, SUSE, "SUSE Linux Enterprise Server 11 SP1 (32-bit)"), (156, UBUNTU, "Ubuntu 10.10 (32-bit)"),
    (157, UBUNTU, "Ubuntu 10.10 (64-bit)"), (158, UNIX, "Sun Solaris 11 (64-bit)"),
    (159, UNIX, "Sun Solaris 11 (32-bit)"), (160, WINDOWS, "Windows PV"),
    (161, CENTOS, "CentOS 5.7 (32-bit)"), (162, CENTOS, "CentOS 5.7 (64-bit)"),
    (200, CENTOS, "Other CentOS (32-bit)"), (201, CENTOS, "Other CentOS (64-bit)"),
    (202, SUSE, "Other SUSE Linux(32-bit)"), (203, SUSE, "Other SUSE Linux(64-bit)"),
)

# the types CloudStack's later releases added (numbered here from 204 on, in this order)
_LATER: list[tuple[int, str]] = [
    *_versions(CENTOS, "CentOS {v} ({b}-bit)", "5.8 5.9 5.10 5.11 6.1 6.2 6.3 6.4 6.5 6.6 6.7 6.8 6.9 6.10"),
    (CENTOS, "CentOS 7"), (CENTOS, "CentOS 7.1"), (CENTOS, "CentOS 7.2"), (CENTOS, "CentOS 8"),
    (CENTOS, "CentOS 9"),
    (CENTOS, "Rocky Linux 8"), (CENTOS, "Rocky Linux 9"),
    (CENTOS, "AlmaLinux 8.3"), (CENTOS, "AlmaLinux 8"), (CENTOS, "AlmaLinux 9"),
    *_versions(REDHAT, "Red Hat Enterprise Linux {v} ({b}-bit)",
               "5.7 5.8 5.9 5.10 5.11 6.1 6.2 6.3 6.4 6.5 6.6"),
    (REDHAT, "Red Hat Enterprise Linux 7"), (REDHAT, "Red Hat Enterprise Linux 7.1"),
    (REDHAT, "Red Hat Enterprise Linux 7.2"), (REDHAT, "Red Hat Enterprise Linux 8"),
    (REDHAT, "Red Hat Enterprise Linux 8.0"), (REDHAT, "Red Hat Enterprise Linux 9"),
    (REDHAT, "Fedora 14"), (REDHAT, "Fedora 15"), (REDHAT, "Fedora 16"), (REDHAT, "Fedora 17"),
    (REDHAT, "Fedora 18"), (REDHAT, "Fedora 19"), (REDHAT, "Fedora 20"),
    (REDHAT, "Fedora Linux (32 bit)"), (REDHAT, "Fedora Linux (64 bit)"),
    *_versions(ORACLE, "Oracle Enterprise Linux {v} ({b}-bit)", "5.7 5.8 5.9 5.10 5.11 6.1 6.2 6.3 6.4 6.5"),
    (ORACLE, "Oracle Linux 7"), (ORACLE, "Oracle Linux 8"), (ORACLE, "Oracle Linux 9"),
    *_versions(DEBIAN, "Debian GNU/Linux {v}({b}-bit)", "7"),
    *_versions(DEBIAN, "Debian GNU/Linux {v} ({b}-bit)", "8 9 10 11 12"),
    *_versions(UBUNTU, "Ubuntu {v} ({b}-bit)",
               "11.04 11.10 12.04 12.10 13.04 13.10 14.04 14.10 15.04 15.10 16.04"),
    (UBUNTU, "Ubuntu 17.04"), (UBUNTU, "Ubuntu 17.10"), (UBUNTU, "Ubuntu 18.04 LTS"),
    (UBUNTU, "Ubuntu 18.10"),
    (UBUNTU, "Ubuntu 19.04"), (UBUNTU, "Ubuntu 19.10"), (UBUNTU, "Ubuntu 20.04 LTS"),
    (UBUNTU, "Ubuntu 20.10"),
    (UBUNTU, "Ubuntu 21.04"), (UBUNTU, "Ubuntu 21.10"), (UBUNTU, "Ubuntu 22.04 LTS"),
    (UBUNTU, "Ubuntu 24.04 LTS"),
    *_versions(SUSE, "SUSE Linux Enterprise Server 11 SP{v} ({b}-bit)", "2 3 4"),
    (SUSE, "SUSE Linux Enterprise Server 12 (64-bit)"),
    (SUSE, "SUSE Linux Enterprise Server 12 SP1 (64-bit)"),
    (SUSE, "SUSE Linux Enterprise Server 12 SP2 (64-bit)"),
    (SUSE, "SUSE Linux Enterprise Server 12 SP3 (64-bit)"),
    (SUSE, "SUSE Linux Enterprise Server 12 SP4 (64-bit)"),
    (SUSE, "SUSE Linux Enterprise Server 12 SP5 (64-bit)"),
    (SUSE, "SUSE Linux Enterprise Server 15 (64-bit)"),
    (SUSE, "SUSE Linux Enterprise Server 15 SP1 (64-bit)"),
    (SUSE, "SUSE Linux Enterprise Server 15 SP2 (64-bit)"),
    (SUSE, "SUSE Linux Enterprise Server 15 SP3 (64-bit)"),
    (SUSE, "SUSE Linux Enterprise Server 15 SP4 (64-bit)"),
    (SUSE, "SUSE Linux Enterprise Desktop 12 SP3 (64-bit)"),
    (SUSE, "SUSE Linux Enterprise Desktop 12 SP4 (64-bit)"),
    (SUSE, "OpenSUSE Linux (32 bit)"), (SUSE, "OpenSUSE Linux (64 bit)"),
    (SUSE, "openSUSE Leap 15"),
    *_versions(WINDOWS, "Windows 8 ({b}-bit)", "8"), *_versions(WINDOWS, "Windows 8.1 ({b}-bit)", "8.1"),
    *_versions(WINDOWS, "Windows 10 ({b}-bit)", "10"), (WINDOWS, "Windows 11 (64-bit)"),
    (WINDOWS, "Windows Server 2012 (64-bit)"), (WINDOWS, "Windows Server 2012 R2 (64-bit)"),
    (WINDOWS, "Windows Server 2016 (64-bit)"), (WINDOWS, "Windows Server 2019 (64-bit)"),
    (WINDOWS, "Windows Server 2022 (64-bit)"), (WINDOWS, "Windows Server 8 (64-bit)"),
    (WINDOWS, "Windows Server 2008 R2 SP1 (64-bit)"),
    *_versions(UNIX, "FreeBSD {v} ({b}-bit)", "10 11 12 13"),
    (UNIX, "OpenBSD 6.7"), (UNIX, "OpenBSD 6.8"), (UNIX, "pfSense 2.4"), (UNIX, "Sun Solaris 11.1 (64-bit)"),
    (OTHER, "Other 3.x Linux (32-bit)"), (OTHER, "Other 3.x Linux (64-bit)"),
    (OTHER, "Other 4.x Linux (32-bit)"), (OTHER, "Other 4.x Linux (64-bit)"),
    (OTHER, "Other 5.x Linux (64-bit)"), (OTHER, "CoreOS"), (OTHER, "Mandriva Linux (32 bit)"),
]

FIRST_LATER_ID = 204

OS_TYPES: tuple[tuple[int, int, str], ...] = _BASE + tuple(
    (FIRST_LATER_ID + i, category, name) for i, (category, name) in enumerate(_LATER))


def category_uuid(category_id: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"guest-os-category:{category_id}"))


def os_type_uuid(os_id: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"guest-os:{os_id}"))
