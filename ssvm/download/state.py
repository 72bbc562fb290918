"""The download state machine and the record persisted for each download.

States and the only legal transitions (spec §11.8, with CloudStack's names in brackets):

    =============  ==========================================  =============================
    from           to                                          when
    =============  ==========================================  =============================
    NOT_STARTED    DOWNLOADING                                 the transfer starts
    NOT_STARTED    ERROR                                       it cannot even start
    NOT_STARTED    ABANDONED                                   cancelled before it started
    DOWNLOADING    DOWNLOADED [POST_DOWNLOAD_FINISHED]         verified and installed
    DOWNLOADING    ERROR [DOWNLOAD_ERROR/UNRECOVERABLE_ERROR]  any failure; partial removed
    DOWNLOADING    ABANDONED [ABORTED]                         cancelled; partial removed
    =============  ==========================================  =============================

DOWNLOADED, ERROR and ABANDONED are final. A restart of the appliance is not a transition: a
record left in NOT_STARTED or DOWNLOADING is resumed (or failed to ERROR) by the next start.
`DownloadRecord.move_to` is the only way a record's state changes; it checks this table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from ssvm.download.request import DownloadRequest


class DownloadState(Enum):
    NOT_STARTED = "NOT_STARTED"
    DOWNLOADING = "DOWNLOADING"
    DOWNLOADED = "DOWNLOADED"
    ERROR = "ERROR"
    ABANDONED = "ABANDONED"

    @property
    def final(self) -> bool:
        return not TRANSITIONS[self]


TRANSITIONS: dict[DownloadState, frozenset[DownloadState]] = {
    DownloadState.NOT_STARTED: frozenset({DownloadState.DOWNLOADING, DownloadState.ERROR,
                                          DownloadState.ABANDONED}),
    DownloadState.DOWNLOADING: frozenset({DownloadState.DOWNLOADED, DownloadState.ERROR,
                                          DownloadState.ABANDONED}),
    DownloadState.DOWNLOADED: frozenset(),
    DownloadState.ERROR: frozenset(),
    DownloadState.ABANDONED: frozenset(),
}


class IllegalTransition(Exception):
    """A state change that the transition table does not allow."""


def check_transition(old: DownloadState, new: DownloadState) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"download state cannot go from {old.value} to {new.value}")


@dataclass
class DownloadRecord:
    """Everything the appliance keeps about one download; `to_json` is what the state file holds."""

    id: str
    request: DownloadRequest
    directory: str  # relative to the store root: template/tmpl/<account>/<template>
    file_name: str
    temp_name: str
    state: DownloadState = DownloadState.NOT_STARTED
    bytes: int = 0
    total: int | None = None
    error: str | None = None
    physical_size: int | None = None
    virtual_size: int | None = None
    checksum: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    restarts: int = 0
    created: float = 0.0
    updated: float = 0.0
    history: list[str] = field(default_factory=list)

    def move_to(self, new: DownloadState, now: float, error: str | None = None) -> None:
        check_transition(self.state, new)
        self.state = new
        self.updated = now
        self.history.append(new.value)
        if error is not None:
            self.error = error

    @property
    def install_path(self) -> str:
        return f"{self.directory}/{self.file_name}"

    def to_json(self) -> dict[str, Any]:
        value = asdict(self)
        value["request"] = self.request.to_json()
        value["state"] = self.state.value
        return value

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> DownloadRecord:
        fields = dict(value)
        fields["request"] = DownloadRequest.from_json(fields["request"])
        fields["state"] = DownloadState(fields["state"])
        known = set(cls.__dataclass_fields__)
        return cls(**{key: item for key, item in fields.items() if key in known})
