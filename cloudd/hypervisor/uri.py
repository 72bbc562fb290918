"""Which libvirt URIs name a host cloudd can manage, and what each kind of URI implies.

Accepted: `qemu:///system` (this machine's libvirtd), `qemu+ssh://`, `qemu+tls://` and `qemu+tcp://`
with a host name and the path `/system` (a remote host's libvirtd, reached through libvirt's own
remote protocol), and libvirt's in-process test driver, `test:///default` or `test:///<absolute path>`
of a node file (a simulated host). Query parameters (`?keyfile=`, `?socket=`, `?no_verify=`) are kept
for libvirt on the qemu URIs. Anything else is refused before libvirt sees it, and so is a URI with a
password in it: libvirt never takes passwords from a URI, and refusing them keeps credentials out of
every message and log line that names a host.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from cloudd.hypervisor.errors import HypervisorError

ACCEPTED = ("qemu:///system, qemu+ssh://<host>/system, qemu+tls://<host>/system, qemu+tcp://<host>/system, "
            "test:///default or test:///<absolute path of a node file>")
REMOTE_SCHEMES = ("qemu+ssh", "qemu+tls", "qemu+tcp")
MAX_URI_LENGTH = 2048

KVM = "KVM"
SIMULATOR = "Simulator"


@dataclass(frozen=True)
class HostUri:
    """A checked host URI."""

    uri: str
    hypervisor: str  # KVM or Simulator
    # a test:///<path> host's node file (local path, %-escapes decoded); None otherwise
    node_file: str | None
    # True when libvirt reaches the host through its remote driver (a libvirtd socket), where a
    # keepalive can notice a host that stops answering
    remote: bool


def _refuse(uri: str, why: str) -> HypervisorError:
    shown = uri if len(uri) <= 200 else uri[:200] + "..."
    return HypervisorError(f"unsupported host URI {shown!r}: {why}; accepted: {ACCEPTED}")


def parse_host_uri(uri: str) -> HostUri:
    """Check `uri` and describe it, or raise HypervisorError("unsupported host URI ...")."""
    if not isinstance(uri, str) or not uri:
        raise HypervisorError(f"unsupported host URI: empty; accepted: {ACCEPTED}")
    if len(uri) > MAX_URI_LENGTH:
        raise HypervisorError(f"unsupported host URI: longer than {MAX_URI_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in uri):
        raise _refuse(uri, "it contains spaces or control characters")
    try:
        parts = urlsplit(uri)
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        raise _refuse(uri, "it is not a valid URI") from None
    if parts.password is not None:
        # never echo the URI here: it holds the password
        raise HypervisorError("unsupported host URI: a password in the URI is not accepted "
                              "(use SSH keys or TLS certificates)")
    if parts.fragment:
        raise _refuse(uri, "a fragment is not accepted")
    scheme = parts.scheme.lower()
    if scheme == "test":
        return _parse_test(uri, parts)
    if scheme == "qemu":
        if parts.netloc:
            raise _refuse(uri, "qemu:// names this machine only; use qemu+ssh://, qemu+tls:// or qemu+tcp://")
        if parts.path != "/system":
            raise _refuse(uri, "only the /system instance of libvirtd is managed")
        return HostUri(uri, KVM, None, remote=True)
    if scheme in REMOTE_SCHEMES:
        if not parts.hostname:
            raise _refuse(uri, "a host name is needed")
        if port is not None and not 0 < port < 65536:
            raise _refuse(uri, "the port is out of range")
        if parts.path != "/system":
            raise _refuse(uri, "only the /system instance of libvirtd is managed")
        return HostUri(uri, KVM, None, remote=True)
    raise _refuse(uri, f"the scheme {parts.scheme!r} is not supported" if parts.scheme else "no scheme")


def _parse_test(uri: str, parts: SplitResult) -> HostUri:
    if parts.netloc:
        raise _refuse(uri, "test:// takes no host (write test:///<path>)")
    if parts.query:
        raise _refuse(uri, "test:// takes no query")
    if parts.path == "/default":
        return HostUri(uri, SIMULATOR, None, remote=False)
    path = unquote(parts.path)
    if not path.startswith("/") or path.startswith("//") or path.endswith("/"):
        raise _refuse(uri, "test:// needs the absolute path of a node file")
    if posixpath.normpath(path) != path:
        raise _refuse(uri, "the node file's path must be normalised (no '.', '..' or '//')")
    return HostUri(uri, SIMULATOR, path, remote=False)


def hypervisor_of(uri: str) -> str:
    """"Simulator" for a test:// URI, "KVM" for any other (the URI is not checked here)."""
    return SIMULATOR if uri[:5].lower() == "test:" else KVM
