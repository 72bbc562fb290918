"""The virtual router appliance's root service. It starts with its control listener only; the
data-plane services attach here as they are built."""

from __future__ import annotations

import json

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.web.resource import Resource
from twisted.web.server import Request, Site


class HealthResource(Resource):
    isLeaf = True

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def render_GET(self, request: Request) -> bytes:  # noqa: N802 (Twisted API)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({"service": self.service_name, "status": "ok"}).encode()


def control_site(service_name: str) -> Site:
    root = Resource()
    root.putChild(b"health", HealthResource(service_name))
    return Site(root)


class RouterService(MultiService):
    def __init__(self, control_listen: str) -> None:
        super().__init__()
        control = strports.service(control_listen, control_site("routervm"))
        control.setName("control")
        control.setServiceParent(self)
