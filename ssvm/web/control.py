"""The control API cloudd drives over mutually authenticated TLS.

| Method and path                        | Does                                                        |
|----------------------------------------|-------------------------------------------------------------|
| GET /health                            | service name and status                                     |
| PUT /v1/configdrives/{instance}        | build (or rebuild) the VM's config drive from its record    |
| GET /v1/configdrives/{instance}        | the ISO itself                                              |
| DELETE /v1/configdrives/{instance}     | remove it (`deleted` says whether there was one)            |
| GET /v1/downloads                      | every download and its state                                |
| PUT /v1/downloads/{id}                 | start a template or ISO download (idempotent)               |
| GET /v1/downloads/{id}                 | its state, percentage and bytes                             |
| POST /v1/downloads/{id}/cancel         | abandon it                                                  |
| DELETE /v1/downloads/{id}              | abandon it and remove what it stored                        |
| GET /v1/images                         | the valid templates and ISOs in the store                   |
| GET /v1/storage                        | capacity and use of the store                               |
| POST /v1/urls                          | a signed, expiring URL for a stored file                    |
"""

from __future__ import annotations

import os
from typing import Any

from twisted.web import http
from twisted.web.server import Request

from appliance.web import (
    ApiError,
    FileAnswer,
    JsonApi,
    bad_request,
    conflict,
    not_found,
    read_json,
    route,
)
from ssvm.configdrive.content import DriveError, parse_drive
from ssvm.configdrive.store import ConfigDriveStore, validate_instance_name
from ssvm.download.manager import DownloadConflict, DownloadManager, DownloadRequestError
from ssvm.urls import UrlError, UrlSigner

DEFAULT_URL_TTL = 3600


class ControlApi:
    """The handlers; each returns a JSON-able value, `(status, value)` or a `FileAnswer`."""

    def __init__(self, drives: ConfigDriveStore, downloads: DownloadManager, signer: UrlSigner,
                 store_root: str, public_url: str) -> None:
        self.drives = drives
        self.downloads = downloads
        self.signer = signer
        self.store_root = store_root
        self.public_url = public_url.rstrip("/")

    def resource(self) -> JsonApi:
        return JsonApi([
            route("GET", "/health", self.health),
            route("PUT", "/v1/configdrives/{instance}", self.put_drive),
            route("GET", "/v1/configdrives/{instance}", self.get_drive),
            route("DELETE", "/v1/configdrives/{instance}", self.delete_drive),
            route("GET", "/v1/downloads", self.list_downloads),
            route("PUT", "/v1/downloads/{download_id}", self.start_download),
            route("GET", "/v1/downloads/{download_id}", self.download_status),
            route("POST", "/v1/downloads/{download_id}/cancel", self.cancel_download),
            route("DELETE", "/v1/downloads/{download_id}", self.delete_download),
            route("GET", "/v1/images", self.images),
            route("GET", "/v1/storage", self.storage),
            route("POST", "/v1/urls", self.sign_url),
        ])

    async def health(self, request: Request) -> Any:
        return {"service": "ssvm", "status": "ok"}

    @staticmethod
    def _instance(instance: str) -> str:
        try:
            return validate_instance_name(instance)
        except DriveError as exc:
            raise bad_request(str(exc)) from None

    async def put_drive(self, request: Request, instance: str) -> Any:
        name = self._instance(instance)
        try:
            spec = parse_drive(read_json(request))
            return await self.drives.put(name, spec)
        except DriveError as exc:
            raise bad_request(str(exc)) from None

    async def get_drive(self, request: Request, instance: str) -> Any:
        path = self.drives.path_of(self._instance(instance))
        if path is None:
            raise not_found(f"there is no config drive for {instance}")
        return FileAnswer(path, "application/x-iso9660-image")

    async def delete_drive(self, request: Request, instance: str) -> Any:
        return {"deleted": await self.drives.delete(self._instance(instance))}

    async def list_downloads(self, request: Request) -> Any:
        return {"downloads": self.downloads.list()}

    async def start_download(self, request: Request, download_id: str) -> Any:
        body = read_json(request)
        try:
            return http.ACCEPTED, self.downloads.start(download_id, body)
        except DownloadRequestError as exc:
            raise bad_request(str(exc)) from None
        except DownloadConflict as exc:
            raise conflict(str(exc)) from None

    async def download_status(self, request: Request, download_id: str) -> Any:
        status = self.downloads.status(download_id)
        if status is None:
            raise not_found(f"there is no download {download_id}")
        return status

    async def cancel_download(self, request: Request, download_id: str) -> Any:
        status = self.downloads.cancel(download_id)
        if status is None:
            raise not_found(f"there is no download {download_id}")
        return status

    async def delete_download(self, request: Request, download_id: str) -> Any:
        return {"deleted": await self.downloads.delete(download_id)}

    async def images(self, request: Request) -> Any:
        return {"images": self.downloads.images()}

    async def storage(self, request: Request) -> Any:
        return await self.downloads.capacity()

    async def sign_url(self, request: Request) -> Any:
        body = read_json(request)
        path, ttl = body.get("path"), body.get("ttl", DEFAULT_URL_TTL)
        if not isinstance(path, str) or not isinstance(ttl, int) or isinstance(ttl, bool):
            raise bad_request("`path` (a string) and `ttl` (seconds, an integer) are expected")
        unknown = set(body) - {"path", "ttl"}
        if unknown:
            raise bad_request(f"unknown field(s): {', '.join(sorted(unknown))}")
        try:
            relative, expires = self.signer.sign(path, ttl)
        except UrlError as exc:
            raise bad_request(str(exc)) from None
        if not os.path.isfile(os.path.join(self.store_root, path)):
            raise ApiError(http.NOT_FOUND, "not_found", f"there is no stored file {path}")
        return {"url": f"{self.public_url}/images/{relative}", "expires": expires}
