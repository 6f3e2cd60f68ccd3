"""Anti-fraud rules of fission campaigns (反作弊): a score 0-100 per participant, from signals about their invites.

Pure functions over counts (no database), so the rules, their weights and their thresholds read in one place and
check-in or lottery campaigns can reuse them. `services.participant_rescore` gathers the signals. A participant at
or above the campaign's threshold (default 40) has their rewards held until an operator approves or rejects them.

Some invites never count whatever the score (the invite is rejected with a reason): self-invites (the same
customer or OneID identity as the inviter), invitees who were already customers, invites outside the campaign's
dates, and invitees who delete the guide within the hold. The score is about the inviter's *pattern*:

| signal         | when                                                                   | weight            |
|----------------|------------------------------------------------------------------------|-------------------|
| self_invite    | at least one self-invite                                               | 30, +10 each more |
| inviter_device | the inviter's own device (their page's cookie) opened their landing    | 40                |
| device_reuse   | one device opened the inviter's landing 3+ times                       | 30                |
| device_farm    | a device that opened 3+ participants' landings opened this one          | 30                |
| few_devices    | 4+ invites but fewer distinct landing devices than half of them        | 30                |
| velocity       | more than `velocity_max` invites within `velocity_minutes` (5 in 10')   | 40                |
| quick_deletes  | 3+ invitees deleted within the hold, and at least half of the invites   | 40                |
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

DEVICE_REUSE_VISITS = 3
DEVICE_FARM_PARTICIPANTS = 3
FEW_DEVICES_MIN_INVITES = 4
QUICK_DELETE_MIN = 3
MAX_SCORE = 100


@dataclass(frozen=True)
class Signals:
    """What is known about one participant's invites and landing visits."""

    self_invites: int = 0
    inviter_device_visits: int = 0
    max_visits_one_device: int = 0
    farm_devices: int = 0  # devices on this landing that also opened DEVICE_FARM_PARTICIPANTS+ landings
    invites: int = 0  # invites recorded (any status but self)
    distinct_devices: int = 0
    max_in_window: int = 0
    quick_deletes: int = 0  # invitees who deleted the guide within the hold (known as soon as they do)


@dataclass(frozen=True)
class Reason:
    code: str
    weight: int
    detail: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "weight": self.weight, **self.detail}


def score(signals: Signals, *, velocity_max: int) -> tuple[int, list[Reason]]:
    """The score (0-100) and the reasons adding up to it, heaviest first."""
    s = signals
    reasons: list[Reason] = []
    if s.self_invites:
        reasons.append(Reason("self_invite", min(60, 30 + 10 * (s.self_invites - 1)), {"count": s.self_invites}))
    if s.inviter_device_visits:
        reasons.append(Reason("inviter_device", 40, {"visits": s.inviter_device_visits}))
    if s.max_visits_one_device >= DEVICE_REUSE_VISITS:
        reasons.append(Reason("device_reuse", 30, {"visits": s.max_visits_one_device}))
    if s.farm_devices:
        reasons.append(Reason("device_farm", 30, {"devices": s.farm_devices}))
    if s.invites >= FEW_DEVICES_MIN_INVITES and s.distinct_devices * 2 < s.invites:
        reasons.append(Reason("few_devices", 30, {"invites": s.invites, "devices": s.distinct_devices}))
    if s.max_in_window > velocity_max:
        reasons.append(Reason("velocity", 40, {"invites": s.max_in_window, "limit": velocity_max}))
    if s.quick_deletes >= QUICK_DELETE_MIN and s.quick_deletes * 2 >= s.invites:
        reasons.append(Reason("quick_deletes", 40, {"count": s.quick_deletes, "invites": s.invites}))
    reasons.sort(key=lambda r: (-r.weight, r.code))
    return min(MAX_SCORE, sum(r.weight for r in reasons)), reasons


def max_in_window(times: Sequence[dt.datetime], window: dt.timedelta) -> int:
    """The largest number of `times` (any order) inside one window of length `window` (sliding, inclusive)."""
    ordered = sorted(times)
    best = start = 0
    for end, when in enumerate(ordered):
        while when - ordered[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best
