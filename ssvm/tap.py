"""`twistd ssvm`: options and the composition root of the secondary-storage appliance."""

from __future__ import annotations

from twisted.application.service import IService
from twisted.python import usage


class Options(usage.Options):
    optParameters = [
        ["control-listen", None, "tcp:3923:interface=127.0.0.1", "Endpoint of the control API."],
    ]


def makeService(options: Options) -> IService:  # noqa: N802 (Twisted API)
    from ssvm.service import StorageService

    return StorageService(options["control-listen"])
