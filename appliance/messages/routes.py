"""Which message model each control route reads and answers, for both appliances.

`SSVM_ROUTES` and `ROUTER_ROUTES` map `(method, path pattern)` — the patterns of the appliances'
route tables — to a `RouteMessages`: the model of the request body (None when the route reads no
body) and of the JSON answer (None when it answers a file).  The tests compare these tables with
the appliances' own, so a route added without its models fails them.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.messages.common import Deleted, Health
from appliance.messages.configdrive import ConfigDrive
from appliance.messages.router import (
    DeleteAnswer,
    PasswordAnswer,
    PasswordUpdate,
    RouterState,
    RulesUpdate,
    StateView,
    UpdateAnswer,
    VmDeletion,
    VmUpdate,
)
from appliance.messages.ssvm import (
    ConfigDriveStored,
    DownloadList,
    DownloadRequest,
    DownloadStatus,
    ImageList,
    SignedUrl,
    SignUrlRequest,
    StorageAnswer,
)

__all__ = ["ROUTER_ROUTES", "SSVM_ROUTES", "RouteMessages"]


@dataclass(frozen=True)
class RouteMessages:
    body: type | None
    answer: type | None


SSVM_ROUTES: dict[tuple[str, str], RouteMessages] = {
    ("GET", "/health"): RouteMessages(None, Health),
    ("PUT", "/v1/configdrives/{instance}"): RouteMessages(ConfigDrive, ConfigDriveStored),
    ("GET", "/v1/configdrives/{instance}"): RouteMessages(None, None),  # the ISO itself
    ("DELETE", "/v1/configdrives/{instance}"): RouteMessages(None, Deleted),
    ("GET", "/v1/downloads"): RouteMessages(None, DownloadList),
    ("PUT", "/v1/downloads/{download_id}"): RouteMessages(DownloadRequest, DownloadStatus),
    ("GET", "/v1/downloads/{download_id}"): RouteMessages(None, DownloadStatus),
    ("POST", "/v1/downloads/{download_id}/cancel"): RouteMessages(None, DownloadStatus),
    ("DELETE", "/v1/downloads/{download_id}"): RouteMessages(None, Deleted),
    ("GET", "/v1/images"): RouteMessages(None, ImageList),
    ("GET", "/v1/storage"): RouteMessages(None, StorageAnswer),
    ("POST", "/v1/urls"): RouteMessages(SignUrlRequest, SignedUrl),
}

ROUTER_ROUTES: dict[tuple[str, str], RouteMessages] = {
    ("GET", "/health"): RouteMessages(None, Health),
    ("GET", "/v1/state"): RouteMessages(None, StateView),
    ("PUT", "/v1/state"): RouteMessages(RouterState, UpdateAnswer),
    ("PUT", "/v1/vms/{uuid}"): RouteMessages(VmUpdate, UpdateAnswer),
    ("DELETE", "/v1/vms/{uuid}"): RouteMessages(VmDeletion, DeleteAnswer),
    ("PUT", "/v1/vms/{uuid}/password"): RouteMessages(PasswordUpdate, PasswordAnswer),
    ("PUT", "/v1/rules"): RouteMessages(RulesUpdate, UpdateAnswer),
}
