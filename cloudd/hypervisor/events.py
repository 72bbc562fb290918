"""libvirt's event loop, run on one daemon thread for the whole process, so keepalives work.

A connection to a libvirtd (local socket, SSH, TLS or TCP) notices a daemon that exits at once, because
its socket closes and the next call fails. It does not notice a host that stops answering (a cable
pulled, a frozen machine): a call would wait for TCP's own timeout, minutes long. libvirt's keepalive
(`virConnect.setKeepAlive`) closes such a connection after a few unanswered probes, which fails the calls
waiting on it, but it needs libvirt's event loop to be registered and run.

The loop is process-global in libvirt: `virEventRegisterDefaultImpl` is called once, before the first
connection to a libvirtd is opened, and `virEventRunDefaultImpl` then runs forever on a daemon thread
named "cloudd-libvirt-events". It never touches the reactor and holds no cloudd state; it is not
stopped (libvirt offers no way to unregister it) and dies with the process. The in-process test driver
does not need it, so it is started only when the first remote-driver connection is opened.
"""

from __future__ import annotations

import threading

import libvirt
from twisted.logger import Logger

log = Logger()

_lock = threading.Lock()
_thread: threading.Thread | None = None


def _ignore_error(_ctx: object, _err: object) -> None:
    """libvirt's default handler prints every error to stderr; errors reach cloudd as exceptions."""


def quiet_libvirt() -> None:
    """Stop libvirt from printing its errors to stderr (they are raised as libvirtError anyway).

    The handler is process-wide; it is set again before each connection is opened, in case other code
    replaced it."""
    libvirt.registerErrorHandler(_ignore_error, None)


def _run_forever() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except libvirt.libvirtError as exc:  # a failed poll(); keep the loop alive
            log.warn("libvirt event loop iteration failed: {error}", error=str(exc))


def ensure_event_loop() -> bool:
    """Register libvirt's default event loop and start its thread, once per process.

    Returns whether the loop runs. Blocking-free, but call it on the libvirt thread pool with the
    connection it precedes, like any libvirt call.
    """
    global _thread
    with _lock:
        if _thread is not None:
            return True
        try:
            libvirt.virEventRegisterDefaultImpl()
        except libvirt.libvirtError as exc:
            log.warn("libvirt event loop unavailable, keepalives are off: {error}", error=str(exc))
            return False
        thread = threading.Thread(target=_run_forever, name="cloudd-libvirt-events", daemon=True)
        thread.start()
        _thread = thread
        return True
