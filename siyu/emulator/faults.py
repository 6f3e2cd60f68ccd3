"""Fault injection for /cgi-bin/ calls: latency, 45009, 42001, HTTP 5xx and truncated bodies.

Configured at start-up (`siyu emulator --fault-...` or SIYU_EMULATOR_FAULT_* variables) and at run time
(POST /emulator/faults). Every /cgi-bin/ request draws the same number of values from one seeded generator
whatever is switched on, so with a given seed and request order the same requests fail, and switching one
fault kind on or off does not reshuffle which requests the others hit.

What each fault does to the request:
- latency: sleeps `latency_ms` (+ up to `latency_jitter_ms`) before answering;
- http_5xx: answers HTTP 503 with an HTML gateway page, without touching state (an overloaded front end);
- errcode_45009: answers errcode 45009 without touching state;
- errcode_42001: expires the caller's access_token (a later gettoken issues a new one) and answers 42001;
- truncate: runs the call (state changes happen) and cuts the JSON body in half, as a connection dropped
  mid-response looks to a JSON client; Content-Length matches the cut body so every HTTP client sees it.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

KINDS = ("http_5xx", "errcode_45009", "errcode_42001", "truncate")


@dataclass
class FaultConfig:
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    rate_http_5xx: float = 0.0
    rate_errcode_45009: float = 0.0
    rate_errcode_42001: float = 0.0
    rate_truncate: float = 0.0
    seed: int = 0
    # Only calls whose path starts with one of these prefixes are affected ([] = every /cgi-bin/ call).
    paths: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.latency_ms < 0 or self.latency_jitter_ms < 0:
            raise ValueError("latency must not be negative")
        for kind in KINDS:
            rate = getattr(self, f"rate_{kind}")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate_{kind} must be between 0 and 1")

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: FaultConfig | None = None) -> FaultConfig:
        """`base` updated with the keys of `data` (so a POST can switch one fault without restating the others)."""
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        values = asdict(base or cls())
        for key, value in data.items():
            if key == "paths":
                if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                    raise ValueError("paths must be a list of path prefixes")
                values[key] = value
            elif key.startswith("rate_"):
                values[key] = float(value)
            else:
                values[key] = int(value)
        config = cls(**values)
        config.validate()
        return config


@dataclass(frozen=True)
class Decision:
    latency_s: float = 0.0
    http_5xx: bool = False
    errcode_45009: bool = False
    errcode_42001: bool = False
    truncate: bool = False


class FaultInjector:
    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.config = FaultConfig()
        self._rng = random.Random(0)  # noqa: S311 - reproducible faults, not secrets
        self.injected: dict[str, int] = dict.fromkeys((*KINDS, "latency"), 0)
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        config.validate()
        with self._lock:
            self.config = config
            # Re-seeding on every change makes a test's run reproducible from the moment it configured faults.
            self._rng = random.Random(config.seed)  # noqa: S311

    def draw(self, path: str) -> Decision:
        with self._lock:
            config = self.config
            values = [self._rng.random() for _ in range(len(KINDS) + 1)]
            if config.paths and not any(path.startswith(p) for p in config.paths):
                return Decision()
            hits = {kind: values[i] < getattr(config, f"rate_{kind}") for i, kind in enumerate(KINDS)}
            latency = (config.latency_ms + values[-1] * config.latency_jitter_ms) / 1000.0
            self.injected["latency"] += int(latency > 0)
        return Decision(latency_s=latency, **hits)

    def record(self, kind: str) -> None:
        """Count a fault the server actually applied (a 5xx pre-empts the others, 42001 needs a token)."""
        with self._lock:
            self.injected[kind] += 1

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"config": asdict(self.config), "injected": dict(self.injected)}
