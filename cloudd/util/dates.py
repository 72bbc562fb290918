"""Date rendering as CloudStack serialises dates: yyyy-MM-dd'T'HH:mm:ssZ in UTC."""

from __future__ import annotations

import time


def cs_date(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(epoch))
