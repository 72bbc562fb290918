"""The metadata / user-data HTTP service on port 80 of one guest interface (router.md §3).

A request is answered only for the VM owning the (interface of the listener, MAC the neighbour
table holds for the source IP, source IP) triple (DESIGN.md §5, security.md 19–20); an unknown
owner and an unknown path both get ``404``, so a guest cannot tell another VM's data exists.  The
answer itself comes from `MetadataView`, built once per (record, NIC) and kept until the records
change (`MetadataService.update`).

Replies: ``200`` with ``Content-Type: text/plain`` for every value, the manifest and user data
(router.md §3.2: nothing is configured in the reference and no client looks at it), ``404``
``text/plain`` otherwise.  GET and HEAD are served; any other method gets ``405`` with ``Allow:
GET, HEAD``, as Apache answers for a static file.  The wire framing is the lean HTTP/1.1
responder of `routervm.http` (DESIGN.md §6).
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from routervm.http import HTTPOptions, LeanHTTPFactory, OnInterface, Reply
from routervm.metadata.content import MetadataView
from routervm.neighbours import NeighbourTable
from routervm.records import IdentityKey, RecordIndex

__all__ = ["METADATA_HTTP", "MetadataFactory", "MetadataService"]

#: The listener's framing: HTTP/1.1 with keep-alive; the answer depends on no header field, so the
#: handler is given none (the framing fields are still checked).
METADATA_HTTP = HTTPOptions(handler_headers=frozenset())

#: Bound on the fast-path cache; only owners enter it, so it holds about one entry per NIC.
_MAX_SEEN = 65536
_TEXT = ((b"Content-Type", b"text/plain"),)
_NOT_FOUND: Reply = (404, _TEXT, b"404 Not Found\n")
_NOT_ALLOWED: Reply = (405, ((b"Allow", b"GET, HEAD"), *_TEXT), b"405 Method Not Allowed\n")


class MetadataService:
    """Metadata answers for every guest interface of the router, from one `RecordIndex`."""

    def __init__(self, index: RecordIndex, neighbours: NeighbourTable) -> None:
        self.neighbours = neighbours
        self._index = index
        self._views: dict[IdentityKey, MetadataView] = {}
        # (interface, MAC, source IP as received) → view: skips normalising the triple again.
        self._seen: dict[tuple[str, str, str], MetadataView] = {}

    def __repr__(self) -> str:
        return f"<MetadataService {self._index!r} cached_views={len(self._views)}>"

    @property
    def index(self) -> RecordIndex:
        return self._index

    def update(self, index: RecordIndex) -> None:
        """Serve ``index`` from now on; every cached view is dropped."""
        self._index = index
        self._views = {}
        self._seen = {}

    def view_for(self, interface: str, peer_ip: str) -> MetadataView | None:
        """The view of the VM owning (``interface``, the neighbour MAC of ``peer_ip``, ``peer_ip``),
        or ``None`` when nobody owns it."""
        mac = self.neighbours.mac_for(interface, peer_ip)
        if mac is None:
            return None
        seen = self._seen.get((interface, mac, peer_ip))
        if seen is not None:
            return seen
        found = self._index.owner(interface, mac, peer_ip)
        if found is None:
            return None
        record, nic = found
        view = self._views.get(nic.key)
        if view is None or view.record is not record:
            view = self._views[nic.key] = MetadataView(record, nic)
        if len(self._seen) < _MAX_SEEN:
            self._seen[(interface, mac, peer_ip)] = view
        return view

    def respond(self, interface: str, method: str, path: str, peer_ip: str) -> Reply:
        """The answer to ``method path`` from ``peer_ip`` received on ``interface``."""
        if method != "GET" and method != "HEAD":
            return _NOT_ALLOWED
        view = self.view_for(interface, peer_ip)
        if view is None:
            return _NOT_FOUND
        body = view.lookup(path)
        if body is None:
            return _NOT_FOUND
        return (200, _TEXT, body)

    def respond_on(
        self, interface: str, method: str, path: str, headers: dict[str, list[str]], peer_ip: str
    ) -> Reply:
        """`routervm.http.GuestService`: the answer on one guest interface."""
        return self.respond(interface, method, path, peer_ip)


class MetadataFactory(LeanHTTPFactory):
    """The port-80 listener factory for one guest interface."""

    def __init__(
        self,
        service: MetadataService,
        interface: str,
        clock: IReactorTime,
        options: HTTPOptions | None = None,
    ) -> None:
        options = METADATA_HTTP if options is None else options
        super().__init__(OnInterface(service, interface), clock, options)
        self.service = service
        self.interface = interface
