"""The emulator's notion of "now": wall-clock time plus an offset that tests and the demo can push forward.

Token expiry (7200 s), welcome codes (20 s) and frequency-limit windows all read this clock, so a test can jump
21 seconds ahead (POST /emulator/clock) instead of sleeping. Injected latency and callback time-outs are real
time: they model the network, not WeCom's bookkeeping.
"""

from __future__ import annotations

import threading
import time


class Clock:
    def __init__(self, offset: float = 0.0) -> None:
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward (never back: WeCom's time does not run backwards); returns the new now()."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()

    @property
    def offset(self) -> float:
        return self._offset
