"""What command handlers return, and how each kind is laid out under the response name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ObjectResult:
    """One entity: `{"R": {"<object>": {...}}}`; in a job result `{"<object>": {...}}`."""

    object_name: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class ListResult:
    object_name: str
    items: list[dict[str, Any]]
    count: int


@dataclass(frozen=True)
class SuccessResult:
    displaytext: str | None = None


@dataclass(frozen=True)
class FlatResult:
    """Fields directly under the response name (login, logout, queryAsyncJobResult)."""

    fields: dict[str, Any]


Result = ObjectResult | ListResult | SuccessResult | FlatResult


@dataclass(frozen=True)
class Prepared:
    """The synchronous part of an async command: what the job acts on and serialises by."""

    instance_type: str | None = None
    instance_uuid: str | None = None
    sync_object: str | None = None
    created_id: str | None = None  # create-type commands answer this id at once
    state: dict[str, Any] = field(default_factory=dict)


def body_of(result: Result) -> dict[str, Any]:
    """The object placed under the response name."""
    if isinstance(result, ObjectResult):
        return {result.object_name: result.fields}
    if isinstance(result, ListResult):
        if not result.count:
            return {}
        if not result.items:
            return {"count": result.count}
        return {"count": result.count, result.object_name: result.items}
    if isinstance(result, SuccessResult):
        out: dict[str, Any] = {"success": True}
        if result.displaytext is not None:
            out["displaytext"] = result.displaytext
        return out
    return dict(result.fields)


def job_result_of(result: Result) -> dict[str, Any]:
    """The `jobresult` object of a finished job."""
    if isinstance(result, SuccessResult):
        out: dict[str, Any] = {"success": True}
        if result.displaytext is not None:
            out["details"] = result.displaytext
        return out
    return body_of(result)
