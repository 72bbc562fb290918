"""cloudd's client of the virtual router appliance: full state, single VMs, passwords and rules.

Every update answers `{"generation": N, "applied"/"deleted": bool}`; a stale generation raises
`ControlError` with status 409, an unknown VM 404, bad input 400.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from cloudd.agents.control import ControlClient


class RouterClient(ControlClient):
    async def health(self) -> Any:
        return await self.call("GET", "/health")

    async def get_state(self) -> Any:
        """The state held: generation, network, rules and the VMs without user data or passwords."""
        return await self.call("GET", "/v1/state")

    async def generation(self) -> int:
        return int((await self.health())["generation"])

    async def put_state(self, state: dict[str, Any]) -> Any:
        """Full sync: `state` is the whole `RouterState` JSON, generation included."""
        return await self.call("PUT", "/v1/state", state)

    async def put_vm(self, record: dict[str, Any], generation: int) -> Any:
        """Add or replace one VM's record, giving the router generation `generation`."""
        return await self.call("PUT", f"/v1/vms/{quote(record['uuid'], safe='')}",
                               {"generation": generation, "vm": record})

    async def delete_vm(self, uuid: str, generation: int) -> Any:
        return await self.call("DELETE", f"/v1/vms/{quote(uuid, safe='')}?generation={int(generation)}")

    async def set_password(self, uuid: str, password: str, generation: int | None = None) -> Any:
        body: dict[str, Any] = {"password": password}
        if generation is not None:
            body["generation"] = generation
        return await self.call("PUT", f"/v1/vms/{quote(uuid, safe='')}/password", body)

    async def put_rules(self, rules: dict[str, Any] | None, generation: int) -> Any:
        """Replace the public addresses and NAT/firewall rules (`rules` in the `RouterRules` JSON
        shape; `guest_network` may be left out), giving generation `generation`."""
        return await self.call("PUT", "/v1/rules", {"generation": generation, "rules": rules})
