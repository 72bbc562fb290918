"""Templates and ISOs: registration as one download per zone in that zone's ssvm, the download poller,
deletion of the stored files, extraction URLs and copies to other zones.

A copy's download state moves through `DOWNLOAD` by compare-and-set: NOT_DOWNLOADED (stored, not yet
accepted by ssvm) → DOWNLOAD_IN_PROGRESS → DOWNLOADED, or DOWNLOAD_ERROR / ABANDONED with the reason
kept. The `DownloadPoller` (a TimerService on the injected clock) reads every unfinished copy's status
from its zone's ssvm and stores the progress; it also starts copies ssvm has not accepted yet (its
ssvm was down at registration). Because the state lives in the database, a restarted cloudd simply
polls again. A zone's ssvm that restarted is read back at once (`resync_zone`, called on its agent's
resync): a download it no longer knows is started again (`start_download` is idempotent and ssvm
resumes partial files), at most `MAX_RESTARTS` times, then failed with the reason — never left at
N%.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredLock
from twisted.logger import Logger

from appliance.messages.base import MessageError
from appliance.messages.ssvm import DownloadRequest, DownloadStatus, SignUrlRequest
from cloudd.agents.control import ControlError
from cloudd.agents.service import describe
from cloudd.db import images as I  # noqa: N812
from cloudd.errors import CloudError, internal, invalid_value
from cloudd.orchestration.states import StateMachine

if TYPE_CHECKING:
    from cloudd.agents.service import ApplianceAgent
    from cloudd.db.images import Template, TemplateCopy
    from cloudd.orchestration.context import Services

GIB = 2**30
POLL_INTERVAL = 2.0
MAX_RESTARTS = 3
LOST_TEXT = "the secondary storage VM lost the download and it could not be restarted"


class DownloadState(enum.Enum):
    NOT_DOWNLOADED = I.NOT_DOWNLOADED
    DOWNLOAD_IN_PROGRESS = I.DOWNLOAD_IN_PROGRESS
    DOWNLOADED = I.DOWNLOADED
    DOWNLOAD_ERROR = I.DOWNLOAD_ERROR
    ABANDONED = I.ABANDONED


_D = DownloadState
DOWNLOAD: StateMachine[DownloadState] = StateMachine("Template download", DownloadState, {
    (_D.NOT_DOWNLOADED, "accepted"): _D.DOWNLOAD_IN_PROGRESS,
    (_D.NOT_DOWNLOADED, "downloaded"): _D.DOWNLOADED,
    (_D.DOWNLOAD_IN_PROGRESS, "downloaded"): _D.DOWNLOADED,
    (_D.NOT_DOWNLOADED, "fail"): _D.DOWNLOAD_ERROR,
    (_D.DOWNLOAD_IN_PROGRESS, "fail"): _D.DOWNLOAD_ERROR,
    (_D.NOT_DOWNLOADED, "abandon"): _D.ABANDONED,
    (_D.DOWNLOAD_IN_PROGRESS, "abandon"): _D.ABANDONED,
})


def status_text(copy: TemplateCopy) -> str:
    """The `status` field as CloudStack shows it (TemplateJoinDaoImpl)."""
    if copy.state == I.DOWNLOADED:
        return "Download Complete"
    if copy.state == I.DOWNLOAD_IN_PROGRESS:
        return "Installing Template" if copy.percent >= 100 else f"{copy.percent}% Downloaded"
    if copy.error:
        return copy.error
    return copy.state


@dataclass(frozen=True)
class Registration:
    """What registerTemplate/registerIso store (the templates table's columns)."""

    values: dict[str, Any]
    zone_ids: Sequence[int]


class DownloadPoller(TimerService):
    """Polls the unfinished downloads every `interval` seconds on the injected clock."""

    def __init__(self, manager: TemplateManager, interval: float) -> None:
        super().__init__(interval, manager.poll)
        self.clock = manager.orchestration.clock
        self.setName("download-poller")


class TemplateManager(MultiService):
    log = Logger()

    def __init__(self, services: Services, interval: float = POLL_INTERVAL) -> None:
        super().__init__()
        self.setName("templates")
        self.orchestration = services
        self.poller = DownloadPoller(self, interval)
        self.poller.setServiceParent(self)
        self._locks: dict[int, DeferredLock] = {}
        self._polling: Deferred[None] | None = None

    @property
    def db(self) -> I.ImagesComponent:
        return self.orchestration.db.images

    def _agent(self, zone_id: int) -> ApplianceAgent[Any] | None:
        systemvms = self.orchestration.systemvms
        return None if systemvms is None else systemvms.ready_agent(zone_id)

    # -- registration ------------------------------------------------------------------------------

    async def register(self, reg: Registration) -> tuple[Template, list[TemplateCopy]]:
        """Store the template with a copy in each zone's image store and start each download (a zone
        whose ssvm does not answer now is started by the poller)."""
        pairs = []
        for zone_id in reg.zone_ids:
            stores = await self.db.stores_in_zone(zone_id)
            if not stores:
                zone = await self.orchestration.db.infra.get_zone(zone_id)
                raise invalid_value(f"Failed to find a secondary storage (image store) in zone {zone.name}")
            pairs.append((zone_id, stores[0].id))
        template, copies = await self.db.create_template(reg.values, pairs)
        self.log.info("registered {kind} {name} ({uuid}) in {zones} zone(s)", kind="ISO" if template.is_iso
                      else "template", name=template.name, uuid=template.uuid, zones=len(copies))
        # one attempt each, so that a slow ssvm does not hold the caller: the poller retries
        started = [await self.start_copy(template, c, retry=False) for c in copies]
        return template, started

    def download_request(self, template: Template, copy: TemplateCopy) -> DownloadRequest:
        max_size = max(self.orchestration.settings.int("max.template.iso.size"), 1) * GIB
        return DownloadRequest(
            url=copy.source_url, format=template.format.lower(), account_id=template.account_id,
            template_id=template.id, unique_name=f"{template.id}-{template.account_id}-{template.uuid[:8]}",
            checksum=template.checksum or None, name=template.name[:255],
            description=template.display_text[:1024] if template.display_text else None,
            hvm=template.requires_hvm, max_size=max_size)

    async def start_copy(self, template: Template, copy: TemplateCopy, retry: bool = True) -> TemplateCopy:
        """Ask the zone's ssvm to download the copy (again: idempotent); the copy as stored after. Without
        `retry`, one attempt (a failure that may pass leaves the copy to the poller)."""
        agent = self._agent(copy.zone_id)
        if agent is None:
            return copy
        try:
            request = self.download_request(template, copy)

            async def start(client: Any) -> DownloadStatus:
                status: DownloadStatus = await client.start_download(copy.download_id, request)
                return status

            status = await (agent.call(start) if retry else start(agent.client))
        except (MessageError, ValueError) as exc:
            await self._end(copy, "fail", f"the download was refused: {exc}")
        except ControlError as exc:
            if exc.status < 500 and exc.status != 404:
                await self._end(copy, "fail", exc.message or str(exc))
            else:
                self.log.warn("ssvm of zone {zone} could not start download {id}: {error}", zone=copy.zone_name,
                              id=copy.download_id, error=describe(exc))
        except Exception as exc:
            self.log.warn("ssvm of zone {zone} could not start download {id}: {error}", zone=copy.zone_name,
                          id=copy.download_id, error=describe(exc))
        else:
            await self.apply_status(copy, status)
        return await self.db.get_copy(copy.id)

    # -- progress ----------------------------------------------------------------------------------

    async def apply_status(self, copy: TemplateCopy, status: DownloadStatus) -> None:
        """Store what ssvm says of a copy's download."""
        if status.state == "DOWNLOADED":
            await self._end(copy, "downloaded", None, percent=100, install_path=status.install_path,
                            size=status.virtual_size, physical_size=status.physical_size,
                            checksum=status.checksum)
        elif status.state == "ERROR":
            await self._end(copy, "fail", status.error or "the download failed")
        elif status.state == "ABANDONED":
            await self._end(copy, "abandon", status.error or "the download was abandoned")
        else:
            percent = max(0, min(status.percent, 100))
            if copy.state == I.NOT_DOWNLOADED:
                await self.db.cas_copy_state(copy.id, [I.NOT_DOWNLOADED], I.DOWNLOAD_IN_PROGRESS, percent=percent,
                                             error=None)
            elif copy.state == I.DOWNLOAD_IN_PROGRESS and percent != copy.percent:
                await self.db.set_copy_progress(copy.id, percent)

    async def _end(self, copy: TemplateCopy, event: str, error: str | None, **values: Any) -> None:
        target = DOWNLOAD.next(copy.state, event)
        sources = [s.value for s in DOWNLOAD.sources(event)]
        if await self.db.cas_copy_state(copy.id, sources, target.value,
                                        error=None if error is None else error[:1024], **values):
            self.log.info("download {id} of zone {zone}: {state}{why}", id=copy.download_id, zone=copy.zone_name,
                          state=target.value, why="" if error is None else f" ({error})")

    def poll(self) -> Deferred[None]:
        """One tick: read every unfinished copy's status (a tick still running is not doubled)."""
        if self._polling is not None:
            return Deferred.fromCoroutine(_nothing())
        d = self._polling = Deferred.fromCoroutine(self._poll())

        def done(result: object) -> None:
            self._polling = None

        def failed(failure: Any) -> None:
            self.log.failure("download poll failed", failure)

        d.addErrback(failed)
        d.addBoth(done)
        return d

    async def _poll(self) -> None:
        by_zone: dict[int, list[TemplateCopy]] = {}
        for copy in await self.db.pending_copies():
            by_zone.setdefault(copy.zone_id, []).append(copy)
        for zone_id, copies in by_zone.items():
            agent = self._agent(zone_id)
            if agent is None:
                continue
            async with self._lock(zone_id):
                for copy in copies:
                    await self._poll_copy(agent, copy)

    async def _poll_copy(self, agent: ApplianceAgent[Any], copy: TemplateCopy) -> None:
        copy = await self.db.get_copy(copy.id)
        if copy.state not in I.PENDING:
            return
        if copy.state == I.NOT_DOWNLOADED:
            await self.start_copy(await self.db.get_template(copy.template_id), copy)
            return
        try:
            status = await agent.call(lambda c: c.download_status(copy.download_id))
        except ControlError as exc:
            if exc.status == 404:
                await self._lost(copy)
            else:
                self.log.warn("status of download {id}: {error}", id=copy.download_id, error=describe(exc))
            return
        except Exception as exc:
            self.log.warn("status of download {id}: {error}", id=copy.download_id, error=describe(exc))
            return
        await self.apply_status(copy, status)

    async def _lost(self, copy: TemplateCopy) -> None:
        """ssvm does not know the download (its state was lost): start it again or fail it."""
        if copy.restarts >= MAX_RESTARTS:
            await self._end(copy, "fail", LOST_TEXT)
            return
        self.log.warn("download {id} unknown to the ssvm of zone {zone}: starting it again", id=copy.download_id,
                      zone=copy.zone_name)
        if await self.db.cas_copy_state(copy.id, [copy.state], copy.state, restarts=copy.restarts + 1):
            template = await self.db.get_template(copy.template_id)
            await self.start_copy(template, await self.db.get_copy(copy.id))

    async def resync_zone(self, zone_id: int, agent: ApplianceAgent[Any]) -> None:
        """The zone's ssvm answers (again): read every unfinished download of the zone back at once, and
        delete the files of templates removed while it could not be reached."""
        known = {s.id: s for s in await agent.call(lambda c: c.downloads())}
        for download_id in await self.db.removed_downloads(zone_id, list(known)):
            try:
                await agent.call(_deleter(download_id))
                self.log.info("deleted download {id} of a removed template", id=download_id)
            except Exception as exc:
                self.log.warn("could not delete download {id}: {error}", id=download_id, error=describe(exc))
        pending = await self.db.pending_copies(zone_id)
        async with self._lock(zone_id):
            for copy in pending:
                copy = await self.db.get_copy(copy.id)
                if copy.state not in I.PENDING:
                    continue
                status = known.get(copy.download_id)
                if copy.state == I.NOT_DOWNLOADED:
                    await self.start_copy(await self.db.get_template(copy.template_id), copy)
                elif status is None:
                    await self._lost(copy)
                else:
                    await self.apply_status(copy, status)

    # -- deletion, extraction, copies --------------------------------------------------------------

    async def delete(self, template: Template, zone_id: int | None = None) -> list[TemplateCopy]:
        """Remove the template (or its copy in one zone) and its files in each zone's ssvm. Files of a
        zone whose ssvm does not answer now are deleted when it answers again (`resync_zone`)."""
        removed = await self.db.remove_template(template.id, zone_id)
        for copy in removed:
            agent = self._agent(copy.zone_id)
            if agent is None:
                self.log.warn("the ssvm of zone {zone} is not up: the files of download {id} stay in its store",
                              zone=copy.zone_name, id=copy.download_id)
                continue
            try:
                await agent.call(_deleter(copy.download_id))
            except Exception as exc:
                self.log.warn("could not delete download {id} in the ssvm of zone {zone}: {error}",
                              id=copy.download_id, zone=copy.zone_name, error=describe(exc))
        return removed

    async def extract_url(self, template: Template, copy: TemplateCopy) -> tuple[str, int]:
        """A signed, expiring URL of the copy's file from its zone's ssvm, and its expiry."""
        if not copy.ready or not copy.install_path:
            raise invalid_value(f"Unable to extract {template.name}: it is not ready in zone {copy.zone_name}")
        agent = self._agent(copy.zone_id)
        if agent is None:
            raise internal(f"The secondary storage VM of zone {copy.zone_name} is not available")
        ttl = self.orchestration.settings.int("extract.url.expiration.interval")
        path = copy.install_path
        try:
            signed = await agent.call(lambda c: c.sign_url(SignUrlRequest(path, ttl)))
        except CloudError:
            raise
        except Exception as exc:
            raise internal(f"The secondary storage VM could not sign a URL: {describe(exc)}") from None
        return signed.url, signed.expires

    async def copy_to_zone(self, template: Template, zone_id: int) -> TemplateCopy:
        """A copy of the template in another zone, downloaded there from the template's URL."""
        if not template.url:
            raise invalid_value(f"Unable to copy {template.name}: it has no source URL")
        stores = await self.db.stores_in_zone(zone_id)
        if not stores:
            zone = await self.orchestration.db.infra.get_zone(zone_id)
            raise invalid_value(f"Failed to find a secondary storage (image store) in zone {zone.name}")
        copy = await self.db.add_copy(template.id, zone_id, stores[0].id, template.url)
        return await self.start_copy(template, copy)

    def _lock(self, zone_id: int) -> DeferredLock:
        lock = self._locks.get(zone_id)
        if lock is None:
            lock = self._locks[zone_id] = DeferredLock()
        return lock


def _deleter(download_id: str) -> Callable[[Any], Awaitable[bool]]:
    async def delete(client: Any) -> bool:
        return bool(await client.delete_download(download_id))

    return delete


async def _nothing() -> None:
    return None
