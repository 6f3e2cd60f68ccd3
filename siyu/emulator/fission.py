"""The fission simulator (任务宝 模拟): participants, their invite tree and fraud, with the ground truth of rewards.

Deterministic for a seed: `plan()` draws who joins through the campaign's entry code (seeds), who invites whom (a few
inviters invite many), and which inviters cheat, and how:

| pattern      | what they do                                                       | ground truth           |
|--------------|--------------------------------------------------------------------|------------------------|
| honest       | friends scan the poster, each on their own phone, one per round    | counted unless deleted |
| self_once    | also adds another host guide through their own code (same account) | still rewarded         |
| self_twice   | does that with two more guides                                     | held for review        |
| farm         | every "friend" comes from one device (a phone farm)                | held for review        |
| own_device   | opens their own landing on their own phone for every "friend"      | held for review        |
| burst        | all friends in one round (more than 5 in 10 minutes)               | held for review        |
| quick_delete | two of three "friends" delete the guide within hours               | held for review        |

Honest invitees delete the guide within the hold now and then (at most one per inviter) and some invitees were
customers before the campaign: neither counts. The driver (`run`) performs it over HTTP: adds, deletes and the
clock through the emulator's admin API (each add fires a signed callback at siyu), the participant's page (which
makes their personal code) and the landing (which records the device) through siyu's public pages via `SiyuSide`.
Rounds are 4 emulator minutes apart, so honest inviters never look like a burst. The truth: per participant (by
external_userid) the reward tiers earned, and the inviters the anti-fraud rules must hold for review.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

HONEST = "honest"
FRAUD_PATTERNS = ("self_twice", "farm", "own_device", "burst", "quick_delete")
PATTERNS = (HONEST, "self_once", *FRAUD_PATTERNS)
ROUND_SECONDS = 240
QR_CONFIG = re.compile(r"/emulator/qr/([^/\"']+)\.svg")
SHARE_LINK = re.compile(r'id="share-link" href="([^"]+)"')
ALREADY = re.compile(r"is already a customer of ([^\s\"]+)")


class SimulatorCallError(RuntimeError):
    def __init__(self, path: str, status: int, text: str, *, retried: bool) -> None:
        super().__init__(f"emulator {path}: {status} {text}")
        self.text, self.retried = text, retried


@dataclass(frozen=True)
class FissionSpec:
    seed: int = 7
    participants: int = 10_000
    seeds: int = 300
    thresholds: tuple[int, ...] = (3, 10)
    # Shares of inviters by pattern (the rest are honest) and of invitees by behaviour.
    fraud_share: float = 0.04
    self_once_share: float = 0.03
    quick_delete_share: float = 0.04  # honest invitees who delete within the hold (at most one per inviter)
    existing_share: float = 0.03  # honest invitees who were customers before the campaign
    invite_share: float = 0.35  # participants who invite anyone


@dataclass
class Person:
    """One simulated WeChat user; `inviter` is the person whose poster they scanned (None for seeds)."""

    ext: str
    inviter: str | None = None
    pattern: str = HONEST
    invitees: list[str] = field(default_factory=list)
    existing: bool = False  # a customer of the brand before the campaign
    quick_delete: bool = False  # deletes the guide within the hold
    device: str = ""
    generation: int = 0


@dataclass
class Plan:
    spec: FissionSpec
    people: dict[str, Person]
    seeds: list[str]
    existing: list[str]

    def participants(self) -> list[str]:
        return [p.ext for p in self.people.values() if p.inviter is not None or p.ext in set(self.seeds)]

    def truth(self) -> Truth:
        """Who earns which tier (by invite goal) and who is held for review, by the campaign's published rules."""
        rewards: dict[str, list[int]] = {}
        flagged: set[str] = set()
        for person in self.people.values():
            if not person.invitees:
                continue
            if person.pattern in FRAUD_PATTERNS:
                flagged.add(person.ext)
                continue
            counted = sum(
                1 for ext in person.invitees if not self.people[ext].existing and not self.people[ext].quick_delete
            )
            earned = [t for t in self.spec.thresholds if t <= counted]
            if earned:
                rewards[person.ext] = earned
        return Truth(rewards=rewards, flagged=flagged, participants=len(self.participants()))


@dataclass(frozen=True)
class Truth:
    rewards: dict[str, list[int]]
    flagged: set[str]
    participants: int


def _invitee_count(rng: random.Random, pattern: str) -> int:
    if pattern in ("farm", "own_device", "burst", "quick_delete"):
        return rng.randint(6, 9)
    # Heavy-tailed: most invite 1-3, some 10-15 (the "seeds who invite many").
    roll = rng.random()
    if roll < 0.08:
        return rng.randint(10, 15)
    if roll < 0.3:
        return rng.randint(4, 8)
    return rng.randint(1, 3)


def plan(spec: FissionSpec) -> Plan:
    """Draw the whole campaign for `spec` (same seed, same plan)."""
    rng = random.Random(spec.seed)  # noqa: S311 - a reproducible simulation, not secrets
    people: dict[str, Person] = {}
    n = 0

    def person(**kwargs: Any) -> Person:
        nonlocal n
        n += 1
        p = Person(ext=f"wmfx{spec.seed:03d}p{n:06d}", device=f"device-{spec.seed:04d}-{n:08d}", **kwargs)
        people[p.ext] = p
        return p

    seeds = [person().ext for _ in range(spec.seeds)]
    existing_pool: list[str] = []
    frontier = list(seeds)
    generation = 0
    total = len(seeds)
    while total < spec.participants and frontier:
        generation += 1
        next_frontier: list[str] = []
        for ext in frontier:
            inviter = people[ext]
            if inviter.existing or rng.random() >= spec.invite_share:
                continue
            roll = rng.random()
            if roll < spec.fraud_share:
                inviter.pattern = FRAUD_PATTERNS[rng.randrange(len(FRAUD_PATTERNS))]
            elif roll < spec.fraud_share + spec.self_once_share:
                inviter.pattern = "self_once"
            count = _invitee_count(rng, inviter.pattern)  # never cut short: a cut burst is no burst
            deleted = False
            for k in range(count):
                if inviter.pattern == HONEST or inviter.pattern.startswith("self"):
                    existing = rng.random() < spec.existing_share
                    quick = not existing and not deleted and rng.random() < spec.quick_delete_share
                    deleted = deleted or quick
                elif inviter.pattern == "quick_delete":
                    existing, quick = False, k % 3 != 2  # two of every three delete
                else:
                    existing, quick = False, False
                invitee = person(inviter=ext, existing=existing, quick_delete=quick, generation=generation)
                if existing:
                    existing_pool.append(invitee.ext)
                inviter.invitees.append(invitee.ext)
                next_frontier.append(invitee.ext)
                total += 1
            if total >= spec.participants:
                break
        frontier = next_frontier
    return Plan(spec=spec, people=people, seeds=seeds, existing=existing_pool)


class SiyuSide(Protocol):
    """What the simulated people do on siyu's side (over HTTP in tests, through the participants' own pages)."""

    def participant_url(self, ext: str) -> str:
        """The participant's own page (the guide sends it to them); waits until siyu has processed their add."""
        ...

    def drain(self) -> None:
        """Wait until siyu has received and processed every callback the emulator fired."""
        ...


@dataclass
class Driver:
    """Runs a plan against the emulator (`emulator_url`) and siyu (`side`); HTTP everywhere."""

    plan: Plan
    emulator_url: str
    side: SiyuSide
    entry_config_id: str
    hosts: Sequence[str]  # the campaign's host guides (userids): self-invites add another one of them
    outsider: str  # a member outside the campaign: existing customers added them before it started
    threads: int = 8
    progress: Callable[[str, int, int], None] = lambda stage, done, total: None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))
    codes: dict[str, str] = field(default_factory=dict)  # ext → config_id of their personal code
    shares: dict[str, str] = field(default_factory=dict)  # ext → landing URL
    follows: dict[str, str] = field(default_factory=dict)  # ext → the guide they added when joining

    def admin(self, path: str, body: dict[str, Any] | None = None, *, retried: bool = False) -> dict[str, Any]:
        """One admin call; a connection the server dropped (a stale keep-alive, a busy machine) is tried again."""
        method = "POST" if body is not None else "GET"
        for attempt in range(4):
            try:
                response = self.http.request(method, f"{self.emulator_url}/emulator/{path}", json=body)
                break
            except httpx.TransportError:
                if attempt == 3:
                    raise
                retried = True
        if response.status_code != 200:
            raise SimulatorCallError(path, response.status_code, response.text[:300], retried=retried)
        return response.json()

    def advance(self, seconds: float) -> float:
        return float(self.admin("clock", {"advance": seconds})["now"])

    def _add(self, ext: str, config_id: str, userid: str = "") -> str:
        body: dict[str, Any] = {"config_id": config_id, "external_userid": ext, "name": f"客户{ext[-6:]}"}
        if userid:
            body["userid"] = userid
        try:
            result = self.admin("simulate/add_contact", body)
        except SimulatorCallError as exc:
            # A retried add whose first attempt went through: the emulator names the guide it was made with.
            done = ALREADY.search(exc.text) if exc.retried else None
            if done is None:
                raise
            return done.group(1)
        return str(result["userid"])

    def _parallel(self, stage: str, items: Sequence[Any], work: Callable[[Any], None]) -> None:
        done = 0
        with ThreadPoolExecutor(self.threads) as pool:
            for _ in pool.map(work, items):
                done += 1
                if done % 200 == 0 or done == len(items):
                    self.progress(stage, done, len(items))

    def before_campaign(self) -> None:
        """Customers the brand had before the campaign: they added a guide outside it."""
        self._parallel(
            "existing customers",
            self.plan.existing,
            lambda ext: self.admin(
                "simulate/add_contact", {"userid": self.outsider, "external_userid": ext, "name": f"老客{ext[-6:]}"}
            ),
        )

    def join_seeds(self) -> None:
        def join(ext: str) -> None:
            self.follows[ext] = self._add(ext, self.entry_config_id)

        self._parallel("seeds join", self.plan.seeds, join)
        self.side.drain()

    def _open_page(self, ext: str) -> None:
        """The inviter opens their page on their phone: siyu makes their code; the poster's link is on it."""
        person = self.plan.people[ext]
        share = SHARE_LINK.search(self._get(self.side.participant_url(ext), person.device))
        if share is None:
            raise RuntimeError(f"no share link on {ext}'s page")
        self.shares[ext] = share.group(1).replace("&amp;", "&")

    def _headers(self, device: str) -> dict[str, str]:
        # The device cookie the pages set, and a user agent: together the fingerprint siyu hashes.
        return {"Cookie": f"siyu_dev={device}", "User-Agent": f"Mozilla/5.0 (iPhone; sim {device[:6]})"}

    def _visit(self, inviter: Person, device: str) -> str:
        """A phone opens the inviter's landing (the poster's QR) and reads the contact code shown there."""
        found = QR_CONFIG.search(self._get(self.shares[inviter.ext], device))
        if found is None:
            raise RuntimeError(f"no contact code on {inviter.ext}'s landing")
        return found.group(1)

    def _invite(self, pair: tuple[str, str]) -> None:
        inviter_ext, invitee_ext = pair
        inviter, invitee = self.plan.people[inviter_ext], self.plan.people[invitee_ext]
        device = {
            "farm": f"farm-{inviter.ext}",
            "own_device": inviter.device,
        }.get(inviter.pattern, invitee.device)
        config_id = self._visit(inviter, device)
        self.follows[invitee_ext] = self._add(invitee_ext, config_id)

    def _self_invites(self, inviter: Person) -> list[tuple[str, str]]:
        times = {"self_once": 1, "self_twice": 2}.get(inviter.pattern, 0)
        others = [h for h in self.hosts if h != self.follows.get(inviter.ext)]
        return [(inviter.ext, userid) for userid in others[:times]]

    def run_generations(self) -> None:
        """Inviters open their pages, then invite round by round (4 minutes apart), generation by generation."""
        people = self.plan.people
        generation = [people[e] for e in self.plan.seeds]
        while generation:
            inviters = [p for p in generation if p.invitees]
            self._parallel("personal codes", [p.ext for p in inviters], self._open_page)
            rounds = max((len(p.invitees) for p in inviters if p.pattern != "burst"), default=1)
            for r in range(rounds):
                pairs = [
                    (p.ext, ext)
                    for p in inviters
                    for ext in (p.invitees if p.pattern == "burst" and r == 0 else p.invitees[r : r + 1])
                    if p.pattern != "burst" or r == 0
                ]
                self._parallel("invites", pairs, self._invite)
                if r == 0:
                    selfs = [s for p in inviters for s in self._self_invites(p)]
                    self._parallel("self-invites", selfs, lambda s: self._add(s[0], self.codes_of(s[0]), userid=s[1]))
                self.advance(ROUND_SECONDS)
            self.side.drain()
            # Quick deletes: a few hours after the adds, inside the 24-hour hold.
            self.advance(3 * 3600)
            leavers = [people[e] for p in inviters for e in p.invitees if people[e].quick_delete]
            self._parallel("quick deletes", leavers, self._delete)
            self.side.drain()
            generation = [people[e] for p in inviters for e in p.invitees if not people[e].existing]

    def _delete(self, person: Person) -> None:
        """The invitee deletes the guide they added (del_follow_user)."""
        body = {"userid": self.follows[person.ext], "external_userid": person.ext, "by": "customer"}
        try:
            self.admin("simulate/del_contact", body)
        except SimulatorCallError as exc:
            if not (exc.retried and "is not a customer of" in exc.text):
                raise

    def _get(self, url: str, device: str) -> str:
        """A page of siyu's, as the phone `device` opens it (a dropped connection is opened again).

        An error status raises httpx.HTTPStatusError naming the status, the URL and the start of the body (a 500's
        cause is in the server's log, which the test's failure report carries)."""
        for attempt in range(4):
            try:
                page = self.http.get(url, headers=self._headers(device))
            except httpx.TransportError:
                if attempt == 3:
                    raise
                continue
            if page.is_error:
                raise httpx.HTTPStatusError(
                    f"{page.status_code} {page.reason_phrase} from GET {url} (device {device}): {page.text[:1000]}",
                    request=page.request,
                    response=page,
                )
            return page.text
        raise AssertionError("unreachable")

    def codes_of(self, ext: str) -> str:
        """The inviter's own code, read from their landing (as a scan would)."""
        if ext not in self.codes:
            self.codes[ext] = self._visit(self.plan.people[ext], f"self-{ext}")
        return self.codes[ext]

    def run(self) -> Truth:
        self.before_campaign()
        self.side.drain()
        self.join_seeds()
        self.run_generations()
        return self.plan.truth()
