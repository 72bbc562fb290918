"""Benchmark of the infrastructure listings: listTemplates page 500 of 20,000 templates and listHosts of
1,000 hosts, each beside the raw SQL query of the same page (the floor), measured in the same run.

Run from a clone (after ``scripts/deps --test``)::

    .venv/bin/python bench/infra.py [--runs 5] [--templates 20000] [--hosts 1000] [--profile]

It starts the real daemon (``twistd -n cloudd``, without the simulated zone) on a temporary base
directory (SQLite), stops it once it has made its schema and admin, sets ``ping.interval`` (and the
other periodic checks) to a day so that no background round runs while measuring, starts it again,
and writes into its database, directly and in one transaction each (SQLite's WAL lets the running
daemon go on): a zone, a pod, four clusters, ``--hosts`` Routing hosts (some tagged) and
``--templates`` public, ready QCOW2 templates, each with its downloaded copy in the zone (the copies'
image store row is marked removed, so no ssvm is started for it: the bench measures listing, not
downloads). The daemon sees none of them in its one host check round, which ran before they existed.
When ``CLOUDD_TEST_DB_URL`` (or ``--db-url``) names a MariaDB/MySQL database, the whole measurement is
repeated on a second daemon using it (its tables are dropped first).

Subjects, each measured in every round (at least five) as ``--requests`` sequential requests:

* ``listTemplates templatefilter=executable page=500 pagesize=20`` as the admin, signed, over HTTP on
  one keep-alive connection; the daemon's CPU per request from ``/proc/<pid>/stat``;
* the raw SQL of the same page, hand-written (the count, the page's copy ids in the component's
  order, the page's rows with the zone, owner and OS type joined), run with SQLAlchemy Core on the
  same database in this process, rows fetched as tuples: the floor;
* the images component's own query (``ImagesComponent.search_templates`` on a connection in this
  process, rows mapped to its frozen dataclasses), to tell the query from the rest of the server;
* the same three for ``listHosts pagesize=-1`` (all hosts; ``InfraComponent.search_hosts``).

The floor and the component run in this process: their "server CPU" is this process's. On MariaDB
neither figure counts the database server's own CPU (the time per request does include it). The rounds
alternate which subject goes first. For each subject it prints (bench/measure.py) the rate (requests
per second, i.e. the inverse of the latency of sequential requests) and the CPU per request, each as
the median with the min-max spread, and the ratios to the floor. The target (the issue): each HTTP
listing within 3x of its raw query, by time per request.

``--profile`` then profiles ``--requests`` listTemplates and listHosts calls with cProfile, in this
process, through the real command layer (tests/util/cloud.py: no sockets) on a copy of the same data,
and prints where the time goes (top functions by cumulative and by own time).

Exit status: 0 whether or not the targets are met (a bench, not a test); non-zero only when the set-up
fails (a server does not start, an answer is wrong, the seeding fails). Every process it starts is
stopped by its PID on the way out, also on errors.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import inspect
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import Connection, Engine  # noqa: E402

from bench.api import SetupError, pinned, signed_url  # noqa: E402
from bench.measure import MIN_ROUNDS, Sample, Series, ServerCpu, rounds_note  # noqa: E402
from cloudd.db import model  # noqa: E402
from cloudd.db.base import Page  # noqa: E402
from cloudd.db.enginestrategy import create_engine  # noqa: E402
from tests.util.daemon import CloudDaemon  # noqa: E402
from tests.util.db import ENV as DB_URL_ENV  # noqa: E402
from tests.util.db import wipe  # noqa: E402

TARGET = 3.0  # HTTP time per request, at most this many times the raw query's
TEMPLATE_PAGE, TEMPLATE_PAGESIZE = 500, 20
# settings that start periodic work over hosts, pools and capacity: a day apart while measuring
QUIET_SETTINGS = {"ping.interval": "86400", "storage.stats.interval": "86400000",
                  "capacity.check.period": "86400000"}
DOWNLOADED = "DOWNLOADED"  # CloudStack's download state of a ready copy


def pause(seconds: float) -> None:
    threading.Event().wait(seconds)


# --- the daemon --------------------------------------------------------------------------------------


def quiet_daemon(basedir: str, db_url: str) -> CloudDaemon:
    """A daemon without the simulated zone, on `db_url` (SQLite in `basedir` when empty)."""
    extra = ["--upgrade-db"] if db_url else []
    kwargs: dict[str, Any] = {}
    if "simulator" in inspect.signature(CloudDaemon).parameters:
        kwargs["simulator"] = False  # tests/util/daemon.py adds --no-simulator
    else:
        from cloudd.tap import Options

        if any(flag[0] == "no-simulator" for flag in Options.optFlags):
            extra.append("--no-simulator")
    return CloudDaemon(basedir, db_url=db_url or None, extra_args=extra, **kwargs)


def write_settings(engine: Engine, values: dict[str, str]) -> None:
    """Store global settings (those this cloudd knows) as updateConfiguration would."""
    from cloudd.settings import BY_NAME

    c = model.configuration
    now = int(time.time())  # noqa: TID251 (a bench's own wall clock)
    with engine.begin() as conn:
        for name, value in values.items():
            if name not in BY_NAME:
                continue
            conn.execute(c.delete().where(c.c.name == name))
            conn.execute(c.insert().values(name=name, value=value, updated=now))


# --- seeding -----------------------------------------------------------------------------------------


@dataclass
class Seeded:
    zone_id: int
    admin_account_id: int
    templates: int
    hosts: int


def _next_id(conn: Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()) + 1


def seed(engine: Engine, templates: int, hosts: int) -> Seeded:
    """A zone with a pod, four clusters, `hosts` hosts and `templates` ready public templates."""
    now = int(time.time())  # noqa: TID251 (a bench's own wall clock for `created`)
    a, d = model.accounts, model.domains
    with engine.begin() as conn:
        admin = conn.execute(sa.select(a.c.id, a.c.domain_id).where(a.c.name == "admin", a.c.removed.is_(None))
                             .order_by(a.c.id)).first()
        if admin is None:
            raise SetupError("the daemon's database has no admin account")
        root_domain = conn.execute(sa.select(d.c.id).where(d.c.parent_id.is_(None))).scalar_one()
        os_type = conn.execute(sa.select(model.guest_os.c.uuid).order_by(model.guest_os.c.id)).scalars().first()

        zone_id = _next_id(conn, model.zones)
        conn.execute(model.zones.insert().values(
            id=zone_id, uuid=str(uuid.uuid4()), name="bench-zone", network_type="Advanced", dns1="192.0.2.53",
            internal_dns1="192.0.2.53", allocation_state="Enabled", created=now))
        pod_id = _next_id(conn, model.pods)
        conn.execute(model.pods.insert().values(
            id=pod_id, uuid=str(uuid.uuid4()), name="bench-pod", zone_id=zone_id, gateway="192.0.2.1",
            netmask="255.255.255.0", start_ip="192.0.2.10", end_ip="192.0.2.250", allocation_state="Enabled",
            created=now))
        first_cluster = _next_id(conn, model.clusters)
        clusters = list(range(first_cluster, first_cluster + 4))
        conn.execute(model.clusters.insert(), [
            {"id": cid, "uuid": str(uuid.uuid4()), "name": f"bench-cluster-{n}", "zone_id": zone_id,
             "pod_id": pod_id, "hypervisor": "Simulator", "cluster_type": "CloudManaged",
             "allocation_state": "Enabled", "managed_state": "Managed", "created": now}
            for n, cid in enumerate(clusters)])

        first_host = _next_id(conn, model.hosts)
        conn.execute(model.hosts.insert(), [
            {"id": first_host + i, "uuid": str(uuid.uuid4()), "name": f"bench-host-{i:04d}", "type": "Routing",
             "zone_id": zone_id, "pod_id": pod_id, "cluster_id": clusters[i % len(clusters)],
             "url": f"test:///bench/host-{i:04d}.xml", "hypervisor": "Simulator", "hypervisor_version": "10.0.0",
             "ip_address": f"10.{i // 250}.{i % 250}.1", "state": "Up", "resource_state": "Enabled",
             "cpus": 8 + 8 * (i % 4), "cpu_speed": 2000 + 100 * (i % 5), "cpu_sockets": 1 + i % 2,
             "memory": (16 + 16 * (i % 4)) * 2**30, "cpu_model": "x86_64", "arch": "x86_64", "version": "bench",
             "last_pinged": now, "state_changed": now, "created": now}
            for i in range(hosts)])
        conn.execute(model.host_tags.insert(), [
            {"host_id": first_host + i, "tag": tag} for i in range(hosts) for tag in ("ssd", "gpu")[: i % 3]])

        # the copies' store: removed, so that the daemon starts no ssvm for it
        store_id = _next_id(conn, model.image_stores)
        conn.execute(model.image_stores.insert().values(
            id=store_id, uuid=str(uuid.uuid4()), name="bench-store", zone_id=zone_id, provider="NFS",
            protocol="nfs", url="nfs://192.0.2.2/export/secondary", path="/nonexistent/bench-store",
            created=now, removed=now))
        first_template = _next_id(conn, model.templates)
        first_copy = _next_id(conn, model.template_zones)
        batch = 2000
        for start in range(0, templates, batch):
            rows, copies = [], []
            for i in range(start, min(templates, start + batch)):
                tid, cid = first_template + i, first_copy + i
                rows.append({
                    "id": tid, "uuid": str(uuid.uuid4()), "name": f"bench-template-{i:05d}",
                    "display_text": f"Bench template {i}", "is_iso": 0, "format": "QCOW2",
                    "hypervisor": "Simulator", "os_type_uuid": os_type, "template_type": "USER",
                    "url": f"http://192.0.2.3/images/{i}.qcow2", "checksum": None, "bits": 64, "public": 1,
                    "featured": int(i % 50 == 0), "extractable": 1, "password_enabled": i % 2,
                    "sshkey_enabled": 0, "dynamically_scalable": 0, "requires_hvm": 1, "bootable": 1,
                    "cross_zones": 0, "direct_download": 0, "deploy_as_is": 0, "template_tag": None,
                    "details": None, "source_template_id": None, "account_id": admin.id,
                    "domain_id": root_domain, "created": now - templates + i, "removed": None})
                copies.append({
                    "id": cid, "template_id": tid, "zone_id": zone_id, "store_id": store_id,
                    "download_id": f"t{tid}-c{cid}", "source_url": f"http://192.0.2.3/images/{i}.qcow2",
                    "state": DOWNLOADED, "percent": 100, "error": None,
                    "install_path": f"template/tmpl/2/{tid}/{i}.qcow2", "size": 2**31 + i,
                    "physical_size": 2**28 + i, "checksum": None, "restarts": 0, "created": now, "updated": now,
                    "removed": None})
            conn.execute(model.templates.insert(), rows)
            conn.execute(model.template_zones.insert(), copies)
    return Seeded(zone_id, int(admin.id), templates, hosts)


# --- the floor: the same page by hand-written SQL ----------------------------------------------------


def raw_templates_page(engine: Engine, account_id: int, offset: int, limit: int) -> list[Any]:
    """listTemplates templatefilter=executable for the admin, one page: the count, the page's copy ids
    (ordered by template id, then zone id, as the component orders them), then the page's rows with
    their zone, owner and OS type. What the component's query computes, written by hand."""
    t, tz, z, a, d, g = (model.templates, model.template_zones, model.zones, model.accounts, model.domains,
                         model.guest_os)
    tp = model.template_permissions
    # (the admin's own executable view lists copies whatever their download state, as CloudStack does)
    where = [t.c.removed.is_(None), tz.c.removed.is_(None), t.c.is_iso == 0,
             sa.or_(t.c.account_id == account_id, t.c.public == 1,
                    t.c.id.in_(sa.select(tp.c.template_id).where(tp.c.account_id == account_id)))]
    base = tz.join(t, tz.c.template_id == t.c.id)
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(base).where(*where)).scalar_one()
        ids = conn.execute(sa.select(tz.c.id).select_from(base).where(*where).order_by(t.c.id, tz.c.zone_id)
                           .offset(offset).limit(limit)).scalars().all()
        rows = conn.execute(
            sa.select(tz, z.c.uuid, z.c.name, t, a.c.uuid, a.c.name, d.c.uuid, d.c.name, d.c.path, g.c.display_name)
            .select_from(tz.join(z, tz.c.zone_id == z.c.id).join(t, tz.c.template_id == t.c.id)
                         .join(a, t.c.account_id == a.c.id).join(d, t.c.domain_id == d.c.id)
                         .outerjoin(g, t.c.os_type_uuid == g.c.uuid))
            .where(tz.c.id.in_(ids)).order_by(t.c.id, tz.c.zone_id)).all()
    assert total >= len(rows)
    return list(rows)


def raw_hosts(engine: Engine) -> list[Any]:
    """listHosts (every host, no filter): the count, the hosts with their zone, pod and cluster, and
    their tags."""
    h, z, p, c, ht = model.hosts, model.zones, model.pods, model.clusters, model.host_tags
    with engine.connect() as conn:
        q = sa.select(h, z.c.uuid, z.c.name, p.c.uuid, p.c.name, c.c.uuid, c.c.name).select_from(
            h.join(z, h.c.zone_id == z.c.id).outerjoin(p, h.c.pod_id == p.c.id).outerjoin(c, h.c.cluster_id == c.c.id)
        ).where(h.c.removed.is_(None))
        total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
        rows = conn.execute(q.order_by(h.c.id)).all()
        tags = conn.execute(sa.select(ht.c.host_id, ht.c.tag).where(ht.c.host_id.in_([r.id for r in rows]))
                            .order_by(ht.c.id)).all()
    assert total == len(rows) and len(tags) >= 0
    return list(rows)


# --- the components' own queries, in this process ----------------------------------------------------


class InlinePool:
    """Stands for the DB thread pool: runs a component's `thd` at once on a connection of `engine` and
    returns its value (not a Deferred)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def do(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self.engine.connect() as conn:
            result = fn(conn, *args, **kwargs)
            conn.commit()
            return result


class WallClock:
    def seconds(self) -> float:
        return time.time()  # noqa: TID251 (a bench's own wall clock)


def component_templates(engine: Engine, account_id: int, offset: int, limit: int) -> Callable[[], list[Any]]:
    from cloudd.db.images import ImagesComponent, TemplateSearch

    images = ImagesComponent(InlinePool(engine), WallClock())  # type: ignore[arg-type]
    q = TemplateSearch(is_iso=False, owners=(account_id,), public=True, shared_with=account_id)

    def run() -> list[Any]:
        _, rows = images.search_templates(q, Page(offset, limit))
        return list(rows)

    return run


def component_hosts(engine: Engine) -> Callable[[], list[Any]]:
    from cloudd.db.infra import HostFilter, InfraComponent

    infra = InfraComponent(InlinePool(engine), WallClock())  # type: ignore[arg-type]

    def run() -> list[Any]:
        _, rows = infra.search_hosts(HostFilter(), Page(0, None))
        return list(rows)

    return run


# --- measuring ---------------------------------------------------------------------------------------


class KeepAlive:
    """Sequential GETs on one keep-alive HTTP connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, url: str) -> bytes:
        parts = urllib.parse.urlsplit(url)
        self.conn.request("GET", parts.path + "?" + parts.query)
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise SetupError(f"HTTP {resp.status}: {body[:300]!r}")
        return body

    def close(self) -> None:
        self.conn.close()


def measure_http(conn: KeepAlive, url: str, pid: int, count: int) -> Sample:
    with ServerCpu(pid) as cpu:
        started = time.perf_counter()
        for _ in range(count):
            conn.get(url)
        seconds = time.perf_counter() - started
    return Sample(count, seconds, cpu.seconds)


def measure_local(fn: Callable[[], Any], count: int) -> Sample:
    with ServerCpu(os.getpid()) as cpu:
        started = time.perf_counter()
        for _ in range(count):
            fn()
        seconds = time.perf_counter() - started
    return Sample(count, seconds, cpu.seconds)


def ms(sample: Sample) -> float:
    return sample.seconds / sample.requests * 1000


@dataclass
class Listing:
    """One listing: its HTTP, raw and component subjects."""

    title: str
    http: Series
    raw: Series
    component: Series

    def time_ratio(self) -> float:
        """Median over rounds of HTTP time per request / raw time per request."""
        ratios = sorted(ms(h) / ms(r) for h, r in zip(self.http.samples, self.raw.samples, strict=True))
        mid = len(ratios) // 2
        return ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2


def check_page(body: bytes, templates_seen: list[Any], seeded: Seeded) -> None:
    """The HTTP page holds the templates of the raw page, in order, and the count of every template."""
    answer = json.loads(body)["listtemplatesresponse"]
    raw_names = [r._mapping[model.templates.c.name] for r in templates_seen]
    http_names = [t["name"] for t in answer.get("template", [])]
    if answer.get("count", 0) < seeded.templates or http_names != raw_names or len(http_names) != TEMPLATE_PAGESIZE:
        raise SetupError(f"listTemplates answered count {answer.get('count')} and {http_names[:3]}..., the raw "
                         f"query {raw_names[:3]}... ({len(raw_names)} rows)")


def check_hosts(body: bytes, seeded: Seeded) -> None:
    answer = json.loads(body)["listhostsresponse"]
    if answer.get("count") != seeded.hosts or len(answer.get("host", [])) != seeded.hosts:
        raise SetupError(f"listHosts answered {len(answer.get('host', []))} hosts of count {answer.get('count')}, "
                         f"not {seeded.hosts}")


def bench_database(database: str, db_url: str, args: argparse.Namespace, workdir: str,
                   server_cpu: int | None, client_cpu: int | None) -> list[Listing]:
    basedir = os.path.join(workdir, f"cloudd-{database.lower()}")
    if db_url:
        wipe(db_url)
    url = db_url or f"sqlite:///{basedir}/cloudd.sqlite"
    first = quiet_daemon(basedir, db_url)
    with pinned(server_cpu):
        first.start()
    first.stop()
    engine = create_engine(url)
    daemon = quiet_daemon(basedir, db_url)
    conn: KeepAlive | None = None
    try:
        write_settings(engine, QUIET_SETTINGS)
        with pinned(server_cpu):
            daemon.start()
        creds = daemon.credentials()
        pause(1.0)  # the host monitor's first round, over no host yet
        started = time.monotonic()
        seeded = seed(engine, args.templates, args.hosts)
        print(f"[{database}] cloudd on port {daemon.port}; seeded {seeded.templates} templates and {seeded.hosts} "
              f"hosts in {time.monotonic() - started:.1f} s", flush=True)
        offset = (TEMPLATE_PAGE - 1) * TEMPLATE_PAGESIZE

        def urls() -> tuple[str, str]:
            key, secret = creds["apikey"], creds["secretkey"]
            return (signed_url(daemon.endpoint, key, secret, "listTemplates", templatefilter="executable",
                               page=str(TEMPLATE_PAGE), pagesize=str(TEMPLATE_PAGESIZE)),
                    signed_url(daemon.endpoint, key, secret, "listHosts", pagesize="-1"))

        raw_tpl: Callable[[], Any] = lambda: raw_templates_page(engine, seeded.admin_account_id, offset,  # noqa: E731
                                                                 TEMPLATE_PAGESIZE)
        raw_host: Callable[[], Any] = lambda: raw_hosts(engine)  # noqa: E731
        comp_tpl = component_templates(engine, seeded.admin_account_id, offset, TEMPLATE_PAGESIZE)
        comp_host = component_hosts(engine)

        with pinned(client_cpu):
            conn = KeepAlive(daemon.port)
            tpl_url, hosts_url = urls()
            check_page(conn.get(tpl_url), raw_tpl(), seeded)
            check_hosts(conn.get(hosts_url), seeded)
            if [r.template.name for r in comp_tpl()] != [r._mapping[model.templates.c.name] for r in raw_tpl()]:
                raise SetupError("the images component's page differs from the raw query's")
            if len(comp_host()) != seeded.hosts:
                raise SetupError("the infrastructure component lists another number of hosts")
            host_body = conn.get(hosts_url)
            print(f"[{database}] bodies: listTemplates page {len(conn.get(tpl_url))} bytes, listHosts "
                  f"{len(host_body)} bytes", flush=True)
            # warm-up: imports, caches, database pages
            for _ in range(5):
                conn.get(tpl_url)
                raw_tpl()
                comp_tpl()
            for _ in range(2):
                conn.get(hosts_url)
                raw_host()
                comp_host()

            assert daemon.proc is not None
            pid = daemon.proc.pid
            templates = Listing(f"listTemplates executable page {TEMPLATE_PAGE} x {TEMPLATE_PAGESIZE} of "
                                f"{seeded.templates}", Series("HTTP signed listTemplates"),
                                Series("raw SQL (floor)"), Series("images component query"))
            hosts = Listing(f"listHosts, all {seeded.hosts}", Series("HTTP signed listHosts"),
                            Series("raw SQL (floor)"), Series("infra component query"))
            for run in range(args.runs):
                tpl_url, hosts_url = urls()  # fresh expiry windows on long runs
                order = ("http", "raw", "component") if run % 2 == 0 else ("component", "raw", "http")
                for who in order:
                    if who == "http":
                        templates.http.add(measure_http(conn, tpl_url, pid, args.requests))
                        hosts.http.add(measure_http(conn, hosts_url, pid, args.host_requests))
                    elif who == "raw":
                        templates.raw.add(measure_local(raw_tpl, args.requests))
                        hosts.raw.add(measure_local(raw_host, args.host_requests))
                    else:
                        templates.component.add(measure_local(comp_tpl, args.requests))
                        hosts.component.add(measure_local(comp_host, args.host_requests))
                print(f"  round {run + 1}: listTemplates {ms(templates.http.samples[-1]):6.2f} ms "
                      f"(raw {ms(templates.raw.samples[-1]):5.2f}, component {ms(templates.component.samples[-1]):5.2f})"
                      f"   listHosts {ms(hosts.http.samples[-1]):7.1f} ms (raw {ms(hosts.raw.samples[-1]):6.1f}, "
                      f"component {ms(hosts.component.samples[-1]):6.1f})", flush=True)
        print()
        print(f"[{database}] {args.runs} rounds; sequential requests on one connection ({args.requests} "
              f"listTemplates, {args.host_requests} listHosts per round); median (min-max); ratios are "
              f"subject / raw SQL per round (rate, and raw CPU per request / subject's):")
        for listing in (templates, hosts):
            print(f"  {listing.title}")
            for series in (listing.raw, listing.component, listing.http):
                ref = None if series is listing.raw else listing.raw
                print("    " + series.report(reference=ref, width=30, rate_spec=".1f"))
        return [templates, hosts]
    finally:
        if conn is not None:
            conn.close()
        daemon.stop()
        engine.dispose()


# --- profile -----------------------------------------------------------------------------------------


@contextmanager
def profiled(title: str, top: int) -> Iterator[None]:
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats(order).print_stats(top)
            text = out.getvalue()
            print(f"--- {title}, by {order} ---")
            print(text[text.find("   ncalls"):].rstrip() if "   ncalls" in text else text.rstrip())


def per_call_ms(fn: Callable[[], Any], count: int) -> tuple[float, Any]:
    """Mean wall milliseconds of `count` calls of `fn` (after one warm-up call), and its last value."""
    value = fn()
    started = time.perf_counter()
    for _ in range(count):
        value = fn()
    return (time.perf_counter() - started) / count * 1000, value


def breakdown(engine: Engine, seeded: Seeded, cloud: Any, args: argparse.Namespace) -> None:
    """Where a listing's time goes, step by step and without the profiler: the raw query, the
    component's query (rows mapped to its dataclasses), rendering every row with the command's declared
    response object, encoding the JSON answer, and the whole request through the command layer."""
    from cloudd.api.hosts import HOST_OBJ
    from cloudd.api.templates import TEMPLATE_OBJ
    from cloudd.web.render import render_json

    offset = (TEMPLATE_PAGE - 1) * TEMPLATE_PAGESIZE
    cases: list[tuple[str, int, Callable[[], Any], Callable[[], list[Any]], Any, str, dict[str, Any]]] = [
        ("listTemplates", args.requests, lambda: raw_templates_page(engine, seeded.admin_account_id, offset,
                                                                    TEMPLATE_PAGESIZE),
         component_templates(engine, seeded.admin_account_id, offset, TEMPLATE_PAGESIZE), TEMPLATE_OBJ,
         "template", {"templatefilter": "executable", "page": TEMPLATE_PAGE, "pagesize": TEMPLATE_PAGESIZE}),
        ("listHosts", args.host_requests, lambda: raw_hosts(engine), component_hosts(engine), HOST_OBJ, "host",
         {"pagesize": -1}),
    ]
    print("--- where the time goes, in process, without the profiler (mean ms per call) ---")
    for command, count, raw, component, obj, name, params in cases:
        raw_ms, _ = per_call_ms(raw, count)
        component_ms, rows = per_call_ms(component, count)
        render_ms, rendered = per_call_ms(lambda: [obj.render(r) for r in rows], count)  # noqa: B023
        body = {"count": len(rendered), name: rendered}
        json_ms, _ = per_call_ms(lambda: render_json(f"{command.lower()}response", body), count)  # noqa: B023
        whole_ms, _ = per_call_ms(lambda: cloud.signed(command, **params), count)  # noqa: B023
        print(f"{command:<14} {len(rows):5d} rows: raw SQL {raw_ms:6.1f}   component query {component_ms:6.1f}   "
              f"render ({len(obj.fields)} fields a row) {render_ms:6.1f}   JSON {json_ms:5.1f}   whole request "
              f"{whole_ms:6.1f} (the test harness also checks every rendered key is declared)")
    print()


def profile_in_process(args: argparse.Namespace, workdir: str) -> None:
    """cProfile of the same listings through the real command layer in this process (no sockets)."""
    from tests.util.cloud import make_cloud

    path = os.path.join(workdir, "profile")
    os.makedirs(path, exist_ok=True)
    cloud = make_cloud(path, f"sqlite:///{path}/profile.sqlite")
    try:
        seeded = seed(cloud.db.engine, args.templates, args.hosts)
        breakdown(cloud.db.engine, seeded, cloud, args)
        params = {"templatefilter": "executable", "page": TEMPLATE_PAGE, "pagesize": TEMPLATE_PAGESIZE}
        for command, extra, count in (("listTemplates", params, args.requests),
                                      ("listHosts", {"pagesize": -1}, args.host_requests)):
            answer = cloud.signed(command, **extra)
            if answer.status != 200:
                raise SetupError(f"in-process {command} answered {answer.status}: {answer.body[:300]!r}")
            for _ in range(3):
                cloud.signed(command, **extra)
            started = time.perf_counter()
            with profiled(f"{command} x {count} in process ({seeded.templates} templates, {seeded.hosts} hosts)",
                          args.profile_top):
                for _ in range(count):
                    cloud.signed(command, **extra)
            print(f"(profiled wall time {(time.perf_counter() - started) / count * 1000:.1f} ms per call, "
                  f"with the profiler's overhead and the test harness's declared-field checks)\n")
    finally:
        cloud.stop()


# --- main --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=MIN_ROUNDS,
                   help=f"rounds; medians and spreads are reported (default and minimum for figures: {MIN_ROUNDS})")
    p.add_argument("--templates", type=int, default=20_000, help="templates in the database (default 20000)")
    p.add_argument("--hosts", type=int, default=1_000, help="hosts in the database (default 1000)")
    p.add_argument("--requests", type=int, default=40, help="listTemplates requests per round (default 40)")
    p.add_argument("--host-requests", type=int, default=10, help="listHosts requests per round (default 10)")
    p.add_argument("--server-cpu", type=int, default=0, help="core of the daemon (default 0; -1: no pinning)")
    p.add_argument("--client-cpu", type=int, default=1,
                   help="core of this process: the client and the raw queries (default 1; -1: no pinning)")
    p.add_argument("--db-url", default=os.environ.get(DB_URL_ENV, ""),
                   help=f"also measure on this MariaDB/MySQL database, whose tables are dropped first "
                        f"(default ${DB_URL_ENV} when it names a server)")
    p.add_argument("--profile", action="store_true", help="then profile both listings in process (cProfile)")
    p.add_argument("--profile-top", type=int, default=25, help="functions shown per profile table (default 25)")
    p.add_argument("--keep", action="store_true", help="keep the temporary base directory (its twistd.log)")
    args = p.parse_args(argv)
    if args.templates < TEMPLATE_PAGE * TEMPLATE_PAGESIZE:
        p.error(f"--templates must be at least {TEMPLATE_PAGE * TEMPLATE_PAGESIZE} (page {TEMPLATE_PAGE} of "
                f"{TEMPLATE_PAGESIZE})")
    if args.hosts < 1 or args.runs < 1 or args.requests < 1 or args.host_requests < 1:
        p.error("--hosts, --runs, --requests and --host-requests must be positive")
    if args.db_url.startswith("sqlite"):
        args.db_url = ""
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpus = os.sched_getaffinity(0)
    server_cpu = args.server_cpu if args.server_cpu >= 0 and args.server_cpu in cpus else None
    client_cpu = args.client_cpu if args.client_cpu >= 0 and args.client_cpu in cpus else None
    workdir = tempfile.mkdtemp(prefix="cloudd-bench-infra-")
    try:
        print(f"{args.templates} templates, {args.hosts} hosts; {args.runs} rounds; daemon on cpu {server_cpu}, "
              f"client and raw queries on cpu {client_cpu}", flush=True)
        note = rounds_note(args.runs)
        if note:
            print(note, flush=True)
        databases = [("SQLite", "")] + ([("MariaDB", args.db_url)] if args.db_url else [])
        outcomes = [(name, bench_database(name, url, args, workdir, server_cpu, client_cpu))
                    for name, url in databases]
        print()
        for name, listings in outcomes:
            for listing in listings:
                ratio = listing.time_ratio()
                print(f"[{name}] target: {listing.title} over HTTP within {TARGET:g}x the raw query's time per "
                      f"request: {'met' if ratio <= TARGET else 'MISSED'} ({ratio:.2f}x; median "
                      f"{listing.http.cpu_us.median / 1000:.2f} ms server CPU per request, raw "
                      f"{listing.raw.cpu_us.median / 1000:.2f} ms)")
        if args.profile:
            print()
            profile_in_process(args, workdir)
        return 0
    except (SetupError, RuntimeError, OSError, sa.exc.SQLAlchemyError) as exc:
        print(f"bench setup failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
