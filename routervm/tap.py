"""`twistd routervm`: options and the composition root of the virtual router appliance."""

from __future__ import annotations

from twisted.application.service import IService
from twisted.python import usage


class Options(usage.Options):
    optParameters = [
        ["control-listen", None, "tcp:3922:interface=127.0.0.1", "Endpoint of the control API."],
    ]


def makeService(options: Options) -> IService:  # noqa: N802 (Twisted API)
    from routervm.service import RouterService

    return RouterService(options["control-listen"])
