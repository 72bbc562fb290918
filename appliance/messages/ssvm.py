"""The storage appliance's control messages: downloads, images, capacity and signed URLs.

| Route                              | Body               | Answer                  |
|------------------------------------|--------------------|-------------------------|
| GET /health                        |                    | `Health`                |
| PUT /v1/configdrives/{instance}    | `ConfigDrive`      | `ConfigDriveStored`     |
| GET /v1/configdrives/{instance}    |                    | the ISO's bytes         |
| DELETE /v1/configdrives/{instance} |                    | `Deleted`               |
| GET /v1/downloads                  |                    | `DownloadList`          |
| PUT /v1/downloads/{id}             | `DownloadRequest`  | `DownloadStatus`        |
| GET /v1/downloads/{id}             |                    | `DownloadStatus`        |
| POST /v1/downloads/{id}/cancel     | (none read)        | `DownloadStatus`        |
| DELETE /v1/downloads/{id}          |                    | `Deleted`               |
| GET /v1/images                     |                    | `ImageList`             |
| GET /v1/storage                    |                    | `StorageAnswer`         |
| POST /v1/urls                      | `SignUrlRequest`   | `SignedUrl`             |

(`ConfigDrive` is in `appliance.messages.configdrive`.)  The download request is read here as a
message; the appliance then applies its own policy to it (`ssvm.download.request`: the URL as it
will be fetched, the size cap, the defaults it stores).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.messages.base import MessageError, expect_int, expect_str
from appliance.messages.checksum import parse_checksum
from appliance.messages.common import check_members

__all__ = [
    "DEFAULT_URL_TTL",
    "DOWNLOAD_ID",
    "DOWNLOAD_STATES",
    "IMAGE_FORMATS",
    "MAX_ID",
    "ConfigDriveStored",
    "DownloadList",
    "DownloadRequest",
    "DownloadStatus",
    "ImageEntry",
    "ImageList",
    "SignUrlRequest",
    "SignedUrl",
    "StorageAnswer",
    "check_download_id",
]

#: The image formats a download may declare (the appliance recognises each one's content).
IMAGE_FORMATS = ("qcow2", "raw", "vhd", "ova", "iso")
#: A download's states (`ssvm.download.state.DownloadState`).
DOWNLOAD_STATES = ("NOT_STARTED", "DOWNLOADING", "DOWNLOADED", "ERROR", "ABANDONED")
DOWNLOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_ID = 2**63 - 1
MAX_BYTES = 2**63 - 1
DEFAULT_URL_TTL = 3600
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REQUEST_FIELDS = frozenset({"url", "format", "checksum", "account_id", "template_id", "unique_name", "name",
                             "description", "hvm", "max_size"})


def _fail(key: str, text: str) -> MessageError:
    """The download request's errors read "<field> <problem>"."""
    return MessageError(key, text, separator=" ")


def check_download_id(download_id: object) -> str:
    if not isinstance(download_id, str) or not DOWNLOAD_ID.fullmatch(download_id):
        raise MessageError("download id must match [A-Za-z0-9][A-Za-z0-9_-]{0,63}")
    return download_id


def _text(request: Mapping[str, Any], key: str, *, required: bool, limit: int) -> str | None:
    value = request.get(key)
    if value is None:
        if required:
            raise _fail(key, "is required")
        return None
    if not isinstance(value, str):
        raise _fail(key, "must be a string")
    if required and not value.strip():
        raise _fail(key, "must not be empty")
    if len(value) > limit:
        raise _fail(key, f"is longer than {limit} characters")
    if _CONTROL.search(value):
        raise _fail(key, "contains a control character")
    return value


def _positive(request: Mapping[str, Any], key: str, high: int = MAX_ID) -> int:
    value = request.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise _fail(key, "must be a positive integer")
    return value


def _count(body: Mapping[str, Any], key: str, *, optional: bool = False) -> Any:
    value = body.get(key)
    if value is None and optional:
        return None
    return expect_int(value, key, 0, MAX_BYTES)


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    return None if value is None else expect_str(value, key)


@dataclass(frozen=True)
class DownloadRequest:
    """`PUT /v1/downloads/{id}`: fetch a template or ISO into the store.

    `format` is lower case and `checksum` canonical (`{SHA-256}hex`) or None; `name` and
    `description` None when not given; `max_size` None for the appliance's own limit (a larger
    one is capped to it).  The URL is checked as text here, and as a URL to fetch by the
    appliance."""

    url: str
    format: str
    account_id: int
    template_id: int
    unique_name: str
    checksum: str | None = None
    name: str | None = None
    description: str | None = None
    hvm: bool = True
    max_size: int | None = None

    @classmethod
    def from_json(cls, obj: Any) -> DownloadRequest:
        if not isinstance(obj, Mapping):
            raise MessageError("the request must be a JSON object")
        unknown = sorted(str(key) for key in obj if key not in _REQUEST_FIELDS)
        if unknown:
            raise MessageError(f"unknown field(s): {', '.join(unknown)}")
        url = _text(obj, "url", required=True, limit=4096)
        assert url is not None
        image_format = obj.get("format")
        if not isinstance(image_format, str) or image_format.lower() not in IMAGE_FORMATS:
            raise _fail("format", f"must be one of {', '.join(IMAGE_FORMATS)}")
        checksum_text = obj.get("checksum")
        checksum = None
        if checksum_text is not None and checksum_text != "":
            if not isinstance(checksum_text, str):
                raise _fail("checksum", "must be a string")
            try:
                checksum = str(parse_checksum(checksum_text))
            except ValueError as exc:
                raise MessageError("checksum", str(exc)) from None
        unique_name = _text(obj, "unique_name", required=True, limit=255)
        assert unique_name is not None
        hvm = obj.get("hvm", True)
        if not isinstance(hvm, bool):
            raise _fail("hvm", "must be true or false")
        max_size = None if obj.get("max_size") is None else _positive(obj, "max_size", MAX_BYTES)
        return cls(url=url, format=image_format.lower(), checksum=checksum,
                   account_id=_positive(obj, "account_id"), template_id=_positive(obj, "template_id"),
                   unique_name=unique_name, name=_text(obj, "name", required=False, limit=255),
                   description=_text(obj, "description", required=False, limit=1024), hvm=hvm,
                   max_size=max_size)

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "format": self.format, "checksum": self.checksum,
                "account_id": self.account_id, "template_id": self.template_id,
                "unique_name": self.unique_name, "name": self.name, "description": self.description,
                "hvm": self.hvm, "max_size": self.max_size}


_STATUS_FIELDS = frozenset({"id", "state", "percent", "bytes", "total", "error", "install_path",
                            "physical_size", "virtual_size", "checksum", "format", "url"})


@dataclass(frozen=True)
class DownloadStatus:
    """A download's state, as `PUT`, `GET` and `cancel` answer it: its `state` (one of
    `DOWNLOAD_STATES`), `percent` (0–100) and `bytes` received of `total` (None while unknown),
    the failure text, and once DOWNLOADED its install path (relative to the store), sizes and the
    checksum computed.  `url` is the URL without credentials."""

    id: str
    state: str
    percent: int
    bytes: int
    format: str
    url: str
    total: int | None = None
    error: str | None = None
    install_path: str | None = None
    physical_size: int | None = None
    virtual_size: int | None = None
    checksum: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> DownloadStatus:
        body = check_members(obj, _STATUS_FIELDS, frozenset({"id", "state", "percent", "bytes", "format", "url"}))
        try:
            download_id = check_download_id(body["id"])
        except MessageError:
            raise MessageError("id", f"is not a download id: {body['id']!r}") from None
        state = expect_str(body["state"], "state")
        if state not in DOWNLOAD_STATES:
            raise MessageError("state", f"must be one of {', '.join(DOWNLOAD_STATES)}, not {state!r}")
        return cls(id=download_id, state=state, percent=expect_int(body["percent"], "percent", 0, 100),
                   bytes=_count(body, "bytes"), format=expect_str(body["format"], "format"),
                   url=expect_str(body["url"], "url"), total=_count(body, "total", optional=True),
                   error=_optional_text(body, "error"), install_path=_optional_text(body, "install_path"),
                   physical_size=_count(body, "physical_size", optional=True),
                   virtual_size=_count(body, "virtual_size", optional=True),
                   checksum=_optional_text(body, "checksum"))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "percent": self.percent, "bytes": self.bytes,
                "total": self.total, "error": self.error, "install_path": self.install_path,
                "physical_size": self.physical_size, "virtual_size": self.virtual_size,
                "checksum": self.checksum, "format": self.format, "url": self.url}


def _items(body: Mapping[str, Any], key: str, read: Any) -> tuple[Any, ...]:
    values = body[key]
    if not isinstance(values, list):
        raise MessageError(key, "must be a list")
    items = []
    for index, value in enumerate(values):
        try:
            items.append(read(value))
        except MessageError as exc:
            raise MessageError(f"{key}[{index}]", str(exc)) from None
    return tuple(items)


@dataclass(frozen=True)
class DownloadList:
    """`GET /v1/downloads`: every download the appliance keeps, oldest first."""

    downloads: tuple[DownloadStatus, ...] = ()

    @classmethod
    def from_json(cls, obj: Any) -> DownloadList:
        body = check_members(obj, frozenset({"downloads"}), frozenset({"downloads"}))
        return cls(downloads=_items(body, "downloads", DownloadStatus.from_json))

    def to_json(self) -> dict[str, Any]:
        return {"downloads": [status.to_json() for status in self.downloads]}


_IMAGE_FIELDS = frozenset({"id", "account_id", "install_path", "format", "physical_size", "virtual_size",
                           "unique_name"})


@dataclass(frozen=True)
class ImageEntry:
    """A valid template or ISO in the store: its template id, owner, install path (relative to the
    store), format, sizes and unique name (from its `template.properties`)."""

    id: int
    account_id: int
    install_path: str
    format: str
    physical_size: int
    virtual_size: int
    unique_name: str

    @classmethod
    def from_json(cls, obj: Any) -> ImageEntry:
        body = check_members(obj, _IMAGE_FIELDS, _IMAGE_FIELDS)
        return cls(id=expect_int(body["id"], "id", 1, MAX_ID),
                   account_id=expect_int(body["account_id"], "account_id", 1, MAX_ID),
                   install_path=expect_str(body["install_path"], "install_path"),
                   format=expect_str(body["format"], "format"),
                   physical_size=_count(body, "physical_size"), virtual_size=_count(body, "virtual_size"),
                   unique_name=expect_str(body["unique_name"], "unique_name"))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "account_id": self.account_id, "install_path": self.install_path,
                "format": self.format, "physical_size": self.physical_size,
                "virtual_size": self.virtual_size, "unique_name": self.unique_name}


@dataclass(frozen=True)
class ImageList:
    """`GET /v1/images`: the valid templates and ISOs in the store."""

    images: tuple[ImageEntry, ...] = ()

    @classmethod
    def from_json(cls, obj: Any) -> ImageList:
        body = check_members(obj, frozenset({"images"}), frozenset({"images"}))
        return cls(images=_items(body, "images", ImageEntry.from_json))

    def to_json(self) -> dict[str, Any]:
        return {"images": [image.to_json() for image in self.images]}


@dataclass(frozen=True)
class StorageAnswer:
    """`GET /v1/storage`: the store's file system size and free space, and what the store uses,
    in bytes."""

    total: int
    free: int
    used_by_store: int

    @classmethod
    def from_json(cls, obj: Any) -> StorageAnswer:
        fields = frozenset({"total", "free", "used_by_store"})
        body = check_members(obj, fields, fields)
        return cls(total=_count(body, "total"), free=_count(body, "free"),
                   used_by_store=_count(body, "used_by_store"))

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "free": self.free, "used_by_store": self.used_by_store}


@dataclass(frozen=True)
class SignUrlRequest:
    """`POST /v1/urls`: a signed URL for the stored file `path` (relative to the store), valid for
    `ttl` seconds."""

    path: str
    ttl: int = DEFAULT_URL_TTL

    @classmethod
    def from_json(cls, obj: Any) -> SignUrlRequest:
        body = check_members(obj, frozenset({"path", "ttl"}), frozenset({"path"}))
        path = expect_str(body["path"], "path")
        ttl = body.get("ttl", DEFAULT_URL_TTL)
        if isinstance(ttl, bool) or not isinstance(ttl, int):
            raise MessageError("ttl", "must be a whole number of seconds")
        return cls(path=path, ttl=ttl)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "ttl": self.ttl}


@dataclass(frozen=True)
class SignedUrl:
    """The answer to `SignUrlRequest`: the URL and when it expires (epoch seconds)."""

    url: str
    expires: int

    @classmethod
    def from_json(cls, obj: Any) -> SignedUrl:
        body = check_members(obj, frozenset({"url", "expires"}), frozenset({"url", "expires"}))
        return cls(url=expect_str(body["url"], "url"), expires=expect_int(body["expires"], "expires", 0, MAX_ID))

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "expires": self.expires}


_STORED_FIELDS = frozenset({"instance_name", "path", "size", "sha256", "location"})
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ConfigDriveStored:
    """The answer to `PUT /v1/configdrives/{instance}`: the stored ISO's path (relative to the
    store), size, SHA-256 and location (`SECONDARY`)."""

    instance_name: str
    path: str
    size: int
    sha256: str
    location: str

    @classmethod
    def from_json(cls, obj: Any) -> ConfigDriveStored:
        body = check_members(obj, _STORED_FIELDS, _STORED_FIELDS)
        digest = expect_str(body["sha256"], "sha256")
        if not _SHA256.fullmatch(digest):
            raise MessageError("sha256", "must be 64 lower-case hex digits")
        return cls(instance_name=expect_str(body["instance_name"], "instance_name"),
                   path=expect_str(body["path"], "path"), size=_count(body, "size"), sha256=digest,
                   location=expect_str(body["location"], "location"))

    def to_json(self) -> dict[str, Any]:
        return {"instance_name": self.instance_name, "path": self.path, "size": self.size,
                "sha256": self.sha256, "location": self.location}

