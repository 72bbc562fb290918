"""Helpers for the security, tenancy and bad-input tests of the query API.

* `v3_params` / `v1_params`: signed parameter maps for any user's keys (the Cloud harness signs
  v1 with the admin's keys only);
* `Tenants`: two domains A and B, a sub-domain A/sub, a domain admin and a user in each, a domain
  admin of ROOT and a second root admin, every user with API keys;
* `snapshot`: every row of every table, to prove a refused request changed nothing;
* `login` / `session_headers`: a login session as a browser or cloudmonkey would hold it;
* `raw_http`: bytes through a real `twisted.web` Site (HTTP parsing, methods, raw escapes), on the
  harness's fake clock so no timer reaches the global reactor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from cloudd.service import api_site
from cloudd.util.passwords import hash_password
from cloudd.web.signing import sign
from tests.util.cloud import Cloud, Response


def iso(seconds: float) -> str:
    """An `expires` value as the `cs` client writes it."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def v1_params(command: str, key: str, secret: str, **params: Any) -> dict[str, str]:
    p = {"command": command, "response": "json", "apiKey": key}
    p.update({k: str(v) for k, v in params.items()})
    p["signature"] = sign(p, secret)
    return p


def v3_params(cloud: Cloud, command: str, key: str | None = None, secret: str | None = None,
              expires: str | None = None, ttl: float = 600, **params: Any) -> dict[str, str]:
    """A signatureVersion=3 request expiring `ttl` seconds from the fake clock's now."""
    p = {"command": command, "response": "json", "apiKey": key or cloud.admin.apikey, "signatureVersion": "3",
         "expires": expires if expires is not None else iso(cloud.reactor.seconds() + ttl)}
    p.update({k: str(v) for k, v in params.items()})
    p["signature"] = sign(p, secret or cloud.admin.secretkey)
    return p


def fast_hashing(cloud: Cloud, iterations: int = 1000) -> None:
    """Hash new passwords with few PBKDF2 rounds, so that tests creating many users stay fast.

    Checking a password reads the rounds from the stored hash, so logins work unchanged.
    """
    from twisted.internet.defer import succeed

    def blocking(fn: Any, *args: Any) -> Any:
        if fn is hash_password:
            return succeed(hash_password(*args, iterations=iterations))
        return succeed(fn(*args))

    cloud.api.blocking = blocking


def set_config(cloud: Cloud, name: str, value: str) -> None:
    r = cloud.signed("updateConfiguration", name=name, value=value)
    assert r.status == 200, r.body


# --- sessions -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Session:
    session_id: str
    key: str

    def cookie(self, with_key: bool = True) -> str:
        return f"JSESSIONID={self.session_id}; sessionkey={self.key}" if with_key else \
            f"JSESSIONID={self.session_id}"


def login(cloud: Cloud, username: str, password: str, client: str = "127.0.0.1", **extra: str) -> Response:
    body = {"command": "login", "username": username, "password": password, "response": "json", **extra}
    return cloud.request({}, "POST", body=body, client=client)


def session_of(response: Response) -> Session:
    cookies = response.headers.get("set-cookie", "")
    sid = re.search(r"JSESSIONID=([^;]+)", cookies)
    key = re.search(r"sessionkey=([^;]+)", cookies)
    assert sid is not None and key is not None, cookies
    return Session(sid.group(1), key.group(1))


def session_call(cloud: Cloud, session: Session, command: str, *, key: str | None = None,
                 headers: dict[str, str] | None = None, **params: Any) -> Response:
    """A session call as cloudmonkey makes it: both cookies, plus the key as a parameter."""
    p = {"command": command, "response": "json", "sessionkey": key if key is not None else session.key}
    p.update({k: str(v) for k, v in params.items()})
    return cloud.request(p, headers={"Cookie": session.cookie(), **(headers or {})})


# --- stored state ---------------------------------------------------------------------------------

def snapshot(cloud: Cloud) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (sorted), for before/after comparisons."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with cloud.db.engine.connect() as conn:
        for name in sorted(sa.inspect(conn).get_table_names()):
            rows = conn.execute(sa.text(f"SELECT * FROM {name}")).all()
            out[name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def table_text(cloud: Cloud, table: str) -> str:
    """Every value of a table as one string, for substring searches."""
    with cloud.db.engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()
    return "\n".join(repr(tuple(r)) for r in rows)


# --- tenants --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Party:
    """One user with its account, domain and API keys."""

    label: str
    username: str
    password: str
    user_id: str
    account_id: str
    account: str
    domain_id: str
    apikey: str
    secretkey: str


class Tenants:
    """Domains A, B and A/sub with a domain admin and a user each; a ROOT domain admin; a second
    root admin. Party labels: a_admin, a_user, a_user2 (same account as a_user), sub_admin,
    sub_user, b_admin, b_user, root_dadmin, root2."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        fast_hashing(cloud)
        self.root_id = self._ok(cloud.signed("listDomains"))["domain"][0]["id"]
        self.a = self._ok(cloud.signed("createDomain", name="tenant-a"))["domain"]["id"]
        self.b = self._ok(cloud.signed("createDomain", name="tenant-b"))["domain"]["id"]
        self.sub = self._ok(cloud.signed("createDomain", name="sub", parentdomainid=self.a))["domain"]["id"]
        self.parties: dict[str, Party] = {}
        for label, domain, account_type in [
            ("a_admin", self.a, 2), ("a_user", self.a, 0), ("sub_admin", self.sub, 2), ("sub_user", self.sub, 0),
            ("b_admin", self.b, 2), ("b_user", self.b, 0), ("root_dadmin", self.root_id, 2),
            ("root2", self.root_id, 1),
        ]:
            self._create(label, domain, account_type)
        user = self.parties["a_user"]
        created = self._ok(cloud.signed("createUser", account=user.account, domainid=self.a, username="a_user2",
                                        password="pw-a_user2", firstname="f", lastname="l", email="e@x"))
        self._keys("a_user2", created["user"], "pw-a_user2")

    @staticmethod
    def _ok(r: Response) -> Any:
        assert r.status == 200, r.body
        return r.inner()

    def _create(self, label: str, domain: str, account_type: int) -> None:
        password = f"pw-{label}"
        acc = self._ok(self.cloud.signed("createAccount", username=label, password=password, firstname="f",
                                         lastname="l", email="e@x", accounttype=account_type, domainid=domain,
                                         account=f"acct-{label}"))["account"]
        self._keys(label, acc["user"][0], password)

    def _keys(self, label: str, user: dict[str, Any], password: str) -> None:
        keys = self._ok(self.cloud.signed("registerUserKeys", id=user["id"]))["userkeys"]
        self.parties[label] = Party(label, user["username"], password, user["id"], user["accountid"],
                                    user["account"], user["domainid"], keys["apikey"], keys["secretkey"])

    def __getitem__(self, label: str) -> Party:
        return self.parties[label]

    def call(self, label: str, command: str, **params: Any) -> Response:
        """A v1-signed GET as party `label`."""
        p = self.parties[label]
        return self.cloud.request(v1_params(command, p.apikey, p.secretkey, **params))


# --- raw HTTP through a real Site ------------------------------------------------------------------

@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_http(cloud: Cloud, data: bytes, peer: str = "127.0.0.1") -> RawResponse:
    """Feed one raw HTTP/1.1 request to the production Site around the harness's resource."""
    site = api_site(cloud.resource)
    site.reactor = cloud.reactor
    proto = site.buildProtocol(IPv4Address("TCP", peer, 40000))
    assert proto is not None
    transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000),
                                hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    proto.makeConnection(transport)
    proto.dataReceived(data)
    out = transport.value()
    proto.connectionLost(Failure(ConnectionDone()))
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines and lines[0].startswith(b"HTTP/1.1 "), out[:200]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b": ")
        headers[name.decode().lower()] = value.decode("utf-8", "replace")
    return RawResponse(int(lines[0].split()[1]), headers, body)


def http_request(method: str, target: bytes, body: bytes = b"", content_type: str | None = None) -> bytes:
    head = [b"%s %s HTTP/1.1" % (method.encode(), target), b"Host: localhost:8080", b"Connection: close"]
    if content_type is not None:
        head.append(b"Content-Type: " + content_type.encode())
    if body or method in ("POST", "PUT"):
        head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body
