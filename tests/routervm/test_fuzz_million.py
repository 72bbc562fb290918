"""security.md requirement 21 at its full size: a million inputs each to the DHCP and the DNS
server's datagram protocols (half random bytes of random length, half valid packets with random
bytes changed, cut or extended), none of which may raise, and a valid request answered after
each batch of ten thousand.

The inputs come from a seeded generator (``ROUTERVM_FUZZ_SEED`` overrides the default seed), so a
failure names the seed and the input's number and is reproduced by running the test again.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from routervm.dhcp import packet as p
from routervm.dhcp.reservations import Reservation, ReservationTable
from routervm.dhcp.server import DhcpServerProtocol
from tests.routervm.test_dhcp_server import (
    CLIENT,
    DISCOVER,
    IP,
    MAC,
    NETWORK,
    REQUEST,
    FakeDatagramTransport,
)
from tests.routervm.test_dns_server import VALID as VALID_QUERIES
from tests.routervm.test_dns_support import offline_server, parse, query_bytes, udp_answer

INPUTS = 1_000_000
BATCH = 10_000
SEED = int(os.environ.get("ROUTERVM_FUZZ_SEED", "20261122"))


def inputs(rng: random.Random, valid: Sequence[bytes]) -> Callable[[], bytes]:
    """A generator function of fuzz inputs drawn from `rng` (about 1 MiB of random bytes sliced)."""
    pool = rng.randbytes(1 << 20)

    def one() -> bytes:
        if rng.random() < 0.5:
            length = rng.randrange(0, 700)
            offset = rng.randrange(0, len(pool) - length)
            return pool[offset : offset + length]
        data = bytearray(rng.choice(valid))
        for _ in range(rng.randrange(1, 9)):
            kind = rng.random()
            if kind < 0.7 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif kind < 0.85:
                del data[rng.randrange(len(data) + 1) :]
            else:
                data += pool[: rng.randrange(1, 64)]
        return bytes(data)

    return one


class MillionInputTests(SynchronousTestCase):
    def test_dhcp(self) -> None:
        proto = DhcpServerProtocol("eth1", ReservationTable([Reservation(MAC, IP, "vm1")]), NETWORK, Clock())
        transport = FakeDatagramTransport()
        proto.transport = transport  # type: ignore[assignment]
        rng = random.Random(SEED)
        draw = inputs(rng, [DISCOVER, REQUEST])
        for number in range(INPUTS):
            data = draw()
            try:
                proto.datagramReceived(data, CLIENT)
            except Exception as exc:
                self.fail(f"seed {SEED}, input {number} ({data.hex()}) raised {exc!r}")
            if number % BATCH == BATCH - 1:
                transport.written.clear()
                proto.datagramReceived(DISCOVER, CLIENT)
                [(reply, _)] = transport.written
                self.assertEqual(p.parse(reply).yiaddr, IP, f"seed {SEED}, after input {number}")
                transport.written.clear()

    def test_dns(self) -> None:
        srv, transport, _ = offline_server(upstreams=(("192.0.2.53", 53),), allowed=False)
        rng = random.Random(SEED + 1)
        draw = inputs(rng, VALID_QUERIES)
        known = query_bytes("web1.cloud.internal", id=4242)
        for number in range(INPUTS):
            data = draw()
            try:
                srv.protocol.datagramReceived(data, ("10.1.1.50", 1))
            except Exception as exc:
                self.fail(f"seed {SEED + 1}, input {number} ({data.hex()}) raised {exc!r}")
            if number % BATCH == BATCH - 1:
                transport.pop()
                [out] = udp_answer(srv, transport, known)
                self.assertEqual(parse(out).answers[0].payload.dottedQuad(), "10.1.1.50",
                                 f"seed {SEED + 1}, after input {number}")
