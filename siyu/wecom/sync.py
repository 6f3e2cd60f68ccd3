"""`siyu sync`: pull a brand's WeCom data into siyu — members, corp tags, contacts with follow relations, groups.

Phases run in this order, each feeding the next:

* members  — department/list, then user/list per department → guides (by userid); members WeCom no longer lists
             are marked departed, never deleted.
* tags     — get_corp_tag_list → the tag catalogue (groups and tags by WeCom id); tags gone from WeCom are removed.
* contacts — get_follow_user_list, then batch/get_by_user for 100 members at a time, page by page with the cursor
             → customers (found by external_userid, else unionid, else created), identities, follow relations
             (remark, add_way, state, createtime); at the end each customer's WeCom tags (the union over its
             followers) and the relations WeCom no longer lists (the guide deleted the customer).
* groups   — groupchat/list by owner (100 owners a query, cursor) and groupchat/get per chat → customer groups
             with their members; groups WeCom no longer lists are dismissed.

Resumable: every page is written in one transaction together with the run's checkpoint (cursor, batch,
department index) and counts (`SyncRun`), so a run that fails or is killed continues from its last committed page
the next time `siyu sync` runs with the same phases. What a phase saw is kept in scratch rows (`SyncSeen`) so the
end of the phase can tell what vanished even when its pages were fetched by several attempts.
Idempotent: every write compares with what siyu has and changes only the difference; a second run changes nothing,
appends no event and writes no audit row besides the run's own.
Robust: the client retries rate limits, system busy, 5xx, timeouts and truncated bodies, and refreshes an expired
token; a call that still fails is retried a few more times here before the run stops (and can be resumed).

All writes go through the services of the context that owns the data; this module fetches, pages and keeps the
checkpoint.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar

from django.db import transaction
from django.utils import timezone

from siyu.core import services as core_services
from siyu.core.errors import SiyuError
from siyu.core.models import Role
from siyu.core.scopes import Actor
from siyu.core.selectors import guide_list
from siyu.customers import services as customer_services
from siyu.customers.models import FollowRelation
from siyu.customers.selectors import follow_relation_list
from siyu.groups import services as group_services
from siyu.groups.selectors import group_chat_ids
from siyu.tags import services as tag_services
from siyu.tags.selectors import tag_group_list, tag_list
from siyu.wecom import services, transport
from siyu.wecom.client import CorpTagGroup, GroupChat, WeComClient
from siyu.wecom.errors import WeComAPIError
from siyu.wecom.models import SyncRun, WeComConnection
from siyu.wecom.selectors import connection_client, sync_seen

logger = logging.getLogger(__name__)

T = TypeVar("T")

PHASES = services.SYNC_PHASES
# Worth another try after the client's own retries gave up: system busy, no usable answer, a token rejected
# twice, rate limits (a minute's block outlasts the client's backoff).
TRANSIENT = frozenset({-1, -2, 40014, 42001, 45009, 45033})
INVALID_CURSOR = 50100
# user/list status: 1 active, 2 disabled, 4 not yet activated, 5 resigned. Not-yet-activated members can already
# hold customers once they log in; disabled and resigned ones serve nobody.
ACTIVE_MEMBER_STATUSES = frozenset({1, 4})


class SyncReporter(Protocol):
    """Where a sync reports progress (the command's progress bars; nothing in tests and jobs)."""

    def run_start(self, run: SyncRun, *, resumed: bool) -> None: ...

    def phase_start(self, phase: str, *, total: int | None, completed: int) -> None: ...

    def phase_advance(self, phase: str, *, advance: int, note: str = "") -> None: ...

    def phase_end(self, phase: str, *, counts: Mapping[str, int]) -> None: ...


class NullReporter:
    def run_start(self, run: SyncRun, *, resumed: bool) -> None:
        pass

    def phase_start(self, phase: str, *, total: int | None, completed: int) -> None:
        pass

    def phase_advance(self, phase: str, *, advance: int, note: str = "") -> None:
        pass

    def phase_end(self, phase: str, *, counts: Mapping[str, int]) -> None:
        pass


ClientFactory = Callable[[WeComConnection], WeComClient]


@dataclass
class SyncOptions:
    phases: Sequence[str] = PHASES
    restart: bool = False  # abandon an unfinished run instead of resuming it
    force: bool = False  # take over a run whose heartbeat is still fresh
    requested_by: int | None = None
    reporter: SyncReporter = field(default_factory=NullReporter)
    client_factory: ClientFactory = connection_client
    userid_batch: int = 100  # batch/get_by_user and groupchat/list take at most 100 members
    contact_page: int = 100  # batch/get_by_user clamps its limit to 100
    group_page: int = 100  # chats listed (and then read one by one) per committed page
    call_attempts: int = 3  # tries of a call whose client-side retries gave up on a transient error
    retry_delay: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    # Called after each committed page with (phase, pages committed in that phase): lets tests interrupt a run
    # at an exact point. Not for production use.
    after_page: Callable[[str, int], None] | None = None


def sync_run(*, tenant_id: int, options: SyncOptions | None = None) -> SyncRun:
    """Run (or resume) a sync of the brand; returns the finished run.

    Raises services.SyncBusy when another sync of the brand is alive, and re-raises whatever stopped the run
    after recording it on the run (status failed, error), so the next call resumes it.
    """
    options = options or SyncOptions()
    run, resumed = services.sync_run_open(
        tenant_id=tenant_id,
        phases=options.phases,
        restart=options.restart,
        force=options.force,
        requested_by=options.requested_by,
    )
    options.reporter.run_start(run, resumed=resumed)
    try:
        with options.client_factory(run.connection) as client:
            _Sync(run, client, options).run()
    except BaseException as exc:  # Ctrl-C too: the run is recorded as interrupted, to be resumed
        logger.warning("sync #%s of tenant %s stopped in %s: %s", run.id, tenant_id, run.phase, exc)
        services.sync_run_fail(run=run, error=f"{type(exc).__name__}: {exc}")
        raise
    return services.sync_run_finish(run=run)


class _Sync:
    def __init__(self, run: SyncRun, client: WeComClient, options: SyncOptions) -> None:
        self.run_row = run
        self.client = client
        self.options = options
        self.reporter = options.reporter
        # The system acting for the brand (or for whoever asked for the sync, so audit rows name them).
        self.actor = Actor(user_id=run.requested_by_id, tenant_id=run.tenant_id, role=Role.HQ_ADMIN)

    def run(self) -> None:
        steps = {"members": self.members, "tags": self.tags, "contacts": self.contacts, "groups": self.groups}
        for phase in PHASES:
            if phase in self.run_row.phases and not self._checkpoint(phase).get("done"):
                steps[phase]()
            if phase in self.run_row.phases:
                self.reporter.phase_end(phase, counts=self.run_row.counts.get(phase, {}))

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _checkpoint(self, phase: str) -> dict[str, Any]:
        return dict(self.run_row.checkpoint.get(phase, {}))

    def _completed(self, phase: str) -> int:
        counts = self.run_row.counts.get(phase, {})
        return sum(int(counts.get(k, 0)) for k in ("created", "updated", "unchanged"))

    def _fetch(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, tried again (after the client's own retries) on errors that may pass."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except WeComAPIError as exc:
                if exc.errcode not in TRANSIENT or attempt >= self.options.call_attempts:
                    raise
                logger.warning("sync #%s: %s failed (%s), try %d", self.run_row.id, what, exc.errcode, attempt + 1)
                services.sync_run_beat(run=self.run_row)
                self.options.sleep(self.options.retry_delay * attempt)

    def _save(
        self,
        phase: str,
        checkpoint: dict[str, Any],
        counts: Mapping[str, int] | None = None,
        seen: Sequence[tuple[str, str, dict[str, Any]]] = (),
    ) -> None:
        """Record a page; called inside the page's transaction."""
        self.run_row = services.sync_run_progress(
            run=self.run_row, phase=phase, checkpoint=checkpoint, counts=counts, seen=seen
        )

    def _committed(self, phase: str, checkpoint: dict[str, Any]) -> None:
        if self.options.after_page is not None:
            self.options.after_page(phase, int(checkpoint.get("pages", 0)))

    def _paged(
        self, what: str, fetch: Callable[[str], T], checkpoint: dict[str, Any]
    ) -> tuple[T, dict[str, Any]]:
        """One page from `checkpoint["cursor"]`; a cursor WeCom no longer accepts (50100, e.g. a resume after it
        expired) restarts the batch from its first page, which the idempotent writes make harmless."""
        try:
            return self._fetch(what, functools.partial(fetch, checkpoint["cursor"])), checkpoint
        except WeComAPIError as exc:
            if exc.errcode != INVALID_CURSOR or not checkpoint["cursor"]:
                raise
            logger.warning("sync #%s: %s cursor refused, restarting the batch", self.run_row.id, what)
            checkpoint = {**checkpoint, "cursor": ""}
            return self._fetch(what, functools.partial(fetch, "")), checkpoint

    # -- members -------------------------------------------------------------------------------------------------

    def members(self) -> None:
        cp = self._checkpoint("members")
        if "departments" not in cp:
            departments = self._fetch("department/list", self.client.department_list)
            cp = {"departments": sorted({int(d["id"]) for d in departments}), "index": 0, "pages": 0}
        department_ids: list[int] = cp["departments"]
        self.reporter.phase_start("members", total=len(department_ids), completed=cp["index"])
        while cp["index"] < len(department_ids):
            department_id = department_ids[cp["index"]]
            members = self._fetch("user/list", functools.partial(self.client.user_list, department_id))
            with transaction.atomic():
                # A member of several departments is listed by each; the first listing counts.
                already = sync_seen(run_id=self.run_row.id, kind="member", keys=[m["userid"] for m in members])
                fresh = {m["userid"]: m for m in members if m["userid"] not in already}
                counts = core_services.guides_upsert_wecom(
                    actor=self.actor,
                    members=[
                        core_services.WeComMemberInput(
                            wecom_userid=userid,
                            name=transport.wecom_text(m.get("name"), max_length=100),
                            active=int(m.get("status", 1)) in ACTIVE_MEMBER_STATUSES,
                        )
                        for userid, m in fresh.items()
                    ],
                )
                cp = {**cp, "index": cp["index"] + 1, "pages": cp["pages"] + 1}
                self._save("members", cp, asdict(counts), [("member", u, {}) for u in fresh])
            self._committed("members", cp)
            self.reporter.phase_advance("members", advance=1, note=f"{len(fresh)} members")
        with transaction.atomic():
            present = sync_seen(run_id=self.run_row.id, kind="member")
            # An empty member list means the app sees nobody (a permissions problem), not that everyone left.
            departed = core_services.guides_depart_missing_wecom(actor=self.actor, present=present) if present else 0
            self._save("members", {**cp, "done": True}, {"deleted": departed})

    # -- corp tags -----------------------------------------------------------------------------------------------

    def _catalogue(self) -> dict[tuple[str, str], tuple[Any, ...]]:
        """The WeCom-linked part of the tag catalogue, keyed by WeCom id, to count what a phase changed."""
        entries: dict[tuple[str, str], tuple[Any, ...]] = {}
        for group in tag_group_list(actor=self.actor).exclude(wecom_group_id=""):
            entries[("group", group.wecom_group_id)] = (group.name, group.order)
        for tag in tag_list(actor=self.actor).exclude(wecom_tag_id=""):
            entries[("tag", tag.wecom_tag_id)] = (tag.name, tag.order, tag.group.wecom_group_id)
        return entries

    def tags(self) -> None:
        self.reporter.phase_start("tags", total=1, completed=0)
        groups: list[CorpTagGroup] = [
            g for g in self._fetch("get_corp_tag_list", self.client.corp_tag_list) if not g.get("deleted")
        ]
        listed_groups = {g["group_id"] for g in groups}
        listed_tags = {t["id"] for g in groups for t in g.get("tag", []) if not t.get("deleted")}
        conflicts = 0
        with transaction.atomic():
            before = self._catalogue()
            for wecom_group_id in sorted({key for kind, key in before if kind == "group"} - listed_groups):
                tag_services.tag_group_delete_wecom(actor=self.actor, wecom_group_id=wecom_group_id)
            for wecom_tag_id in sorted({key for kind, key in before if kind == "tag"} - listed_tags):
                tag_services.tag_delete_wecom(actor=self.actor, wecom_tag_id=wecom_tag_id)
            for group in groups:
                tags = [
                    tag_services.WeComTagInput(
                        wecom_tag_id=t["id"],
                        name=transport.wecom_text(t["name"], max_length=30),
                        order=int(t.get("order", 0)),
                    )
                    for t in group.get("tag", [])
                    if not t.get("deleted")
                ]
                try:
                    with transaction.atomic():
                        tag_services.tag_group_upsert_wecom(
                            actor=self.actor,
                            wecom_group_id=group["group_id"],
                            name=transport.wecom_text(group["group_name"], max_length=30),
                            order=int(group.get("order", 0)),
                            tags=tags,
                        )
                except SiyuError as exc:
                    # A name clash with a group siyu links to another WeCom group (or a name siyu cannot take):
                    # skip that group, keep the rest, and say so in the counts.
                    conflicts += 1
                    logger.warning("sync #%s: tag group %s skipped: %s", self.run_row.id, group["group_id"], exc)
            after = self._catalogue()
            counts = {
                "created": len(after.keys() - before.keys()),
                "updated": sum(1 for k in after.keys() & before.keys() if after[k] != before[k]),
                "unchanged": sum(1 for k in after.keys() & before.keys() if after[k] == before[k]),
                "deleted": len(before.keys() - after.keys()),
                "conflicts": conflicts,
            }
            self._save("tags", {"done": True, "pages": 1}, counts)
        self._committed("tags", {"pages": 1})
        self.reporter.phase_advance("tags", advance=1, note=f"{len(listed_tags)} tags")

    # -- contacts and follow relations --------------------------------------------------------------------------

    def contacts(self) -> None:
        cp = self._checkpoint("contacts")
        if "userids" not in cp:
            userids = sorted(set(self._fetch("get_follow_user_list", self.client.follow_user_list)))
            cp = {"userids": userids, "batch": 0, "cursor": "", "pages": 0}
        userids = cp["userids"]
        guides = core_services.guides_ensure_wecom(actor=self.actor, userids=userids)
        size = self.options.userid_batch
        batches = [userids[i : i + size] for i in range(0, len(userids), size)]
        self.reporter.phase_start("contacts", total=None, completed=self._completed("contacts"))
        while cp["batch"] < len(batches):
            batch = batches[cp["batch"]]
            fetch = functools.partial(self._contact_page, batch)
            page, cp = self._paged("batch/get_by_user", fetch, cp)
            rows = [transport.contact_input(item, guides[item["follow_info"]["userid"]]) for item in page.contacts]
            with transaction.atomic():
                result = customer_services.follow_relations_sync_wecom(actor=self.actor, contacts=rows)
                seen = [
                    (
                        "follow",
                        f"{row.external_userid}|{item['follow_info']['userid']}",
                        {
                            "c": result.customer_ids[row.external_userid],
                            "g": row.guide_id,
                            "t": sorted(item["follow_info"].get("tag_id") or []),
                        },
                    )
                    for row, item in zip(rows, page.contacts, strict=True)
                ]
                if page.next_cursor:
                    cp = {**cp, "cursor": page.next_cursor, "pages": cp["pages"] + 1}
                else:
                    cp = {**cp, "batch": cp["batch"] + 1, "cursor": "", "pages": cp["pages"] + 1}
                counts = {
                    "created": result.created,
                    "updated": result.updated,
                    "unchanged": result.unchanged,
                    "customers_created": result.customers_created,
                    "customers_updated": result.customers_updated,
                }
                self._save("contacts", cp, counts, seen)
            self._committed("contacts", cp)
            self.reporter.phase_advance("contacts", advance=len(rows))
        with transaction.atomic():
            desired: dict[int, set[str]] = defaultdict(set)
            present: set[tuple[int, int]] = set()
            for data in sync_seen(run_id=self.run_row.id, kind="follow").values():
                desired[int(data["c"])].update(data["t"])
                present.add((int(data["c"]), int(data["g"])))
            # Customers also followed by members this sync did not read (resigned, out of the app's range):
            # their tags may come from those members, so only additions are safe.
            partial = set(
                follow_relation_list(actor=self.actor, status=FollowRelation.Status.ACTIVE)
                .exclude(guide_id__in=list(guides.values()))
                .exclude(external_userid="")
                .values_list("customer_id", flat=True)
            )
            tag_counts = tag_services.customer_tags_sync_wecom(
                actor=self.actor, desired=desired, add_only=partial & set(desired)
            )
            pruned = customer_services.follow_relations_prune_wecom(
                actor=self.actor, guide_ids=list(guides.values()), present=present
            )
            counts = {"deleted": pruned, "tags_added": tag_counts.added, "tags_removed": tag_counts.removed}
            self._save("contacts", {**cp, "done": True}, counts)

    def _contact_page(self, userids: list[str], cursor: str) -> Any:
        return self.client.external_contact_batch_page(userids, cursor=cursor, limit=self.options.contact_page)

    # -- customer groups -----------------------------------------------------------------------------------------

    def groups(self) -> None:
        cp = self._checkpoint("groups")
        if "owners" not in cp:
            # Owners are named (groupchat/list without a filter fails beyond 1000 visible people): every member
            # with customer contact, and every guide siyu knows, departed ones included, whose groups may be
            # waiting for inheritance.
            follow = self._fetch("get_follow_user_list", self.client.follow_user_list)
            known = guide_list(actor=self.actor).values_list("wecom_userid", flat=True)
            cp = {"owners": sorted(set(follow) | set(known)), "batch": 0, "cursor": "", "pages": 0}
        owners = cp["owners"]
        size = self.options.userid_batch
        batches = [owners[i : i + size] for i in range(0, len(owners), size)]
        self.reporter.phase_start("groups", total=None, completed=self._completed("groups"))
        while cp["batch"] < len(batches):
            fetch = functools.partial(self._group_page, batches[cp["batch"]])
            page, cp = self._paged("groupchat/list", fetch, cp)
            chats = [chat for ref in page.chats if (chat := self._group(ref["chat_id"])) is not None]
            with transaction.atomic():
                guides = core_services.guides_ensure_wecom(actor=self.actor, userids={c["owner"] for c in chats})
                counts: dict[str, int] = defaultdict(int)
                for chat in chats:
                    result = group_services.group_upsert(
                        actor=self.actor, data=transport.group_input(chat, guides[chat["owner"]])
                    )
                    counts["created" if result.created else "updated" if result.changed else "unchanged"] += 1
                    counts["members_joined"] += result.joined
                    counts["members_left"] += result.left
                if page.next_cursor:
                    cp = {**cp, "cursor": page.next_cursor, "pages": cp["pages"] + 1}
                else:
                    cp = {**cp, "batch": cp["batch"] + 1, "cursor": "", "pages": cp["pages"] + 1}
                self._save("groups", cp, counts, [("chat", c["chat_id"], {}) for c in chats])
            self._committed("groups", cp)
            self.reporter.phase_advance("groups", advance=len(chats))
        with transaction.atomic():
            seen = sync_seen(run_id=self.run_row.id, kind="chat")
            now = timezone.now()
            dismissed = sum(
                group_services.group_dismiss(actor=self.actor, chat_id=chat_id, at=now)
                for chat_id in sorted(group_chat_ids(actor=self.actor) - set(seen))
            )
            self._save("groups", {**cp, "done": True}, {"deleted": dismissed})

    def _group_page(self, owners: list[str], cursor: str) -> Any:
        return self.client.groupchat_list_page(owner_userids=owners, cursor=cursor, limit=self.options.group_page)

    def _group(self, chat_id: str) -> GroupChat | None:
        """groupchat/get, or None when the chat went away between the listing and the read."""
        try:
            return self._fetch("groupchat/get", functools.partial(self.client.groupchat_get, chat_id))
        except WeComAPIError as exc:
            if exc.errcode in services.CHAT_GONE:
                return None
            raise
