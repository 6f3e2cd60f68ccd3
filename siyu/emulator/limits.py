"""Per-corp, per-API frequency limits (wecom-api.md §6): 10,000 calls/min and 150,000 calls/hour by default.

Exceeding a window blocks that corp's use of that API for the window's length (minute limit → 60 s, hour limit →
60 min), answering 45009 meanwhile. Windows are fixed and start at the first call after the previous one ended;
the blocked calls do not count. Tests configure tiny windows (e.g. 5 calls / 2 s) to hit the limit quickly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

DEFAULT_WINDOWS: tuple[tuple[int, float], ...] = ((10_000, 60.0), (150_000, 3600.0))


@dataclass
class _Counter:
    starts: list[float]
    counts: list[int]
    blocked_until: float = 0.0


@dataclass
class RateLimiter:
    windows: tuple[tuple[int, float], ...] = DEFAULT_WINDOWS
    _counters: dict[tuple[str, str], _Counter] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def configure(self, windows: list[tuple[int, float]]) -> None:
        for limit, seconds in windows:
            if limit < 1 or seconds <= 0:
                raise ValueError("each window needs a limit >= 1 and a positive length in seconds")
        with self._lock:
            self.windows = tuple((int(limit), float(seconds)) for limit, seconds in windows)
            self._counters.clear()

    def hit(self, corp_id: str, api: str, now: float) -> bool:
        """Count one call; False if the corp is (or just became) blocked for this API."""
        if not self.windows:
            return True
        with self._lock:
            counter = self._counters.get((corp_id, api))
            if counter is None:
                counter = _Counter(starts=[now] * len(self.windows), counts=[0] * len(self.windows))
                self._counters[(corp_id, api)] = counter
            if now < counter.blocked_until:
                return False
            blocked = False
            for i, (limit, seconds) in enumerate(self.windows):
                if now - counter.starts[i] >= seconds:
                    counter.starts[i], counter.counts[i] = now, 0
                counter.counts[i] += 1
                if counter.counts[i] > limit:
                    counter.blocked_until = max(counter.blocked_until, now + seconds)
                    blocked = True
            if blocked:
                # The block replaces the window: once it lifts, counting starts afresh.
                counter.starts = [counter.blocked_until] * len(self.windows)
                counter.counts = [0] * len(self.windows)
            return not blocked

    def describe(self) -> list[dict[str, float]]:
        return [{"limit": limit, "seconds": seconds} for limit, seconds in self.windows]
