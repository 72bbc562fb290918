"""The answers both appliances give in the same shape: their health and a removal's outcome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.messages.base import MessageError, expect_bool, expect_int, expect_object, expect_str

__all__ = ["MAX_GENERATION", "Deleted", "Health", "check_members"]

#: The largest generation a message may carry (a signed 64-bit integer, as cloudd stores it).
MAX_GENERATION = 2**63 - 1


def check_members(obj: object, allowed: frozenset[str], required: frozenset[str] = frozenset(),
                  where: str = "") -> Mapping[str, Any]:
    """`obj` as a JSON object with no member outside `allowed` and every one of `required`."""
    if not isinstance(obj, Mapping):
        raise MessageError(where, "must be a JSON object" if where else "the body must be a JSON object")
    unknown = sorted(str(key) for key in obj if key not in allowed)
    if unknown:
        raise MessageError(where, f"unknown field(s): {', '.join(unknown)}")
    missing = sorted(required - set(obj))
    if missing:
        raise MessageError(where, f"missing field(s): {', '.join(missing)}")
    return obj


@dataclass(frozen=True)
class Health:
    """`GET /health`: the service's name, `ok`, and (the router) the generation it holds."""

    service: str
    status: str
    generation: int | None = None

    @classmethod
    def from_json(cls, obj: Any) -> Health:
        body = expect_object(obj, "health", {"service", "status", "generation"}, {"service", "status"})
        generation = body.get("generation")
        return cls(service=expect_str(body["service"], "service"), status=expect_str(body["status"], "status"),
                   generation=None if generation is None else expect_int(generation, "generation", 0,
                                                                          MAX_GENERATION))

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"service": self.service, "status": self.status}
        if self.generation is not None:
            answer["generation"] = self.generation
        return answer


@dataclass(frozen=True)
class Deleted:
    """The answer of a `DELETE` that has no generation: whether there was something to remove."""

    deleted: bool

    @classmethod
    def from_json(cls, obj: Any) -> Deleted:
        body = check_members(obj, frozenset({"deleted"}), frozenset({"deleted"}))
        return cls(deleted=expect_bool(body["deleted"], "deleted"))

    def to_json(self) -> dict[str, Any]:
        return {"deleted": self.deleted}
