"""`twistd routervm`: options and the composition root of the virtual router appliance."""

from __future__ import annotations

import os

from twisted.application.service import IService
from twisted.python import usage

from appliance.logretention import keep_rotated_logs
from appliance.options import load_settings, load_tls
from routervm.config import Config, ConfigError, load_config


class Options(usage.Options):
    optParameters = [
        ["basedir", "d", "routervm-data", "Base directory: the persisted state and its key."],
        ["tls-dir", None, None, "Folder with key.pem, cert.pem and ca.pem issued by cloudd "
                                "(default: <basedir>/tls)."],
        ["control-listen", None, "tcp:3922:interface=127.0.0.1", "Endpoint of the control API (TLS is added)."],
        ["config", "c", None, "Settings file (TOML)."],
    ]
    optFlags = [
        ["no-data-plane", None, "Serve the control API only, not the guest network (DHCP, DNS, metadata, "
                                "the password server and the NAT rules)."],
    ]

    def postOptions(self) -> None:  # noqa: N802 (Twisted API)
        self["basedir"] = os.path.abspath(self["basedir"])
        self["tls-dir"] = os.path.abspath(self["tls-dir"] or os.path.join(self["basedir"], "tls"))
        self["tls"] = load_tls(self["tls-dir"])
        self["settings"] = load_settings(self["config"], load_config, Config(), ConfigError)


def makeService(options: Options) -> IService:  # noqa: N802 (Twisted API)
    from twisted.internet import reactor

    from routervm.memory import fix_mmap_threshold
    from routervm.service import RouterService
    from routervm.state import KEY_FILE, load_or_create_key

    config: Config = options["settings"]
    # Large blocks freed after a full sync go back to the system (routervm.memory).
    fix_mmap_threshold()
    state_dir = os.path.join(options["basedir"], "state")
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    key = load_or_create_key(os.path.join(state_dir, KEY_FILE))
    service = RouterService(reactor=reactor, state_dir=state_dir, tls=options["tls"],
                            control_listen=options["control-listen"], config=config, key=key)
    keep_rotated_logs(service, options, config.log_retention, reactor)
    if not options["no-data-plane"]:
        from routervm.dataplane import DataPlane
        from routervm.limits import ConnectionLimiter, guest_connection_budget, raise_nofile_limit
        from routervm.nat.addresses import AddressApplier
        from routervm.nat.apply import RuleApplier
        from routervm.neighbours import ProcArpNeighbours
        from routervm.process import RunProcess

        # 3. the data plane: DHCP, DNS, metadata, passwords and NAT rules on the guest network
        runner = RunProcess(reactor)
        # Guests' TCP connections may take every descriptor but the control API's and a reserve.
        nofile = raise_nofile_limit()
        total = config.max_connections or guest_connection_budget(nofile, config.control_connections)
        limiter = ConnectionLimiter(reactor, total=total, per_source=config.connections_per_source)
        data_plane = DataPlane(service.keeper, reactor, applier=RuleApplier(runner),
                               addresses=AddressApplier(runner), neighbours=ProcArpNeighbours(clock=reactor),
                               limiter=limiter)
        data_plane.setName("data-plane")
        service.add_data_plane(data_plane)
    return service
