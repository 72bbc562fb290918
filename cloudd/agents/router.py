"""cloudd's client of the virtual router appliance: full state, single VMs, passwords and rules.

Every method takes and returns the control message models (`appliance.messages.router`).  Every
update answers the generation held and whether it changed anything (`UpdateAnswer`,
`DeleteAnswer`, `PasswordAnswer`); a stale generation raises `ControlError` with status 409, an
unknown VM 404, bad input 400, and an answer the model refuses `ControlError(status, "bad_answer",
...)`.  A body is checked with the model the router reads it with before it is sent (a
`RouterState` checks itself when it is built).
"""

from __future__ import annotations

from urllib.parse import quote

from appliance.messages.common import Health
from appliance.messages.records import VmRecord
from appliance.messages.router import (
    DeleteAnswer,
    PasswordAnswer,
    PasswordUpdate,
    RouterState,
    RulesUpdate,
    StateView,
    UpdateAnswer,
    VmDeletion,
    VmUpdate,
)
from appliance.messages.rules import RouterRules
from cloudd.agents.control import ControlClient, checked, read_answer


def _vm(uuid: str) -> str:
    return f"/v1/vms/{quote(uuid, safe='')}"


class RouterClient(ControlClient):
    async def health(self) -> Health:
        return await self.exchange("GET", "/health", None, Health)

    async def get_state(self) -> StateView:
        """The state held: generation, network, rules and the VMs without user data or passwords."""
        return await self.exchange("GET", "/v1/state", None, StateView)

    async def generation(self) -> int:
        return (await self.health()).generation or 0

    async def put_state(self, state: RouterState) -> UpdateAnswer:
        """Full sync: the whole state, generation included."""
        # Built, a RouterState has passed every check the router makes: no second reading.
        status, value = await self._call("PUT", "/v1/state", state.to_json())
        return read_answer(UpdateAnswer, status, value)

    async def put_vm(self, record: VmRecord, generation: int) -> UpdateAnswer:
        """Add or replace one VM's record, giving the router generation `generation`."""
        return await self.exchange("PUT", _vm(record.uuid), VmUpdate(generation=generation, vm=record),
                                   UpdateAnswer)

    async def delete_vm(self, uuid: str, generation: int) -> DeleteAnswer:
        deletion = VmDeletion(generation=generation)
        checked(deletion)
        return await self.exchange("DELETE", f"{_vm(uuid)}?generation={deletion.generation}", None,
                                   DeleteAnswer)

    async def set_password(self, uuid: str, password: str, generation: int | None = None) -> PasswordAnswer:
        return await self.exchange("PUT", f"{_vm(uuid)}/password",
                                   PasswordUpdate(password=password, generation=generation), PasswordAnswer)

    async def put_rules(self, rules: RouterRules | None, generation: int) -> UpdateAnswer:
        """Replace the public addresses and NAT/firewall rules (None: none), giving generation
        `generation`."""
        return await self.exchange("PUT", "/v1/rules", RulesUpdate(generation=generation, rules=rules),
                                   UpdateAnswer)
