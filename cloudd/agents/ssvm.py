"""cloudd's client of the secondary-storage appliance: config drives, downloads, images, URLs."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from cloudd.agents.control import ControlClient, ControlError


class StorageClient(ControlClient):
    async def health(self) -> Any:
        return await self.call("GET", "/health")

    async def put_config_drive(self, instance_name: str, drive: dict[str, Any]) -> Any:
        """Build or rebuild the VM's config drive from its record; the stored file's description."""
        return await self.call("PUT", f"/v1/configdrives/{quote(instance_name)}", drive)

    async def get_config_drive(self, instance_name: str) -> bytes | None:
        """The ISO's bytes, or None when there is none."""
        status, _headers, body = await self.raw("GET", f"/v1/configdrives/{quote(instance_name)}")
        if status == 404:
            return None
        if status != 200:
            raise ControlError(status, "error", body[:200].decode("utf-8", "replace"))
        return body

    async def delete_config_drive(self, instance_name: str) -> bool:
        result = await self.call("DELETE", f"/v1/configdrives/{quote(instance_name)}")
        return bool(result["deleted"])

    async def start_download(self, download_id: str, request: dict[str, Any]) -> Any:
        return await self.call("PUT", f"/v1/downloads/{quote(download_id)}", request)

    async def download_status(self, download_id: str) -> Any:
        return await self.call("GET", f"/v1/downloads/{quote(download_id)}")

    async def cancel_download(self, download_id: str) -> Any:
        return await self.call("POST", f"/v1/downloads/{quote(download_id)}/cancel", {})

    async def delete_download(self, download_id: str) -> bool:
        result = await self.call("DELETE", f"/v1/downloads/{quote(download_id)}")
        return bool(result["deleted"])

    async def downloads(self) -> list[Any]:
        return list((await self.call("GET", "/v1/downloads"))["downloads"])

    async def images(self) -> list[Any]:
        return list((await self.call("GET", "/v1/images"))["images"])

    async def storage(self) -> Any:
        return await self.call("GET", "/v1/storage")

    async def sign_url(self, path: str, ttl: int) -> Any:
        return await self.call("POST", "/v1/urls", {"path": path, "ttl": ttl})
