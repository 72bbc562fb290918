"""Validation of a start request into a normalised `DownloadRequest` (pure).

The request is the JSON object of the control API:
`{"url", "format", "checksum"?, "account_id", "template_id", "unique_name", "name"?,
"description"?, "hvm"?, "max_size"?}`. Unknown fields are refused, so a typo is an error rather
than a silently ignored option. Two requests are "the same" (for idempotent `start`) when their
normalised forms are equal.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from ssvm.download.checksum import parse_checksum
from ssvm.download.errors import DownloadRequestError, URLRefused
from ssvm.download.sniff import FORMATS
from ssvm.download.urls import parse_url

DOWNLOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
FIELDS = frozenset({"url", "format", "checksum", "account_id", "template_id", "unique_name", "name",
                    "description", "hvm", "max_size"})
MAX_ID = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class DownloadRequest:
    url: str
    format: str
    checksum: str | None  # canonical "{ALG}hex"
    account_id: int
    template_id: int
    unique_name: str
    name: str | None
    description: str
    hvm: bool
    max_size: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> DownloadRequest:
        return cls(**value)


def check_download_id(download_id: object) -> str:
    if not isinstance(download_id, str) or not DOWNLOAD_ID.fullmatch(download_id):
        raise DownloadRequestError("download id must match [A-Za-z0-9][A-Za-z0-9_-]{0,63}")
    return download_id


def _text(request: dict[str, Any], key: str, *, required: bool, limit: int) -> str | None:
    value = request.get(key)
    if value is None:
        if required:
            raise DownloadRequestError(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise DownloadRequestError(f"{key} must be a string")
    if required and not value.strip():
        raise DownloadRequestError(f"{key} must not be empty")
    if len(value) > limit:
        raise DownloadRequestError(f"{key} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise DownloadRequestError(f"{key} contains a control character")
    return value


def _identifier(request: dict[str, Any], key: str) -> int:
    value = request.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise DownloadRequestError(f"{key} must be a positive integer")
    return value


def parse_request(request: object, *, max_size: int) -> DownloadRequest:
    """Check a start request; `DownloadRequestError` names the first problem."""
    if not isinstance(request, dict):
        raise DownloadRequestError("the request must be a JSON object")
    unknown = sorted(str(key) for key in request if key not in FIELDS)
    if unknown:
        raise DownloadRequestError(f"unknown field(s): {', '.join(unknown)}")
    url = _text(request, "url", required=True, limit=4096)
    assert url is not None
    try:
        parse_url(url)
    except URLRefused as exc:
        raise DownloadRequestError(str(exc)) from None
    image_format = request.get("format")
    if not isinstance(image_format, str) or image_format.lower() not in FORMATS:
        raise DownloadRequestError(f"format must be one of {', '.join(FORMATS)}")
    checksum_text = request.get("checksum")
    checksum = None
    if checksum_text is not None and checksum_text != "":
        if not isinstance(checksum_text, str):
            raise DownloadRequestError("checksum must be a string")
        try:
            checksum = str(parse_checksum(checksum_text))
        except ValueError as exc:
            raise DownloadRequestError(str(exc)) from None
    unique_name = _text(request, "unique_name", required=True, limit=255)
    assert unique_name is not None
    name = _text(request, "name", required=False, limit=255)
    description = _text(request, "description", required=False, limit=1024)
    hvm = request.get("hvm", True)
    if not isinstance(hvm, bool):
        raise DownloadRequestError("hvm must be true or false")
    limit = request.get("max_size")
    if limit is None:
        limit = max_size
    elif isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise DownloadRequestError("max_size must be a positive integer")
    return DownloadRequest(
        url=url, format=image_format.lower(), checksum=checksum,
        account_id=_identifier(request, "account_id"), template_id=_identifier(request, "template_id"),
        unique_name=unique_name, name=name, description=description if description is not None else (name or unique_name),
        hvm=hvm, max_size=min(limit, max_size))
