"""cloudd's client of the secondary-storage appliance: config drives, downloads, images, URLs.

Every method takes and returns the control message models (`appliance.messages.ssvm`,
`appliance.messages.configdrive`): a body is checked with the model the appliance reads it with
before it is sent (`MessageError`, nothing sent), and an answer the model refuses raises
`ControlError(status, "bad_answer", ...)`.
"""

from __future__ import annotations

from urllib.parse import quote

from appliance.messages.common import Deleted, Health
from appliance.messages.configdrive import ConfigDrive
from appliance.messages.ssvm import (
    ConfigDriveStored,
    DownloadList,
    DownloadRequest,
    DownloadStatus,
    ImageEntry,
    ImageList,
    SignedUrl,
    SignUrlRequest,
    StorageAnswer,
    check_download_id,
)
from cloudd.agents.control import ControlClient, ControlError, read_answer


def _download(download_id: str) -> str:
    return f"/v1/downloads/{quote(check_download_id(download_id), safe='')}"


class StorageClient(ControlClient):
    async def health(self) -> Health:
        return await self.exchange("GET", "/health", None, Health)

    async def put_config_drive(self, instance_name: str, drive: ConfigDrive) -> ConfigDriveStored:
        """Build or rebuild the VM's config drive from its record; the stored file's description."""
        return await self.exchange("PUT", f"/v1/configdrives/{quote(instance_name, safe='')}", drive,
                                   ConfigDriveStored)

    async def get_config_drive(self, instance_name: str) -> bytes | None:
        """The ISO's bytes, or None when there is none."""
        status, _headers, body = await self.raw("GET", f"/v1/configdrives/{quote(instance_name, safe='')}")
        if status == 404:
            return None
        if status != 200:
            raise ControlError(status, "error", body[:200].decode("utf-8", "replace"))
        return body

    async def delete_config_drive(self, instance_name: str) -> bool:
        path = f"/v1/configdrives/{quote(instance_name, safe='')}"
        return (await self.exchange("DELETE", path, None, Deleted)).deleted

    async def start_download(self, download_id: str, request: DownloadRequest) -> DownloadStatus:
        """Start a download (idempotent: the same id and request answer its status again)."""
        return await self.exchange("PUT", _download(download_id), request, DownloadStatus)

    async def download_status(self, download_id: str) -> DownloadStatus:
        return await self.exchange("GET", _download(download_id), None, DownloadStatus)

    async def cancel_download(self, download_id: str) -> DownloadStatus:
        status, value = await self._call("POST", _download(download_id) + "/cancel", {})  # no body read
        return read_answer(DownloadStatus, status, value)

    async def delete_download(self, download_id: str) -> bool:
        return (await self.exchange("DELETE", _download(download_id), None, Deleted)).deleted

    async def downloads(self) -> list[DownloadStatus]:
        return list((await self.exchange("GET", "/v1/downloads", None, DownloadList)).downloads)

    async def images(self) -> list[ImageEntry]:
        return list((await self.exchange("GET", "/v1/images", None, ImageList)).images)

    async def storage(self) -> StorageAnswer:
        return await self.exchange("GET", "/v1/storage", None, StorageAnswer)

    async def sign_url(self, request: SignUrlRequest) -> SignedUrl:
        """A signed, expiring URL for a stored file."""
        return await self.exchange("POST", "/v1/urls", request, SignedUrl)

