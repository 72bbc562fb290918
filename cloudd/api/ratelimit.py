"""Fixed-window request counters (per account, per address, per login name), clock injected."""

from __future__ import annotations

from collections import OrderedDict

from twisted.internet.interfaces import IReactorTime

from cloudd.api.errors import throttled


class FixedWindowLimiter:
    """Counts hits per key in windows that start at the key's first hit, as CloudStack's limiter does."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._windows: OrderedDict[str, list[float]] = OrderedDict()  # key -> [window start, count]

    def _window(self, key: str, interval: float, cachesize: int) -> list[float]:
        now = self.clock.seconds()
        w = self._windows.get(key)
        if w is None or now - w[0] >= interval:
            w = [now, 0.0]
            self._windows[key] = w
            self._windows.move_to_end(key)
            while len(self._windows) > max(cachesize, 1):
                self._windows.popitem(last=False)
        return w

    def remaining_ms(self, key: str, interval: float) -> int:
        w = self._windows.get(key)
        if w is None:
            return 0
        return max(int((w[0] + interval - self.clock.seconds()) * 1000), 1)

    def hit(self, key: str, limit: int, interval: float, cachesize: int = 50000) -> None:
        """Count one request; raise a 429 ApiError when it exceeds `limit` in the window."""
        if limit <= 0:
            return
        w = self._window(key, interval, cachesize)
        w[1] += 1
        if w[1] > limit:
            raise throttled(self.remaining_ms(key, interval))

    def blocked(self, key: str, limit: int, interval: float) -> int:
        """Milliseconds until `key` may try again, or 0 when it is under `limit` (no hit counted)."""
        w = self._windows.get(key)
        if w is None or self.clock.seconds() - w[0] >= interval or w[1] < limit:
            return 0
        return self.remaining_ms(key, interval)

    def count(self, key: str, interval: float, cachesize: int = 50000) -> None:
        w = self._window(key, interval, cachesize)
        w[1] += 1

    def clear(self, key: str) -> None:
        self._windows.pop(key, None)
