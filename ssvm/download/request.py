"""A start request, read as the control message (`appliance.messages.ssvm.DownloadRequest`) and
normalised into the `DownloadRequest` the appliance stores (pure).

The message is `{"url", "format", "checksum"?, "account_id", "template_id", "unique_name",
"name"?, "description"?, "hvm"?, "max_size"?}`; unknown fields are refused, so a typo is an error
rather than a silently ignored option.  On top of the message's checks the appliance parses the
URL as it will fetch it, caps `max_size` to its own limit and fills in the description.  Two
requests are "the same" (for idempotent `start`) when their normalised forms are equal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from appliance.messages import ssvm as messages
from appliance.messages.base import MessageError
from ssvm.download.errors import DownloadRequestError, URLRefused
from ssvm.download.urls import parse_url

DOWNLOAD_ID = messages.DOWNLOAD_ID
FIELDS = frozenset(messages.DownloadRequest.__dataclass_fields__)
MAX_ID = messages.MAX_ID


@dataclass(frozen=True)
class DownloadRequest:
    """A start request as the appliance keeps it: every default filled in, the size capped."""

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
    try:
        return messages.check_download_id(download_id)
    except MessageError as exc:
        raise DownloadRequestError(str(exc)) from None


def parse_request(request: object, *, max_size: int) -> DownloadRequest:
    """Check a start request; `DownloadRequestError` names the first problem."""
    try:
        message = messages.DownloadRequest.from_json(request)
    except MessageError as exc:
        raise DownloadRequestError(str(exc)) from None
    try:
        parse_url(message.url)
    except URLRefused as exc:
        raise DownloadRequestError(str(exc)) from None
    limit = max_size if message.max_size is None else min(message.max_size, max_size)
    return DownloadRequest(
        url=message.url, format=message.format, checksum=message.checksum,
        account_id=message.account_id, template_id=message.template_id,
        unique_name=message.unique_name, name=message.name,
        description=message.description if message.description is not None else (
            message.name or message.unique_name),
        hvm=message.hvm, max_size=limit)
