"""The control messages cloudd and the appliances exchange (DESIGN.md §4), as typed models.

Each model is a frozen dataclass with `from_json(obj)`, which validates a decoded JSON body and
raises `MessageError` naming the offending field, and `to_json()`, which gives the JSON
`from_json` reads.  The appliances read every request body with these models and cloudd checks
every body before it sends it and every answer it reads with the same ones, so the two sides
cannot drift apart.

- `base`: `MessageError` and the field checks;
- `common`: `Health` and `Deleted`, answered by both appliances;
- `router`, `records`, `rules`: the virtual router's state, VM records, rules, updates, answers;
- `ssvm`, `checksum`, `configdrive`: the storage appliance's downloads, images, URLs and drives;
- `routes`: which model each control route reads and answers.

Only `MessageError` is imported here, so an appliance loads just the models it uses.
"""

from __future__ import annotations

from appliance.messages.base import MessageError

__all__ = ["MessageError"]
