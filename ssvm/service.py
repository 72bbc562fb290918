"""The secondary-storage appliance's root service and its children, in start order:

1. `pool` — the named thread pool for ISO building, hashing and file work;
2. `downloads` — the template and ISO download manager (resumes unfinished downloads on start);
3. `control` — the control API, HTTPS with mutual TLS against cloudd's authority;
4. `public` — signed, expiring image URLs for hosts and users.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet import endpoints
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from appliance.tls import TlsMaterial, server_options
from appliance.web import ControlSite, path_only_log_formatter
from ssvm.config import Config
from ssvm.configdrive.store import ConfigDriveStore
from ssvm.download.manager import DownloadManager
from ssvm.download.policy import AddressPolicy
from ssvm.urls import UrlSigner
from ssvm.web.control import ControlApi
from ssvm.web.images import ImageResource

CONTROL_MAX_BODY = 8 * 1024 * 1024


class ThreadPoolService(Service):
    """Owns a thread pool: started with the service, stopped (threads joined) with it."""

    def __init__(self, pool: ThreadPool) -> None:
        self.pool = pool

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        super().startService()
        self.pool.start()

    def stopService(self) -> None:  # noqa: N802 (Twisted API)
        super().stopService()
        self.pool.stop()


class StorageService(MultiService):
    def __init__(self, *, reactor: Any, store_root: str, state_dir: str, tls: TlsMaterial,
                 control_listen: str, public_listen: str, public_url: str, config: Config,
                 url_key: bytes, resolver: Any = None) -> None:
        super().__init__()
        self.reactor = reactor
        self.store_root = os.path.abspath(store_root)
        self.state_dir = os.path.abspath(state_dir)
        self.tls = tls
        self.control_listen = control_listen
        self.public_listen = public_listen
        self.public_url = public_url
        self.config = config
        self.url_key = url_key
        self.resolver = resolver
        self._create_children()

    def _create_children(self) -> None:
        os.makedirs(self.store_root, exist_ok=True)
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        pool = ThreadPool(minthreads=0, maxthreads=4, name="ssvm-work")
        pool_service = ThreadPoolService(pool)
        pool_service.setName("pool")
        pool_service.setServiceParent(self)

        self.downloads = DownloadManager(
            self.store_root, self.state_dir, self.reactor, pool,
            AddressPolicy(self.config.allowed_cidrs),
            max_size=self.config.max_size, max_redirects=self.config.max_redirects,
            resolver=self.resolver)
        self.downloads.setName("downloads")
        self.downloads.setServiceParent(self)

        self.drives = ConfigDriveStore(self.store_root, self.reactor, pool)
        self.signer = UrlSigner(self.url_key, self.reactor, self.config.url_max_ttl)
        api = ControlApi(self.drives, self.downloads, self.signer, self.store_root, self.public_url)
        site = ControlSite(api.resource(), max_body=CONTROL_MAX_BODY)
        site.displayTracebacks = False
        control = StreamServerEndpointService(
            endpoints.serverFromString(self.reactor, self.control_listen),
            TLSMemoryBIOFactory(server_options(self.tls), False, site))
        control.setName("control")
        control.setServiceParent(self)

        root = Resource()
        root.putChild(b"images", ImageResource(self.store_root, self.signer))
        public_site = Site(root, logFormatter=path_only_log_formatter)
        public_site.displayTracebacks = False
        public = StreamServerEndpointService(
            endpoints.serverFromString(self.reactor, self.public_listen), public_site)
        public.setName("public")
        public.setServiceParent(self)
