"""The callback intake (回调接收): verify a POSTed callback, store it durably, then answer — for many at once.

Shared by the Django view (siyu.wecom.views) and the lean WSGI route in front of Django (siyu.wecom.fastpath),
so both answer exactly alike. WeCom wants a 200 within 5 seconds and retries otherwise; siyu answers 200 only
after the callback's row is committed, so an acknowledged event is never lost.

Committing each callback on its own makes the database's commit the bottleneck (one WAL flush, one write lock
per request). Requests that arrive while a commit is under way therefore wait and are stored together by the
next one — a group commit: the first waiting request's thread stores the whole group in one transaction
(`services.raw_callbacks_store`: one nonce query, one INSERT) and wakes the others, and each answers after that
commit. A lone request is its own group and pays nothing extra. Processing is a job per group, or, on the
production server's WSGI route, one job per process every few milliseconds for all its groups (_ProcessingKick).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from django.db import DatabaseError, connections, router

from siyu.wecom import webhooks
from siyu.wecom.errors import CallbackRejected
from siyu.wecom.models import RawCallback
from siyu.wecom.services import Stored, StoreOutcome, raw_callbacks_enqueue, raw_callbacks_store

logger = logging.getLogger("siyu.wecom.callback")

Item = TypeVar("Item")
Result = TypeVar("Result")

# 64 rows × 16 columns stays far below SQLite's limit of bound parameters in one statement.
MAX_GROUP = 64


class _Slot(Generic[Item, Result]):
    __slots__ = ("done", "error", "item", "result", "wake")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.done = False
        self.result: Result | None = None
        self.error: BaseException | None = None
        # Held until the slot's thread may go on: its item is written, or it is the head and must write. One lock
        # per waiting thread wakes exactly that thread (a shared Condition would wake them all for every group).
        self.wake = threading.Lock()
        self.wake.acquire()


class GroupCommit(Generic[Item, Result]):
    """Leader/follower batching of writes from many threads: `submit` returns the item's result once it is written.

    Items queue in arrival order. The thread whose item is at the head writes the head's group (up to
    `max_group` items) with `write`, outside the lock, so the next group gathers meanwhile; then it hands each
    waiting thread of the group its result and wakes the new head, which writes the next group. `write` gets the
    items and returns one result per item; if it raises, every item of the group gets the exception.
    """

    def __init__(self, write: Callable[[list[Item]], Sequence[Result]], *, max_group: int = MAX_GROUP) -> None:
        self._write = write
        self._max_group = max_group
        self._queue: list[_Slot[Item, Result]] = []
        self._mutex = threading.Lock()

    def submit(self, item: Item) -> Result:
        slot: _Slot[Item, Result] = _Slot(item)
        with self._mutex:
            self._queue.append(slot)
            leading = len(self._queue) == 1
        if not leading:
            slot.wake.acquire()  # until written by another thread's group, or made the head
        if not slot.done:
            self._lead(slot)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value] - set for every done slot without an error

    def _lead(self, head: _Slot[Item, Result]) -> None:
        with self._mutex:
            group = self._queue[: self._max_group]
        results: Sequence[Result] = ()
        error: BaseException | None = None
        try:
            results = self._write([slot.item for slot in group])
            if len(results) != len(group):
                raise RuntimeError(f"group write returned {len(results)} results for {len(group)} items")
        except BaseException as exc:  # every waiting thread must hear of it, whatever it is
            error = exc
        with self._mutex:
            for index, slot in enumerate(group):
                slot.done = True
                slot.error = error
                slot.result = None if error is not None else results[index]
            del self._queue[: len(group)]
            following = self._queue[0] if self._queue else None
        for slot in group:
            if slot is not head:
                slot.wake.release()
        if following is not None:
            following.wake.release()


class _ProcessingKick:
    """Enqueues the processing of the rows the endpoint stored, for many groups at once.

    A job per group would be one more write per commit on the endpoint's busiest path. Instead each server
    process collects the new rows' ids and a background thread enqueues them every KICK_SECONDS as one job
    (services.raw_callbacks_enqueue): processing starts a few milliseconds later, and the endpoint's threads
    never wait for it. The ids are only in memory until then; if the process dies first, the rows stay
    `received` and the worker's requeue sweep enqueues them, as it does for a job lost any other way. A worker
    that exits normally enqueues what it holds on the way out.
    """

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._ids: list[int] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid = 0
        self._releases: list[threading.Event] = []

    def add(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._ids.extend(ids)
            if self._pid != os.getpid():  # first use in this (possibly forked) process
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="callback-kick", daemon=True).start()
                atexit.register(self.flush)
        self._wake.set()

    def flush(self) -> None:
        with self._lock:
            ids, self._ids = self._ids, []
        if not ids:
            return
        try:
            raw_callbacks_enqueue(raw_callback_ids=ids)
        except Exception:
            # The rows are stored; the requeue sweep will find them. Never let this thread die.
            logger.exception("could not enqueue the processing of %d callbacks", len(ids))
            _forget_broken_connection()

    def release(self, timeout: float = 5.0) -> None:
        """Enqueue what is held and have the thread close its database connection now (before a test database is
        dropped, which PostgreSQL refuses while a session is open)."""
        done = threading.Event()
        with self._lock:
            if self._pid != os.getpid():
                return  # no thread in this process
            self._releases.append(done)
        self._wake.set()
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            try:
                self._turn()
            except Exception:  # the thread must outlive any one failure, or processing would stop being kicked
                logger.exception("the callback processing kick failed; going on")

    def _turn(self) -> None:
        if not self._wake.wait(timeout=IDLE_SECONDS):
            # Quiet for a while: give the thread's database connection back (a restart, a test database).
            connections.close_all()
            return
        time.sleep(self._interval)  # let the groups of the next few milliseconds join this job
        self._wake.clear()
        self.flush()
        with self._lock:
            releases, self._releases = self._releases, []
        if releases:
            connections.close_all()
            for done in releases:
                done.set()


KICK_SECONDS = 0.05
IDLE_SECONDS = 1.0
_kick = _ProcessingKick(KICK_SECONDS)


def _store_group(group: list[webhooks.VerifiedCallback], *, enqueue: bool) -> list[Stored | DatabaseError]:
    """Store a group in one transaction; should that fail, each callback alone, so one bad row fails only itself.

    Without `enqueue`, the new rows go to this process's processing kick instead of a job per group.
    """
    try:
        results: list[Stored | DatabaseError] = list(raw_callbacks_store(verified=group, enqueue=enqueue))
    except DatabaseError as exc:
        _forget_broken_connection()
        if len(group) == 1:
            return [exc]
        logger.warning("storing a group of %d callbacks failed (%s); storing them one by one", len(group), exc)
        results = []
        for verified in group:
            try:
                results.extend(raw_callbacks_store(verified=[verified], enqueue=enqueue))
            except DatabaseError as exc:
                _forget_broken_connection()
                results.append(exc)
    if not enqueue:
        new = [r.raw_callback_id for r in results if isinstance(r, Stored) and r.outcome is StoreOutcome.STORED]
        if new:
            _kick.add([i for i in new if i is not None])
    return results


def _forget_broken_connection() -> None:
    # Outside any transaction (the WSGI route) a failed connection is closed, so the next group reconnects (the
    # database restarted, the network blipped); inside one (a test, a caller's atomic block) it is the caller's.
    connection = connections[router.db_for_write(RawCallback)]
    if not connection.in_atomic_block:
        connection.close()


# One group commit per way of starting the processing: a job per group (the Django view, which tests drive
# inside their transaction), or the process's kick (the WSGI route of the production server).
_groups: dict[bool, GroupCommit[webhooks.VerifiedCallback, Stored | DatabaseError]] = {
    enqueue: GroupCommit(partial(_store_group, enqueue=enqueue)) for enqueue in (True, False)
}


@dataclass(frozen=True)
class Reply:
    """What the endpoint answers: an empty 200, or the rejection's status with its reason code."""

    status: int
    body: bytes = b""


def reject(method: str, key: str, exc: CallbackRejected, remote_addr: str) -> Reply:
    """Log a refused request with its reason and answer the reason code only (enough for an operator comparing
    with the log, nothing an attacker can use)."""
    logger.warning(
        "rejected WeCom callback %s %s: reason=%s detail=%s ip=%s",
        method,
        key[:64],
        exc.reason,
        exc.detail[:200],
        remote_addr,
    )
    return Reply(exc.status_code, exc.reason.encode())


def receive_post(
    *,
    key: str,
    params: Mapping[str, str],
    declared_length: str,
    read_body: Callable[[], bytes],
    remote_addr: str,
    coalesce_processing: bool = False,
) -> Reply:
    """A POSTed event: verify it, store it with whatever arrives meanwhile, answer 200 once it is committed.

    `coalesce_processing` (the production server's WSGI route): the processing job is enqueued by this
    process's kick for many groups at once, instead of one job per group after its commit.
    """
    try:
        # Refuse an oversized body before reading it into memory.
        if declared_length.isdigit() and int(declared_length) > webhooks.MAX_BODY_BYTES:
            raise CallbackRejected("body_too_large", f"{declared_length} bytes declared")
        verified = webhooks.verify_message(
            key=key,
            msg_signature=params.get("msg_signature"),
            timestamp=params.get("timestamp"),
            nonce=params.get("nonce"),
            body=read_body(),
        )
    except CallbackRejected as exc:
        return reject("POST", key, exc, remote_addr)
    stored = _groups[not coalesce_processing].submit(verified)
    if isinstance(stored, DatabaseError):
        # Not acknowledged, so WeCom sends it again; nothing was committed for it.
        logger.error("could not store WeCom callback %s: %s", key[:64], stored)
        return Reply(503, b"store_failed")
    if stored.outcome is StoreOutcome.NONCE_REUSED:
        return reject("POST", key, CallbackRejected("nonce_reused", verified.nonce), remote_addr)
    if stored.outcome is StoreOutcome.DUPLICATE:
        logger.info(
            "duplicate WeCom callback %s for row %s: acknowledged, nothing stored", key[:64], stored.raw_callback_id
        )
    return Reply(200)
