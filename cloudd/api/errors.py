"""API errors: the shared CloudError (as ApiError) and the refusals only the API layer makes."""

from __future__ import annotations

from cloudd.errors import (  # noqa: F401 (re-exported)
    CS_CONCURRENT_OPERATION,
    CS_INVALID_PARAMETER,
    CS_PERMISSION_DENIED,
    CS_RESOURCE_IN_USE,
    CS_RUNTIME,
    CS_SERVER_API,
    CloudError,
    concurrent,
    in_use,
    internal,
    invalid_value,
    malformed,
    param_error,
    permission_denied,
    unsupported,
)

ApiError = CloudError

CREDENTIALS_FAILED = "unable to verify user credentials and/or request signature"


def unauthorized(text: str = CREDENTIALS_FAILED) -> ApiError:
    return ApiError(401, text, None)


def unknown_command(name: str) -> ApiError:
    """A command name the signature path does not serve: still 401 without a cserrorcode, as CloudStack
    answers (libcloud raises `InvalidCredsError` on it), but a text that points at the name as well as
    at the keys. The same text whether the command does not exist or the caller may not use it: the
    credentials are not checked first, so it confirms neither to a caller who has none."""
    return ApiError(401, f"The API [{name[:64]}] may not exist or may not be available to this account, or "
                         f"{CREDENTIALS_FAILED}", None)


# --- requests refused before they are read as API calls (spec/api.md §1.2, §3.5) ---------------------

def bad_header(name: str) -> ApiError:
    """A header cloudd reads carries bytes that are not UTF-8: 400, a servlet-level refusal (no
    cserrorcode), answered before authentication and throttling."""
    return ApiError(400, f"Received a value that is not valid UTF-8 in header {name}", None)


def undecodable_parameter(name: str | None) -> ApiError:
    """A parameter name or value is not UTF-8 once percent-decoded: 431/9999, as a value with control
    characters is. `name` is None when the name itself cannot be decoded."""
    if name is None:
        return param_error("Received a parameter name that is not valid UTF-8")
    return param_error(f"Received value that is not valid UTF-8 for parameter {name[:64]}")


def too_many_parameters(limit: int) -> ApiError:
    """More parameters than `api.request.parameters.max`, counted before decoding: 431/9999."""
    return param_error(f"Too many parameters in the request: at most {limit} are accepted")


def body_too_large(limit: int) -> ApiError:
    """A body longer than `api.request.body.max.bytes`: 413, a servlet-level refusal (no cserrorcode)."""
    return ApiError(413, f"Request body larger than the limit of {limit} bytes", None)


def uri_too_long(limit: int) -> ApiError:
    """A request line over twisted.web's line limit: 414, a servlet-level refusal."""
    return ApiError(414, f"Request line longer than {limit} bytes; send long parameters in a POST body", None)


def head_too_large(limit: int) -> ApiError:
    """A header line over twisted.web's line limit: 431 (Request Header Fields Too Large), servlet-level."""
    return ApiError(431, f"Request header line longer than {limit} bytes", None)


def throttled(retry_ms: int) -> ApiError:
    return ApiError(429, f"The given user has reached his/her account api limit, please retry after "
                         f"[{retry_ms}] ms.", CS_SERVER_API, retry_after=max(retry_ms / 1000.0, 0.001))
