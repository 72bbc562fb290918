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

Bodies are read, and answers built, with the control message models (`appliance.messages.ssvm`),
which cloudd uses too; a malformed body is a 400 `bad_request` whose message names the field.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.web import http
from twisted.web.server import Request

from appliance.messages.base import MessageError
from appliance.messages.common import Deleted, Health
from appliance.messages.configdrive import ConfigDrive
from appliance.messages.ssvm import (
    ConfigDriveStored,
    DownloadList,
    DownloadStatus,
    ImageList,
    SignedUrl,
    SignUrlRequest,
    StorageAnswer,
)
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
from ssvm.configdrive.store import ConfigDriveStore, validate_instance_name
from ssvm.download.manager import DownloadConflict, DownloadManager, DownloadRequestError
from ssvm.urls import UrlError, UrlSigner


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
        return Health(service="ssvm", status="ok").to_json()

    @staticmethod
    def _instance(instance: str) -> str:
        try:
            return validate_instance_name(instance)
        except MessageError as exc:
            raise bad_request(str(exc)) from None

    async def put_drive(self, request: Request, instance: str) -> Any:
        name = self._instance(instance)
        try:
            drive = ConfigDrive.from_json(read_json(request))
            stored = await self.drives.put(name, drive)  # DriveTooLarge is a MessageError too
        except MessageError as exc:
            raise bad_request(str(exc)) from None
        return ConfigDriveStored.from_json(stored).to_json()

    async def get_drive(self, request: Request, instance: str) -> Any:
        path = self.drives.path_of(self._instance(instance))
        if path is None:
            raise not_found(f"there is no config drive for {instance}")
        return FileAnswer(path, "application/x-iso9660-image")

    async def delete_drive(self, request: Request, instance: str) -> Any:
        return Deleted(deleted=await self.drives.delete(self._instance(instance))).to_json()

    async def list_downloads(self, request: Request) -> Any:
        return DownloadList(tuple(DownloadStatus.from_json(s) for s in self.downloads.list())).to_json()

    async def start_download(self, request: Request, download_id: str) -> Any:
        body = read_json(request)
        try:
            return http.ACCEPTED, DownloadStatus.from_json(self.downloads.start(download_id, body)).to_json()
        except DownloadRequestError as exc:
            raise bad_request(str(exc)) from None
        except DownloadConflict as exc:
            raise conflict(str(exc)) from None

    async def download_status(self, request: Request, download_id: str) -> Any:
        status = self.downloads.status(download_id)
        if status is None:
            raise not_found(f"there is no download {download_id}")
        return DownloadStatus.from_json(status).to_json()

    async def cancel_download(self, request: Request, download_id: str) -> Any:
        status = self.downloads.cancel(download_id)
        if status is None:
            raise not_found(f"there is no download {download_id}")
        return DownloadStatus.from_json(status).to_json()

    async def delete_download(self, request: Request, download_id: str) -> Any:
        return Deleted(deleted=await self.downloads.delete(download_id)).to_json()

    async def images(self, request: Request) -> Any:
        return ImageList.from_json({"images": self.downloads.images()}).to_json()

    async def storage(self, request: Request) -> Any:
        return StorageAnswer.from_json(await self.downloads.capacity()).to_json()

    async def sign_url(self, request: Request) -> Any:
        try:
            wanted = SignUrlRequest.from_json(read_json(request))
            relative, expires = self.signer.sign(wanted.path, wanted.ttl)
        except (MessageError, UrlError) as exc:
            raise bad_request(str(exc)) from None
        if not os.path.isfile(os.path.join(self.store_root, wanted.path)):
            raise ApiError(http.NOT_FOUND, "not_found", f"there is no stored file {wanted.path}")
        return SignedUrl(url=f"{self.public_url}/images/{relative}", expires=expires).to_json()
