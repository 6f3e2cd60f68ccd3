"""The emulator's notion of "now": wall-clock time plus an offset that tests and the demo can push forward.

Token expiry (7200 s), welcome codes (20 s), transfer windows (24 h) and frequency-limit windows all read this
clock, so a test can jump 21 seconds or a day ahead (POST /emulator/clock) instead of sleeping. Injected latency
and callback time-outs are real time: they model the network, not WeCom's bookkeeping.

`Clock(frozen_at=t)` stands still at t (plus whatever it is advanced by): two emulators given the same frozen
clock, seed and calls produce byte-identical events, which is how the simulator's determinism is tested.
"""

from __future__ import annotations

import threading
import time


class Clock:
    def __init__(self, offset: float = 0.0, *, frozen_at: float | None = None) -> None:
        self._offset = offset
        self._frozen_at = frozen_at
        self._lock = threading.Lock()

    def now(self) -> float:
        base = time.time() if self._frozen_at is None else self._frozen_at
        return base + self._offset

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

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None
