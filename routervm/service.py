"""The virtual router appliance's root service and its children, in start order:

1. `writer` — the `SerialWriter` thread that stores the state and the sealed passwords (stopped
   last, so the writes asked for land before the process ends);
   `state` — loads the last persisted state (`StateKeeper.load`), so everything after it serves
   that state at once;
2. `control` — the control API, HTTPS with mutual TLS against cloudd's authority;
3. the data-plane services (DHCP, DNS, metadata, password server), attached with
   `RouterService.add_data_plane`.

Data-plane hook: a data-plane service takes the keeper (`RouterService.keeper`) in its constructor
and calls `keeper.subscribe(callback)` (typically in `startService`); the callback receives a
`routervm.state.Snapshot` at once when a state is held, and again after every apply.  The password
server uses `keeper.passwords` (look it up per request).  Example::

    dhcp = DhcpService(service.keeper, ...)
    dhcp.setName("dhcp")
    service.add_data_plane(dhcp)
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet import endpoints
from twisted.protocols.tls import TLSMemoryBIOFactory

from appliance.files import remove_stale_temporaries
from appliance.tls import TlsMaterial, server_options
from appliance.web import ControlSite
from appliance.writer import SerialWriter
from routervm.config import Config
from routervm.limits import ConnectionLimiter
from routervm.state import Snapshot, StateKeeper
from routervm.web.control import ControlApi

STATE_FILE = "state.json"


class StateService(Service):
    """Loads the keeper's persisted state when started."""

    def __init__(self, keeper: StateKeeper) -> None:
        self.keeper = keeper

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        remove_stale_temporaries(os.path.dirname(self.keeper.path))
        self.keeper.load()
        super().startService()


class RouterService(MultiService):
    def __init__(self, *, reactor: Any, state_dir: str, tls: TlsMaterial, control_listen: str,
                 config: Config, key: bytes) -> None:
        super().__init__()
        self.reactor = reactor
        self.state_dir = os.path.abspath(state_dir)
        self.tls = tls
        self.control_listen = control_listen
        self.config = config
        self.key = key
        self._create_children()

    def _create_children(self) -> None:
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        # 1. the writer thread, then the state, loaded before anything serves it
        self.writer = SerialWriter(self.reactor, name="routervm-writer")
        self.writer.setName("writer")
        self.writer.setServiceParent(self)
        self.keeper = StateKeeper(os.path.join(self.state_dir, STATE_FILE), self.reactor, self.key,
                                  password_ttl=self.config.password_ttl,
                                  default_lease_seconds=self.config.lease_seconds, writer=self.writer)
        state = StateService(self.keeper)
        state.setName("state")
        state.setServiceParent(self)

        # 2. the control API
        site = ControlSite(ControlApi(self.keeper).resource(), max_body=self.config.control_max_body,
                           body_limits={("PUT", "/v1/state"): self.config.control_max_state_body})
        site.displayTracebacks = False
        # Its own budget of connections: guests' floods are counted elsewhere and never reach it.
        self.control_limiter = ConnectionLimiter(self.reactor, total=self.config.control_connections,
                                                 per_source=self.config.control_connections, name="control API")
        control = StreamServerEndpointService(
            endpoints.serverFromString(self.reactor, self.control_listen),
            self.control_limiter.wrap(TLSMemoryBIOFactory(server_options(self.tls), False, site)))
        control.setName("control")
        control.setServiceParent(self)

    def add_data_plane(self, service: IService) -> None:
        """Attach a named data-plane service after the state and the control API (it starts after
        them, and at once when the router is running already)."""
        if not service.name:
            raise ValueError("a data-plane service needs a name (setName) before it is added")
        service.setServiceParent(self)

    def subscribe(self, callback: Any) -> Any:
        """`StateKeeper.subscribe`: `callback(Snapshot)` now (when a state is held) and after every
        apply; returns the unsubscribe function."""
        return self.keeper.subscribe(callback)

    @property
    def snapshot(self) -> Snapshot | None:
        return self.keeper.snapshot
