"""TCP listeners tied to one network interface (``SO_BINDTODEVICE``).

The guest-facing HTTP services (metadata on 80, passwords on 8080) listen on 0.0.0.0 of the guest
interface, so they answer on every address the router holds there: the router's guest address, a
gateway or virtual address added beside it, whichever one a guest learnt from DHCP's server
identifier, its default route or ``data-server`` (router.md §2.1: guests that take another of the
router's addresses must not find the port closed).  Sockets tied to different interfaces do not
conflict, so each guest interface can have its own listener on the same port.
"""

from __future__ import annotations

import socket

from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ServerFactory

from routervm.limits import BoundedAcceptPort

__all__ = ["DeviceTCPPort", "SO_BINDTODEVICE", "listen_tcp_on_device"]

SO_BINDTODEVICE: int = getattr(socket, "SO_BINDTODEVICE", 25)


class DeviceTCPPort(BoundedAcceptPort):
    """A TCP port whose socket is tied to `device` before it binds (and accepts a bounded batch
    of connections at a time, `routervm.limits.BoundedAcceptPort`)."""

    def __init__(self, port: int, factory: ServerFactory, device: str, interface: str = "",
                 reactor: object = None, backlog: int = 50) -> None:
        super().__init__(port, factory, backlog=backlog, interface=interface, reactor=reactor)
        self.device = device

    def createInternetSocket(self) -> socket.socket:  # noqa: N802 (Twisted API)
        skt: socket.socket = super().createInternetSocket()
        skt.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.device.encode())
        return skt


def listen_tcp_on_device(reactor: object, port: int, factory: ServerFactory, device: str,
                         backlog: int = 50) -> IListeningPort:
    """Listen on 0.0.0.0:`port` of `device` only."""
    listening = DeviceTCPPort(port, factory, device, interface="0.0.0.0", reactor=reactor, backlog=backlog)
    listening.startListening()
    return listening
