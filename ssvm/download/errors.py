"""The exceptions of the download package.

`DownloadFailed` and its subclasses end a download in ERROR; their text is operator-facing (it
becomes the status's `error`), so it never contains a URL's credentials or query string.
`DownloadRequestError` and `DownloadConflict` are answers to a bad `start` call.
"""

from __future__ import annotations


class DownloadRequestError(ValueError):
    """A start request is malformed; the text says which field and why."""


class DownloadConflict(Exception):
    """A download id (or an install directory) is already used by a different request."""


class DownloadFailed(Exception):
    """A download cannot complete. `retryable` marks failures worth another attempt with resume."""

    retryable = False


class AddressRefused(DownloadFailed):
    """The host resolves to an address the policy refuses."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        if host == address:
            text = f"refused: {address} ({reason})"
        else:
            text = f"refused: {host} resolves to {address} ({reason})"
        super().__init__(text)


class ResolutionFailed(DownloadFailed):
    """The host name did not resolve to any address."""


class URLRefused(DownloadFailed):
    """A URL (the first one or a redirect target) is not acceptable: scheme, syntax."""


class RedirectRefused(DownloadFailed):
    """Too many redirects, or a redirect without a usable Location."""


class HTTPStatusFailed(DownloadFailed):
    """The server answered with a status that ends the download."""


class SizeExceeded(DownloadFailed):
    """The body is (or announces to be) larger than the maximum size."""


class ChecksumMismatch(DownloadFailed):
    """The computed checksum differs from the requested one."""


class FormatRefused(DownloadFailed):
    """The content is not of the declared format, or is a refused variant of it."""


class TransferInterrupted(DownloadFailed):
    """The connection dropped or stalled before the body was complete; resuming may help."""

    retryable = True


class ResumeImpossible(DownloadFailed):
    """A download that was interrupted by a restart cannot be resumed."""
