"""Errors that carry CloudStack's codes, raised by every layer of the management server.

Texts are built from names and identifiers only; a parameter's value appears in a text only where
CloudStack's own message names it and the parameter is not secret.
"""

from __future__ import annotations

# CloudStack exception codes (CSExceptionErrorCode)
CS_SERVER_API = 9999
CS_RUNTIME = 4250
CS_INVALID_PARAMETER = 4350
CS_PERMISSION_DENIED = 4365
CS_RESOURCE_IN_USE = 4375
CS_CONCURRENT_OPERATION = 4300


class CloudError(Exception):
    """A failure with CloudStack's error code (also the HTTP status) and cserrorcode; raised by any layer
    (the API renders it as the error envelope, the job runner stores it as the job's result)."""

    def __init__(self, code: int, text: str, cs_code: int | None = CS_SERVER_API,
                 uuid_list: tuple[tuple[str, str], ...] = (), retry_after: float | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.cs_code = cs_code
        self.uuid_list = uuid_list
        self.retry_after = retry_after

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {
            "uuidList": [{"uuid": u, "uuidProperty": p} for u, p in self.uuid_list],
            "errorcode": self.code,
        }
        if self.cs_code is not None:
            out["cserrorcode"] = self.cs_code
        out["errortext"] = self.text
        return out


def param_error(text: str) -> CloudError:
    """A parameter could not be bound (missing, malformed, too long): 431/9999."""
    return CloudError(431, text, CS_SERVER_API)


def invalid_value(text: str) -> CloudError:
    """A parameter was well-formed but not acceptable: 431/4350."""
    return CloudError(431, text, CS_INVALID_PARAMETER)


def malformed(text: str) -> CloudError:
    return CloudError(430, text, CS_SERVER_API)


def permission_denied(text: str) -> CloudError:
    return CloudError(531, text, CS_PERMISSION_DENIED)


def unsupported(text: str) -> CloudError:
    return CloudError(432, text, CS_SERVER_API)


def in_use(text: str) -> CloudError:
    return CloudError(536, text, CS_RESOURCE_IN_USE)


def concurrent(text: str) -> CloudError:
    return CloudError(530, text, CS_CONCURRENT_OPERATION)


def internal(text: str) -> CloudError:
    return CloudError(530, text, CS_RUNTIME)


MASKED = "Internal error executing command, please contact your system administrator"


def to_cloud_error(exc: BaseException, reveal: bool) -> CloudError:
    """The CloudError an exception from any layer answers with: a CloudError as it is, the storage
    layer's conflicts and misses as 431, anything else as a masked 530 (its type named only when
    `reveal`, for the root admin)."""
    from cloudd.db.base import Conflict, NotFound

    if isinstance(exc, CloudError):
        return exc
    if isinstance(exc, Conflict):
        return invalid_value(str(exc))
    if isinstance(exc, NotFound):
        return invalid_value("Unable to find the requested entity")
    if reveal:
        return internal(f"Internal error executing command: {type(exc).__name__}")
    return internal(MASKED)
