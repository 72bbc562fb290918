"""The entities of the infrastructure (zone, pod, cluster, host) for entity-typed parameters.

Zones are visible to every caller (a zone dedicated to a domain only to that domain and above);
pods, clusters and hosts are named only by admin commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloudd.api.entities import Entity

if TYPE_CHECKING:
    from cloudd.api.context import Caller
    from cloudd.orchestration.context import Services


async def _zone(s: Services, uuid: str) -> Any:
    return await s.db.infra.get_zone_by_uuid(uuid)


def _zone_visible(caller: Caller, zone: Any) -> bool:
    # a zone dedicated to a domain: that domain, its ancestors' admins and the root admin
    # (the domain path is checked where the zone is listed; here only the id is known)
    return zone.domain_id is None or caller.is_root_admin or caller.account.domain_id == zone.domain_id or \
        caller.is_admin


async def _pod(s: Services, uuid: str) -> Any:
    return await s.db.infra.get_pod_by_uuid(uuid)


async def _cluster(s: Services, uuid: str) -> Any:
    return await s.db.infra.get_cluster_by_uuid(uuid)


async def _host(s: Services, uuid: str) -> Any:
    return await s.db.infra.get_host_by_uuid(uuid)


ZONE = Entity("Zone", _zone, _zone_visible)
POD = Entity("Pod", _pod)
CLUSTER = Entity("Cluster", _cluster)
HOST = Entity("Host", _host)
