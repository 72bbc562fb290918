"""`DownloadManager`: the service that owns every template/ISO download of this appliance.

It owns the download records (one per download id, persisted as `state_dir/<id>.json` by a
`StateStore` on every transition and every `persist_interval` seconds while bytes arrive), the
background job of each running download, and the `template/tmpl` tree of the store root.

Life of a download (the state machine is in `ssvm.download.state`):

1. `start` validates the request, records it NOT_STARTED and launches a job;
2. the job creates the install directory and the partial file `dnld<random>tmp_` (under the tree
   lock, so `cleanup_invalid` never removes a directory being prepared) → DOWNLOADING;
3. a `Transfer` fetches the body into a `PartialFile` (written and hashed off the reactor thread);
4. the file is sniffed against the declared format and its checksum compared; the partial file
   becomes the image (0644) and `template.properties` is written atomically → DOWNLOADED;
5. any failure → ERROR with the text in `error` and the partial file removed; `cancel` →
   ABANDONED, partial removed.

`stopService` stops every transfer but keeps the bytes on disk and the record DOWNLOADING; the
next `startService` resumes each NOT_STARTED/DOWNLOADING record (re-hashing the partial file, then
`Range: bytes=N-`), or fails it to ERROR when it cannot (partial file gone, too many restarts,
server refusal) — a record is never left DOWNLOADING without a job. A record left DOWNLOADING
although its image was already installed (a crash between the install and the saving of
DOWNLOADED) is checked again from the installed file and recorded DOWNLOADED, or failed and its
directory removed.

Reading the state directory in `startService` is the only blocking file access on the reactor
thread (small local JSON files, once, before anything else runs). No URL- or name-derived string
ever reaches a shell or another process: the transfer is in-process and paths are built by
`layout` from integers, UUIDs and sanitised names.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredLock, gatherResults
from twisted.internet.interfaces import IHostnameResolver
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS

from ssvm.download import layout, properties, sniff
from ssvm.download.checksum import UNREQUESTED_ALGORITHM, format_checksum, matches, parse_checksum
from ssvm.download.endpoint import CheckedEndpointFactory
from ssvm.download.errors import (
    ChecksumMismatch,
    DownloadConflict,
    DownloadFailed,
    DownloadRequestError,
    ResumeImpossible,
)
from ssvm.download.fetch import Transfer, Validator
from ssvm.download.policy import AddressPolicy
from ssvm.download.request import check_download_id, parse_request
from ssvm.download.state import DownloadRecord, DownloadState
from ssvm.download.statestore import StateStore
from ssvm.download.urls import parse_url
from ssvm.download.writer import PartialFile

__all__ = ["DownloadConflict", "DownloadManager", "DownloadRequestError", "DEFAULT_MAX_SIZE"]

DEFAULT_MAX_SIZE = 50 * 2**30
Status = dict[str, Any]
StatusList = list[Status]
PathList = list[str]
SHUTDOWN, CANCEL = "shutdown", "cancel"


class _Job:
    """The running part of one download."""

    def __init__(self, record: DownloadRecord) -> None:
        self.record = record
        self.deferred: Deferred[None] | None = None
        self.writer: PartialFile | None = None
        self.transfer: Transfer | None = None
        self.stop_reason: str | None = None
        self.finishing = False  # past the point where cancelling the Deferred is safe
        self.waiters: list[Deferred[None]] = []
        self.saved_bytes = -1


class DownloadManager(Service):
    log = Logger()

    def __init__(self, store_root: str, state_dir: str, reactor: Any, pool: ThreadPool, policy: AddressPolicy,
                 *, max_size: int = DEFAULT_MAX_SIZE, max_redirects: int = 5,
                 resolver: IHostnameResolver | None = None, tls: IPolicyForHTTPS | None = None,
                 persist_interval: float = 5.0, retries: int = 2, retry_delay: float = 1.0,
                 max_restarts: int = 5, idle_timeout: float = 120.0, durable: bool = True) -> None:
        self.store_root = os.path.abspath(store_root)
        self._reactor = reactor
        self._pool = pool
        self.policy = policy
        self.max_size = max_size
        self.max_redirects = max_redirects
        self.retries = retries
        self.retry_delay = retry_delay
        self.max_restarts = max_restarts
        self.idle_timeout = idle_timeout
        self.durable = durable
        self._agent = Agent.usingEndpointFactory(
            reactor, CheckedEndpointFactory(reactor, policy, resolver=resolver, tls=tls),
            pool=HTTPConnectionPool(reactor, persistent=False))
        self._store = StateStore(reactor, pool, state_dir)
        self._records: dict[str, DownloadRecord] = {}
        self._jobs: dict[str, _Job] = {}
        self._tree_lock = DeferredLock()
        self._images: dict[str, Status] = {}
        self._background: set[Deferred[Any]] = set()
        self._persist_interval = persist_interval
        self._progress = LoopingCall(self._persist_progress)
        self._progress.clock = reactor

    # -- service -----------------------------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802
        super().startService()
        values, broken = self._store.load()
        for name in broken:
            self.log.warn("state file {name} is unreadable; ignored", name=name)
        for value in values:
            try:
                record = DownloadRecord.from_json(value)
            except (KeyError, TypeError, ValueError) as exc:
                self.log.warn("state record {id} is malformed ({error}); ignored",
                              id=value.get("id"), error=str(exc))
                continue
            self._records[record.id] = record
        self._progress.start(self._persist_interval, now=False)
        for record in list(self._records.values()):
            if not record.state.final:
                self._launch(record, resume=True)
        self._spawn(self.cleanup_invalid(), "removing invalid template directories")

    def stopService(self) -> Deferred[Any]:  # noqa: N802
        super().stopService()
        if self._progress.running:
            self._progress.stop()
        waits = []
        for job in list(self._jobs.values()):
            if job.stop_reason is None:
                job.stop_reason = SHUTDOWN
            if not job.finishing and job.deferred is not None:
                job.deferred.cancel()
            waits.append(self._wait_job(job))
        waits.extend(self._observe(d) for d in list(self._background))
        return gatherResults(waits, consumeErrors=True)

    def _observe(self, d: Deferred[Any]) -> Deferred[None]:
        """A fresh Deferred that fires (with None) when `d` does, leaving `d`'s result alone."""
        observer: Deferred[None] = Deferred()

        def fire(result: object) -> object:
            observer.callback(None)
            return result

        d.addBoth(fire)
        return observer

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], what: str) -> Deferred[Any]:
        """Run `coroutine` as an owned background task: errors logged, awaited by `stopService`."""
        d = Deferred.fromCoroutine(coroutine)
        self._background.add(d)

        def failed(failure: Failure) -> None:
            self.log.failure("{what} failed", failure, what=what)

        d.addErrback(failed)
        d.addBoth(lambda _: self._background.discard(d))
        return d

    # -- the public API ------------------------------------------------------------------------------

    def start(self, download_id: str, request: object) -> dict[str, Any]:
        """Start (or, for the same id and request, look up) a download; return its status."""
        check_download_id(download_id)
        parsed = parse_request(request, max_size=self.max_size)
        existing = self._records.get(download_id)
        if existing is not None:
            if existing.request != parsed:
                raise DownloadConflict(f"download {download_id} exists with a different request")
            return self._status(existing)
        directory = layout.install_directory(parsed.account_id, parsed.template_id)
        for other in self._records.values():
            if other.directory == directory and other.state not in (DownloadState.ERROR, DownloadState.ABANDONED):
                raise DownloadConflict(f"{directory} is already used by download {other.id}")
        now = self._reactor.seconds()
        record = DownloadRecord(
            id=download_id, request=parsed, directory=directory,
            file_name=layout.file_name_for(parsed.format, parsed.name or parsed.unique_name),
            temp_name=layout.temp_file_name(), created=now, updated=now,
            history=[DownloadState.NOT_STARTED.value])
        self._records[download_id] = record
        self.log.info("download {id} requested: {image_format} from {url} into {directory}", id=download_id,
                      image_format=parsed.format, url=parse_url(parsed.url).for_log, directory=directory)
        self._store.save(record.id, record.to_json())
        if self.running:
            self._launch(record, resume=False)
        return self._status(record)

    def status(self, download_id: str) -> dict[str, Any] | None:
        record = self._records.get(download_id)
        return None if record is None else self._status(record)

    def list(self) -> StatusList:
        return [self._status(record) for record in sorted(self._records.values(), key=lambda r: r.created)]

    def cancel(self, download_id: str) -> dict[str, Any] | None:
        """Abandon a download: ABANDONED at once, the transfer stopped and the partial file removed."""
        record = self._records.get(download_id)
        if record is None:
            return None
        if record.state.final:
            return self._status(record)
        record.move_to(DownloadState.ABANDONED, self._reactor.seconds())
        self.log.info("download {id} cancelled", id=download_id)
        self._store.save(record.id, record.to_json())
        job = self._jobs.get(download_id)
        if job is not None:
            job.stop_reason = CANCEL
            if not job.finishing and job.deferred is not None:
                job.deferred.cancel()
        else:
            self._spawn(self._remove_partial(record), f"removing the partial file of {download_id}")
        return self._status(record)

    async def delete(self, download_id: str) -> bool:
        """Cancel, then forget the download and remove its install directory."""
        record = self._records.get(download_id)
        if record is None:
            return False
        self.cancel(download_id)
        job = self._jobs.get(download_id)
        if job is not None:
            await self._wait_job(job)
        if self._records.get(download_id) is not record:
            return False
        del self._records[download_id]
        await self._store.remove(download_id)
        if not any(other.directory == record.directory for other in self._records.values()):
            self._images.pop(record.directory, None)
            await self._tree_lock.acquire()
            try:
                await self._in_pool(layout.remove_directory, self.store_root, record.directory)
            finally:
                self._tree_lock.release()
        self.log.info("download {id} deleted", id=download_id)
        return True

    def wait(self, download_id: str) -> Deferred[dict[str, Any] | None]:
        """Fires with the status once the download has no running job (a fresh Deferred per call)."""
        job = self._jobs.get(download_id)
        d: Deferred[None] = self._wait_job(job) if job is not None else Deferred()
        if job is None:
            d.callback(None)
        return d.addCallback(lambda _: self.status(download_id))

    def images(self) -> StatusList:
        """The valid templates and ISOs on the store (`template/tmpl/*/*/template.properties`), as
        of the last scan (`refresh_images`, run by `cleanup_invalid` at start) plus the downloads
        installed and deleted since. Answered from memory: no file access on the reactor thread."""
        return [self._images[key] for key in sorted(self._images)]

    async def refresh_images(self) -> StatusList:
        """Scan the store again (in the pool) and return `images()`."""
        scanned = await self._in_pool(layout.scan, self.store_root)
        self._set_images(scanned)
        return self.images()

    def _set_images(self, scanned: Sequence[layout.ScannedDirectory]) -> None:
        self._images = {entry.directory: entry.image() for entry in scanned if entry.valid}

    async def cleanup_invalid(self) -> PathList:
        """Remove every install directory that fails the loader-validity rule and that no running
        download uses; return their relative paths (spec §10, §16.11)."""
        await self._tree_lock.acquire()
        try:
            scanned = await self._in_pool(layout.scan, self.store_root)
            self._set_images(scanned)
            in_use = {record.directory for record in self._records.values() if not record.state.final}
            removed = []
            for entry in scanned:
                if entry.valid or entry.directory in in_use:
                    continue
                await self._in_pool(layout.remove_directory, self.store_root, entry.directory)
                self.log.info("removed invalid template directory {directory}: {problems}",
                              directory=entry.directory, problems="; ".join(entry.problems))
                removed.append(entry.directory)
            return removed
        finally:
            self._tree_lock.release()

    async def capacity(self) -> dict[str, int]:
        """`{"total", "free", "used_by_store"}` in bytes, for the store root's file system."""
        os_capacity: dict[str, int] = await self._in_pool(layout.capacity, self.store_root)
        return os_capacity

    # -- status -------------------------------------------------------------------------------------

    def _status(self, record: DownloadRecord) -> dict[str, Any]:
        job = self._jobs.get(record.id)
        received = record.bytes
        total = record.total
        if job is not None and job.writer is not None and record.state is DownloadState.DOWNLOADING:
            received = job.writer.received
            if job.transfer is not None and job.transfer.total is not None:
                total = job.transfer.total
        if record.state is DownloadState.DOWNLOADED:
            percent = 100
        else:
            denominator = total if total else record.request.max_size
            percent = min(100, received * 100 // denominator) if denominator else 0
        return {
            "id": record.id,
            "state": record.state.value,
            "percent": int(percent),
            "bytes": received,
            "total": total,
            "error": record.error,
            "install_path": record.install_path if record.state is DownloadState.DOWNLOADED else None,
            "physical_size": record.physical_size,
            "virtual_size": record.virtual_size,
            "checksum": record.checksum,
            "format": record.request.format,
            "url": parse_url(record.request.url).for_status,
        }

    # -- jobs ---------------------------------------------------------------------------------------

    def _in_pool(self, function: Any, *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, self._pool, function, *args)

    def _save(self, record: DownloadRecord) -> Deferred[None]:
        return self._store.save(record.id, record.to_json())

    async def _move(self, record: DownloadRecord, state: DownloadState, error: str | None = None) -> None:
        record.move_to(state, self._reactor.seconds(), error)
        await self._save(record)

    def _launch(self, record: DownloadRecord, *, resume: bool) -> None:
        job = _Job(record)
        self._jobs[record.id] = job
        job.deferred = Deferred.fromCoroutine(self._run(job, resume=resume))

        def crashed(failure: Failure) -> None:
            self.log.failure("download {id} crashed", failure, id=record.id)

        def ended(_: object) -> None:
            if self._jobs.get(record.id) is job:
                del self._jobs[record.id]
            waiters, job.waiters = job.waiters, []
            for waiter in waiters:
                waiter.callback(None)

        job.deferred.addErrback(crashed)
        job.deferred.addBoth(ended)

    def _wait_job(self, job: _Job) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        if job.deferred is None or self._jobs.get(job.record.id) is not job:
            waiter.callback(None)
        else:
            job.waiters.append(waiter)
        return waiter

    def _persist_progress(self) -> None:
        try:
            for job in self._jobs.values():
                record = job.record
                if record.state is not DownloadState.DOWNLOADING or job.writer is None:
                    continue
                self._update_from_transfer(job)
                if record.bytes != job.saved_bytes:
                    job.saved_bytes = record.bytes
                    record.updated = self._reactor.seconds()
                    self._save(record)
        except Exception:
            self.log.failure("persisting download progress failed")

    def _update_from_transfer(self, job: _Job) -> None:
        record = job.record
        if job.writer is not None and job.writer.opened:
            record.bytes = job.writer.received
        if job.transfer is not None:
            validator = job.transfer.validator
            record.total = job.transfer.total
            record.etag, record.last_modified = validator.etag, validator.last_modified

    async def _run(self, job: _Job, *, resume: bool) -> None:
        record = job.record
        try:
            if resume and record.state is DownloadState.DOWNLOADING and \
                    await self._in_pool(self._installed_before_crash, record):
                job.finishing = True
                await self._adopt(job)
                return
            await self._transfer(job, resume=resume)
            job.finishing = True
            await self._install(job)
        except CancelledError:
            job.finishing = True
            if job.stop_reason == SHUTDOWN:
                await self._suspend(job)
            elif job.stop_reason == CANCEL:
                await self._discard(job)
            else:
                await self._fail(job, "the transfer was cancelled unexpectedly")
        except DownloadFailed as exc:
            job.finishing = True
            await self._fail(job, str(exc))
        except Exception as exc:
            job.finishing = True
            self.log.failure("download {id} failed unexpectedly", id=record.id)
            await self._fail(job, f"internal error: {exc.__class__.__name__}")

    async def _transfer(self, job: _Job, *, resume: bool) -> None:
        record = job.record
        request = record.request
        expected = parse_checksum(request.checksum) if request.checksum else None
        algorithm = expected.algorithm if expected is not None else UNREQUESTED_ALGORITHM
        directory = os.path.join(self.store_root, record.directory)
        writer = PartialFile(self._reactor, self._pool, os.path.join(directory, record.temp_name), algorithm)
        job.writer = writer
        url = parse_url(request.url)
        if resume and record.state is DownloadState.DOWNLOADING:
            record.restarts += 1
            if record.restarts > self.max_restarts:
                raise ResumeImpossible(f"interrupted by {record.restarts} restarts; giving up")
            offset = await writer.open(resume=True)
            self.log.info("download {id} resumes at byte {offset} of {url}", id=record.id, offset=offset,
                          url=url.for_log)
            await self._save(record)
        else:
            await self._tree_lock.acquire()
            try:
                await self._in_pool(self._prepare, record)
                await writer.open(resume=False)
            finally:
                self._tree_lock.release()
            await self._move(record, DownloadState.DOWNLOADING)
            self.log.info("download {id} started from {url}", id=record.id, url=url.for_log)
        transfer = Transfer(
            self._agent, self._reactor, url, writer, max_size=request.max_size,
            max_redirects=self.max_redirects, retries=self.retries, retry_delay=self.retry_delay,
            idle_timeout=self.idle_timeout,
            validator=Validator(record.etag, record.last_modified, record.total),
            check_head=functools.partial(sniff.check_head, request.format))
        job.transfer = transfer
        await transfer.run()
        self._update_from_transfer(job)

    def _installed_before_crash(self, record: DownloadRecord) -> bool:
        """Whether the image was installed (partial file renamed, `template.properties` valid and
        naming it) but the appliance stopped before DOWNLOADED was recorded."""
        directory = os.path.join(self.store_root, record.directory)
        if os.path.exists(os.path.join(directory, record.temp_name)) or \
                not os.path.isfile(os.path.join(directory, record.file_name)):
            return False
        try:
            with open(os.path.join(directory, properties.FILE_NAME), encoding="latin-1") as f:
                values = properties.parse(f.read())
        except (OSError, ValueError):
            return False
        return not properties.problems(values) and values.get("filename") == record.file_name

    async def _adopt(self, job: _Job) -> None:
        """Finish a download whose image was installed just before a crash: re-read the installed
        file (hash, head and tail) and check it exactly as a fresh install is checked."""
        record = job.record
        request = record.request
        algorithm = parse_checksum(request.checksum).algorithm if request.checksum else UNREQUESTED_ALGORITHM
        writer = PartialFile(self._reactor, self._pool,
                             os.path.join(self.store_root, record.directory, record.file_name), algorithm)
        job.writer = writer
        await writer.open(resume=True)
        self.log.info("download {id} was installed before the last stop; checking it", id=record.id)
        try:
            await self._install(job, installed=True)
        except DownloadFailed:
            await self._in_pool(layout.remove_directory, self.store_root, record.directory)
            raise

    def _prepare(self, record: DownloadRecord) -> None:
        layout.prepare_directory(self.store_root, record.directory)
        layout.remove_file(os.path.join(self.store_root, record.directory, record.temp_name))

    async def _install(self, job: _Job, *, installed: bool = False) -> None:
        """Check the finished file and make it the image; `installed`: it is in place already."""
        record = job.record
        request = record.request
        writer = cast(PartialFile, job.writer)
        size, digest, tail = await writer.finish(durable=self.durable)
        record.bytes = size
        info = sniff.inspect(request.format, writer.head, tail, size)
        computed = format_checksum(writer.algorithm, digest)
        if request.checksum is not None:
            expected = parse_checksum(request.checksum)
            if not matches(expected, digest):
                raise ChecksumMismatch(f"checksum {computed} didn't match the requested {expected}")
        if record.state is not DownloadState.DOWNLOADING:  # cancelled meanwhile
            await self._discard(job)
            return
        values = properties.template_properties(
            file_name=record.file_name, format=request.format, physical_size=size,
            virtual_size=info.virtual_size, template_id=request.template_id, unique_name=request.unique_name,
            description=request.description, hvm=request.hvm)
        text = properties.render(values, datetime.fromtimestamp(self._reactor.seconds(), UTC))
        if not installed:
            await self._in_pool(layout.install, self.store_root, record.directory, record.temp_name,
                                record.file_name, text)
        if record.state is not DownloadState.DOWNLOADING:  # cancelled while installing
            await self._in_pool(layout.remove_directory, self.store_root, record.directory)
            return
        record.physical_size, record.virtual_size, record.checksum = size, info.virtual_size, computed
        record.error = None
        self._images[record.directory] = {
            "id": request.template_id, "account_id": request.account_id, "install_path": record.install_path,
            "format": request.format, "physical_size": size, "virtual_size": info.virtual_size,
            "unique_name": request.unique_name}
        await self._move(record, DownloadState.DOWNLOADED)
        self.log.info("download {id} installed at {path}: {size} bytes, virtual {virtual}, {checksum}",
                      id=record.id, path=record.install_path, size=size, virtual=info.virtual_size,
                      checksum=computed)

    async def _suspend(self, job: _Job) -> None:
        """Shutdown: keep the partial file and the DOWNLOADING record for the next start."""
        record = job.record
        if job.writer is not None:
            await job.writer.close_keeping_data()
        self._update_from_transfer(job)
        if not record.state.final:
            await self._save(record)
        self.log.info("download {id} suspended at byte {offset}", id=record.id, offset=record.bytes)

    async def _discard(self, job: _Job) -> None:
        """Cancel: stop writing and remove the partial file (the record is ABANDONED already)."""
        if job.writer is not None:
            await job.writer.close()
        await self._remove_partial(job.record)
        await self._save(job.record)  # the job ends only once its final state is on disk

    async def _fail(self, job: _Job, text: str) -> None:
        """ERROR with `text`, made visible only once the partial file is gone: a client that sees the
        ERROR finds no partial file left."""
        record = job.record
        publish = not record.state.final
        if publish:
            self._update_from_transfer(job)
        try:
            if job.writer is not None:
                await job.writer.close()
            await self._remove_partial(record)
        finally:
            if publish and not record.state.final:
                await self._move(record, DownloadState.ERROR, text)
                self.log.warn("download {id} failed: {error}", id=record.id, error=text)

    async def _remove_partial(self, record: DownloadRecord) -> None:
        await self._tree_lock.acquire()
        try:
            await self._in_pool(layout.discard_partial, self.store_root, record.directory, record.temp_name)
        finally:
            self._tree_lock.release()
