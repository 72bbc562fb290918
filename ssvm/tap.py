"""`twistd ssvm`: options and the composition root of the secondary-storage appliance."""

from __future__ import annotations

import os

from twisted.application.service import IService
from twisted.python import usage

from appliance.logretention import keep_rotated_logs
from appliance.options import load_settings, load_tls
from ssvm.config import Config, ConfigError, load_config


class Options(usage.Options):
    optParameters = [
        ["basedir", "d", "ssvm-data", "Base directory: state, keys, and the store unless --store is given."],
        ["store", None, None, "Image store mount point (default: <basedir>/store)."],
        ["tls-dir", None, None, "Folder with key.pem, cert.pem and ca.pem issued by cloudd "
                                "(default: <basedir>/tls)."],
        ["control-listen", None, "tcp:3923:interface=127.0.0.1", "Endpoint of the control API (TLS is added)."],
        ["public-listen", None, "tcp:3924:interface=127.0.0.1", "Endpoint serving signed image URLs."],
        ["public-url", None, None, "Base URL of the image endpoint as hosts reach it "
                                   "(default: http://127.0.0.1:<public port>)."],
        ["config", "c", None, "Settings file (TOML)."],
    ]

    def postOptions(self) -> None:  # noqa: N802 (Twisted API)
        self["basedir"] = os.path.abspath(self["basedir"])
        self["store"] = os.path.abspath(self["store"] or os.path.join(self["basedir"], "store"))
        self["tls-dir"] = os.path.abspath(self["tls-dir"] or os.path.join(self["basedir"], "tls"))
        if self["public-url"] is None:
            parts = self["public-listen"].split(":")
            port = parts[1] if len(parts) > 1 and parts[0] in ("tcp", "ssl") else "3924"
            scheme = "https" if parts[0] == "ssl" else "http"
            self["public-url"] = f"{scheme}://127.0.0.1:{port}"
        self["tls"] = load_tls(self["tls-dir"])
        self["settings"] = load_settings(self["config"], load_config, Config(), ConfigError)


def makeService(options: Options) -> IService:  # noqa: N802 (Twisted API)
    from twisted.internet import reactor

    from ssvm.service import StorageService
    from ssvm.urls import load_or_create_key

    os.makedirs(options["basedir"], mode=0o700, exist_ok=True)
    key = load_or_create_key(os.path.join(options["basedir"], "url-signing.key"))
    service = StorageService(
        reactor=reactor, store_root=options["store"], state_dir=os.path.join(options["basedir"], "state"),
        tls=options["tls"], control_listen=options["control-listen"], public_listen=options["public-listen"],
        public_url=options["public-url"], config=options["settings"], url_key=key)
    keep_rotated_logs(service, options, options["settings"].log_retention, reactor)
    return service
