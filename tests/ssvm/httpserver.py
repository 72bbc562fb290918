"""A small, scriptable HTTP file server for download tests, plus a static resolver and a
connection guard.

Inside trial's reactor::

    server = FileServer(reactor)
    port = server.start()                       # 127.0.0.1, ephemeral port
    url = server.add("/a.qcow2", data, rate=20 * 2**20, drop_after=1000)
    server.redirect("/r", "http://127.0.0.2:1/x")
    ...
    server.requests                             # every request seen, with its Range header
    await server.stop()

Each served path can: serve bytes with or without `Content-Length` (chunked), honour or ignore
`Range`/`If-Range` (strong ETag and Last-Modified), throttle (`rate` bytes per second, sent in
ticks with `callLater`), abort the connection after N body bytes (the first `drop_times`
requests), answer ranges with at most `range_cap` bytes, answer a fixed status, or redirect.

As a process (for a restart-after-kill test; it prints the port, then serves until killed)::

    python tests/ssvm/httpserver.py --dir D --port 0 --rate BYTES_PER_S

serves the files of D (read from disk as they are sent), with Range support.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IHostnameResolver, IHostResolution, IResolutionReceiver
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

TICK = 0.02  # seconds between throttled writes
PULL_CHUNK = 256 * 1024


class Body:
    """Bytes to serve, read by slices."""

    size: int

    def read(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


class BytesBody(Body):
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self._data[offset:offset + length])


class FileBody(Body):
    def __init__(self, path: str) -> None:
        self._handle = open(path, "rb")  # noqa: SIM115 (closed by close())
        self.size = os.fstat(self._handle.fileno()).st_size

    def read(self, offset: int, length: int) -> bytes:
        self._handle.seek(offset)
        return self._handle.read(length)

    def close(self) -> None:
        self._handle.close()


@dataclass
class Entry:
    body: Callable[[], Body]
    size: int
    content_length: bool = True
    etag: str | None = None
    last_modified: str | None = None
    honour_range: bool = True
    rate: int | None = None
    drop_after: int | None = None
    drop_times: int = 1
    range_cap: int | None = None
    status: int = 200
    location: str | None = None
    served: int = 0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class _Sender:
    """Writes one body slice to a request: throttled by ticks, or as a pull producer."""

    def __init__(self, reactor: Any, request: Request, body: Body, start: int, end: int, rate: int | None,
                 drop_at: int | None) -> None:
        self._reactor = reactor
        self._request = request
        self._body = body
        self._offset = start
        self._end = end
        self._rate = rate
        self._drop_at = drop_at
        self._call: Any = None
        self._done = False
        request.notifyFinish().addBoth(self._finished)

    def begin(self) -> None:
        if self._rate is None:
            self._request.registerProducer(self, False)
        else:
            self._tick()

    def _next(self, budget: int) -> None:
        limit = self._end
        if self._drop_at is not None:
            limit = min(limit, self._drop_at)
        count = min(budget, limit - self._offset)
        if count > 0:
            self._request.write(self._body.read(self._offset, count))
            self._offset += count
        if self._drop_at is not None and self._offset >= self._drop_at:
            self._stop()
            if self._request.channel is not None:
                self._request.channel.loseConnection()  # what was written is still delivered
            return
        if self._offset >= self._end:
            self._stop()
            self._request.finish()

    def _tick(self) -> None:
        self._call = None
        assert self._rate is not None
        self._next(max(1, int(self._rate * TICK)))
        if not self._done:
            self._call = self._reactor.callLater(TICK, self._tick)

    def resumeProducing(self) -> None:  # noqa: N802
        if not self._done:
            self._next(PULL_CHUNK)

    def pauseProducing(self) -> None:  # noqa: N802
        pass

    def stopProducing(self) -> None:  # noqa: N802
        self._stop()

    def _stop(self) -> None:
        if self._done:
            return
        self._done = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._rate is None:
            self._request.unregisterProducer()
        self._body.close()

    def _finished(self, _: object) -> None:
        self._stop()


class _Handler(Resource):
    isLeaf = True

    def __init__(self, server: FileServer) -> None:
        super().__init__()
        self._server = server

    def render_GET(self, request: Request) -> bytes | int:  # noqa: N802
        return self._server.render(request)

    render_HEAD = render_GET  # noqa: N815


class _TrackingSite(Site):
    def __init__(self, resource: Resource, connections: set[Any]) -> None:
        super().__init__(resource)
        self._connections = connections

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802
        protocol = super().buildProtocol(addr)
        assert protocol is not None
        connections = self._connections
        original = protocol.connectionLost

        def lost(reason: Failure) -> None:
            connections.discard(protocol)
            original(reason)

        protocol.connectionLost = lost
        connections.add(protocol)
        return protocol


class FileServer:
    def __init__(self, reactor: Any, *, directory: str | None = None, rate: int | None = None,
                 log_path: str | None = None) -> None:
        self.reactor = reactor
        self.log_path = log_path
        self.directory = directory
        self.default_rate = rate
        self.entries: dict[str, Entry] = {}
        self.requests: list[Seen] = []
        self._connections: set[Any] = set()
        self._port: Any = None
        self.host = "127.0.0.1"
        self.port = 0

    # -- configuration -----------------------------------------------------------------------------

    def add(self, path: str, data: bytes, *, content_length: bool = True, etag: bool = True,
            last_modified: bool = True, honour_range: bool = True, rate: int | None = None,
            drop_after: int | None = None, drop_times: int = 1, range_cap: int | None = None,
            status: int = 200) -> str:
        digest = hashlib.sha256(data).hexdigest()[:16]
        self.entries[path] = Entry(
            body=lambda: BytesBody(data), size=len(data), content_length=content_length,
            etag=f'"{digest}"' if etag else None,
            last_modified="Tue, 01 Apr 2025 10:00:00 GMT" if last_modified else None,
            honour_range=honour_range, rate=rate if rate is not None else self.default_rate,
            drop_after=drop_after, drop_times=drop_times, range_cap=range_cap, status=status)
        return self.url(path)

    def redirect(self, path: str, location: str, code: int = 302) -> str:
        self.entries[path] = Entry(body=lambda: BytesBody(b""), size=0, status=code, location=location)
        return self.url(path)

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def ranges(self, path: str) -> list[str | None]:
        return [seen.range for seen in self.requests if seen.path == path]

    # -- life ------------------------------------------------------------------------------------------

    def site(self) -> Site:
        return _TrackingSite(_Handler(self), self._connections)

    def start(self, interface: str = "127.0.0.1", port: int = 0) -> int:
        self._port = self.reactor.listenTCP(port, self.site(), interface=interface)
        self.host = interface
        self.port = self._port.getHost().port
        return self.port

    def stop(self) -> Deferred[Any]:
        for connection in list(self._connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abortConnection()
        if self._port is None:
            return succeed(None)
        port, self._port = self._port, None
        return Deferred.fromCoroutine(self._stop(port))

    async def _stop(self, port: Any) -> None:
        await port.stopListening()
        while self._connections:  # wait for the aborted connections to be gone
            waiter: Deferred[None] = Deferred()
            self.reactor.callLater(0.01, waiter.callback, None)
            await waiter

    # -- serving ---------------------------------------------------------------------------------------

    def _entry_for(self, path: str) -> Entry | None:
        entry = self.entries.get(path)
        if entry is not None or self.directory is None:
            return entry
        name = path.lstrip("/")
        if not name or any(part in ("", ".", "..") for part in name.split("/")):
            return None
        full = os.path.join(self.directory, *name.split("/"))
        if not os.path.isfile(full):
            return None
        info = os.stat(full)
        return Entry(body=lambda: FileBody(full), size=info.st_size, etag=f'"{info.st_size:x}-{info.st_mtime_ns:x}"',
                     last_modified=email.utils.formatdate(info.st_mtime, usegmt=True), rate=self.default_rate)

    def render(self, request: Request) -> bytes | int:
        path = request.path.decode("latin-1")
        headers = {key.decode("latin-1").lower(): values[-1].decode("latin-1")
                   for key, values in request.requestHeaders.getAllRawHeaders()}
        seen = Seen(request.method.decode("latin-1"), path, headers)
        self.requests.append(seen)
        if self.log_path is not None:
            with open(self.log_path, "a") as log:
                log.write(json.dumps({"method": seen.method, "path": path, "range": seen.range}) + "\n")
        entry = self._entry_for(path)
        if entry is None:
            seen.status = 404
            request.setResponseCode(404)
            return b"not found\n"
        entry.served += 1
        if entry.location is not None:
            seen.status = entry.status
            request.setResponseCode(entry.status)
            request.setHeader(b"Location", entry.location.encode("latin-1"))
            return b"moved\n"
        if entry.status != 200:
            seen.status = entry.status
            request.setResponseCode(entry.status)
            return b"refused\n"
        start, end = 0, entry.size
        request.setHeader(b"Accept-Ranges", b"bytes")
        if entry.etag:
            request.setHeader(b"ETag", entry.etag.encode())
        if entry.last_modified:
            request.setHeader(b"Last-Modified", entry.last_modified.encode())
        wanted = _RANGE.fullmatch(headers.get("range", "").strip())
        if_range = headers.get("if-range")
        if wanted is not None and entry.honour_range and (if_range is None or if_range in (entry.etag,
                                                                                          entry.last_modified)):
            start = int(wanted.group(1))
            end = min(entry.size, int(wanted.group(2)) + 1) if wanted.group(2) else entry.size
            if entry.range_cap is not None:
                end = min(end, start + entry.range_cap)
            if start >= entry.size or end <= start:
                seen.status = 416
                request.setResponseCode(416)
                request.setHeader(b"Content-Range", f"bytes */{entry.size}".encode())
                return b""
            request.setResponseCode(206)
            request.setHeader(b"Content-Range", f"bytes {start}-{end - 1}/{entry.size}".encode())
            seen.status = 206
        else:
            seen.status = 200
        if entry.content_length:
            request.setHeader(b"Content-Length", str(end - start).encode())
        if request.method == b"HEAD":
            return b""
        drop_at = None
        if entry.drop_after is not None and entry.served <= entry.drop_times:
            drop_at = max(start, entry.drop_after)
        _Sender(self.reactor, request, entry.body(), start, end, entry.rate, drop_at).begin()
        return NOT_DONE_YET


# -- a static resolver and a connection guard --------------------------------------------------------


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IHostnameResolver)
class StaticResolver:
    """Resolves from a fixed table (names not in it resolve to nothing); records every question."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = {name.lower(): list(addresses) for name, addresses in table.items()}
        self.asked: list[str] = []

    def resolveHostName(self, resolutionReceiver: IResolutionReceiver, hostName: str,  # noqa: N802, N803
                        portNumber: int = 0, addressTypes: Any = None,  # noqa: N803
                        transportSemantics: str = "TCP") -> IHostResolution:  # noqa: N803
        self.asked.append(hostName)
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        for address in self.table.get(hostName.lower(), []):
            kind = IPv6Address if ":" in address else IPv4Address
            resolutionReceiver.addressResolved(kind("TCP", address, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolution


class LoopbackOnlyReactor:
    """Wraps a reactor; refuses (and records) any `connectTCP` to an address other than the allowed
    ones, so a test can prove that a refused address was never contacted — and never is."""

    def __init__(self, reactor: Any, allowed: Sequence[str] = ("127.0.0.1",)) -> None:
        self._reactor = reactor
        self._allowed = set(allowed)
        self.connections: list[str] = []
        self.forbidden: list[str] = []

    def connectTCP(self, host: str, port: int, factory: Any, timeout: float = 30,  # noqa: N802
                   bindAddress: Any = None) -> Any:  # noqa: N803
        if host not in self._allowed:
            self.forbidden.append(host)
            raise AssertionError(f"a connection to {host} was attempted")
        self.connections.append(host)
        return self._reactor.connectTCP(host, port, factory, timeout, bindAddress)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="directory whose files are served")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--rate", type=int, default=0, help="bytes per second per response (0: unthrottled)")
    parser.add_argument("--log", default=None, help="append one JSON line per request (method, path, Range)")
    options = parser.parse_args(argv)
    from twisted.internet import reactor

    server = FileServer(reactor, directory=options.dir, rate=options.rate or None, log_path=options.log)
    port = server.start(options.interface, options.port)
    print(port, flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
