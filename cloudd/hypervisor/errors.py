"""The exceptions of the libvirt driver: what callers catch, with messages safe to show to users.

Every libvirt failure reaches callers as a `HypervisorError` carrying libvirt's own message; when the
host itself cannot be reached (the connection is lost, cannot be made, or does not answer in time) it is
the subclass `HostUnreachable`, which the host monitor turns into a host state. Host URIs that carry a
password are refused before anything is opened, so no message ever contains a credential.
"""

from __future__ import annotations


class HypervisorError(Exception):
    """A libvirt call failed, or a request to the driver was invalid; the message is safe to show."""


class HostUnreachable(HypervisorError):
    """The host's libvirt does not answer: the connection is lost, cannot be made, or timed out."""
