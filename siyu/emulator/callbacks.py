"""Customer-contact events and their delivery to the corp's callback URL, the way WeCom pushes them.

An `Event` renders the decrypted XML of wecom-api.md §3 (self-built-app form: ToUserName = corp id, FromUserName
= sys, CreateTime, MsgType = event, Event, then the event's own fields in the documented order). The sender
encrypts and signs it with siyu.wecom.crypto (AES-256-CBC, PKCS#7 to 32 bytes, corp id as receive id; SHA1
signature over the sorted token, timestamp, nonce and ciphertext) and POSTs
`<url>?msg_signature=..&timestamp=..&nonce=..` with the `<xml><ToUserName/><Encrypt/><AgentID/></xml>` envelope.

Delivery (§2.3): acknowledged means HTTP 200 within 5 seconds; otherwise the same request is sent again,
3 tries in total. Senders are background threads fed by a queue, so the API call or simulated action that
produced an event never waits for the receiver. Every attempt is recorded (status, error, latency) for
GET /emulator/callbacks.
"""

from __future__ import annotations

import http.client
import itertools
import logging
import queue
import random
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from siyu.emulator.clock import Clock
from siyu.emulator.model import CallbackConfig

# The protocol lives in one place, shared with siyu's callback endpoint (siyu.wecom imports no Django here).
from siyu.wecom.crypto import WeComCrypto

log = logging.getLogger(__name__)

FieldValue = str | int | list[str]


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@dataclass(frozen=True)
class Event:
    corp_id: str
    create_time: int
    event: str  # change_external_contact | change_external_chat | change_external_tag
    change_type: str
    # The fields after the common header, in document order (ChangeType included where the doc puts it).
    fields: tuple[tuple[str, FieldValue], ...]

    def to_xml(self) -> str:
        parts = [
            "<xml>",
            f"<ToUserName>{_cdata(self.corp_id)}</ToUserName>",
            f"<FromUserName>{_cdata('sys')}</FromUserName>",
            f"<CreateTime>{self.create_time}</CreateTime>",
            f"<MsgType>{_cdata('event')}</MsgType>",
            f"<Event>{_cdata(self.event)}</Event>",
        ]
        for name, value in self.fields:
            if isinstance(value, list):  # MemChangeList: <Item> children, as in the doc sample
                items = "".join(f"<Item>{escape(v)}</Item>" for v in value)
                parts.append(f"<{name}>{items}</{name}>")
            elif isinstance(value, int):
                parts.append(f"<{name}>{value}</{name}>")
            else:
                parts.append(f"<{name}>{_cdata(value)}</{name}>")
        parts.append("</xml>")
        return "\n".join(parts)


def contact_event(
    corp_id: str, create_time: int, change_type: str, *, userid: str, external_userid: str, **extra: str
) -> Event:
    """change_external_contact: ChangeType, [FailReason,] UserID, ExternalUserID, then State/WelcomeCode/Source."""
    fields: list[tuple[str, FieldValue]] = [("ChangeType", change_type)]
    if "FailReason" in extra:
        fields.append(("FailReason", extra.pop("FailReason")))
    fields += [("UserID", userid), ("ExternalUserID", external_userid)]
    fields += list(extra.items())
    return Event(corp_id, create_time, "change_external_contact", change_type, tuple(fields))


def tag_event(corp_id: str, create_time: int, change_type: str, *, id: str, tag_type: str | None) -> Event:
    """change_external_tag: Id, TagType (absent for shuffle), ChangeType — the doc sample's order."""
    fields: list[tuple[str, FieldValue]] = [("Id", id)]
    if tag_type is not None:
        fields.append(("TagType", tag_type))
    fields.append(("ChangeType", change_type))
    return Event(corp_id, create_time, "change_external_tag", change_type, tuple(fields))


def chat_event(corp_id: str, create_time: int, change_type: str, *, chat_id: str, **detail: FieldValue) -> Event:
    """change_external_chat: ChatId, ChangeType, then UpdateDetail/JoinScene/QuitScene/MemChangeCnt/... for update."""
    order = ("UpdateDetail", "JoinScene", "QuitScene", "MemChangeCnt", "MemChangeList", "LastMemVer", "CurMemVer")
    fields: list[tuple[str, FieldValue]] = [("ChatId", chat_id), ("ChangeType", change_type)]
    fields += [(k, detail[k]) for k in order if k in detail]
    return Event(corp_id, create_time, "change_external_chat", change_type, tuple(fields))


@dataclass
class Delivery:
    id: int
    corp_id: str
    event: str
    change_type: str
    url: str
    xml: str
    queued_at: float
    attempts: list[dict[str, Any]] = field(default_factory=list)
    # None while queued or being tried; then True (a 200 within the time-out) or False (every try failed).
    acknowledged: bool | None = None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "corp_id": self.corp_id,
            "event": self.event,
            "change_type": self.change_type,
            "url": self.url,
            "xml": self.xml,
            "queued_at": self.queued_at,
            "attempts": list(self.attempts),
            "acknowledged": self.acknowledged,
            "error": self.error,
        }


@dataclass(frozen=True)
class _Job:
    delivery: Delivery
    config: CallbackConfig


class CallbackSender:
    def __init__(
        self,
        *,
        clock: Clock,
        timeout: float = 5.0,
        attempts: int = 3,
        retry_delay: float = 1.0,
        workers: int = 1,
        history: int = 50_000,
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.workers = workers
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._records: deque[Delivery] = deque(maxlen=history)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._busy = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.workers):
            thread = threading.Thread(target=self._run, name=f"emulator-callbacks-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the senders; events still queued are dropped (as they would be by a WeCom outage)."""
        self._stop.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def submit(self, event: Event, config: CallbackConfig) -> Delivery:
        delivery = Delivery(
            id=next(self._ids),
            corp_id=event.corp_id,
            event=event.event,
            change_type=event.change_type,
            url=config.url,
            xml=event.to_xml(),
            queued_at=self.clock.now(),
        )
        with self._lock:
            self._records.append(delivery)
        if not config.url:
            # WeCom drops events of a corp without a callback URL; the record says so.
            delivery.acknowledged, delivery.error = False, "no callback URL configured"
            return delivery
        self._queue.put(_Job(delivery, config))
        return delivery

    def pending(self) -> int:
        with self._lock:
            return self._queue.qsize() + self._busy

    def deliveries(self, *, after: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [d.as_dict() for d in self._records if d.id > after]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    # -- the sender threads ----------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._busy += 1
            try:
                self._deliver(job)
            except Exception as exc:  # a bug must not kill the sender thread and silently stop all delivery
                log.exception("callback delivery %s failed", job.delivery.id)
                job.delivery.acknowledged, job.delivery.error = False, f"sender error: {exc!r}"
            finally:
                with self._lock:
                    self._busy -= 1

    def _deliver(self, job: _Job) -> None:
        delivery, config = job.delivery, job.config
        crypto = WeComCrypto(config.token, config.encoding_aes_key, delivery.corp_id)
        # The signature's timestamp is the request's wall-clock time, not the emulator's (possibly advanced) clock:
        # receivers compare it with their own clock to refuse replays. CreateTime inside is the emulator's time.
        timestamp = str(int(time.time()))
        # A nonce only needs to differ between requests; deriving it from the delivery keeps runs reproducible.
        nonce = str(random.Random(f"{delivery.corp_id}:{delivery.id}").randrange(10**8, 10**10))  # noqa: S311
        encrypted, signature = crypto.encrypt_message(plaintext=delivery.xml, timestamp=timestamp, nonce=nonce)
        body = crypto.build_envelope(to_user=delivery.corp_id, encrypted=encrypted, agent_id=config.agentid)
        query = urllib.parse.urlencode({"msg_signature": signature, "timestamp": timestamp, "nonce": nonce})
        separator = "&" if urllib.parse.urlsplit(config.url).query else "?"
        url = f"{config.url}{separator}{query}"
        # Retries re-send the identical request, so the receiver can recognise them (same signature and body).
        for attempt in range(1, self.attempts + 1):
            started = time.monotonic()
            status, error = self._post(url, body)
            latency = time.monotonic() - started
            acknowledged = status == 200 and latency <= self.timeout
            if status == 200 and not acknowledged:
                error = f"answered after {latency:.2f}s, more than {self.timeout:g}s"
            delivery.attempts.append(
                {
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                    "latency_ms": round(latency * 1000, 1),
                    "at": self.clock.now(),
                }
            )
            if acknowledged:
                delivery.acknowledged = True
                return
            if attempt < self.attempts and self._stop.wait(self.retry_delay):
                break
        delivery.acknowledged = False
        delivery.error = delivery.attempts[-1]["error"] or f"HTTP {delivery.attempts[-1]['status']}"

    def _post(self, url: str, body: bytes) -> tuple[int | None, str]:
        parts = urllib.parse.urlsplit(url)
        connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(parts.netloc, timeout=self.timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            connection.request("POST", path, body=body, headers={"Content-Type": "text/xml; charset=utf-8"})
            response = connection.getresponse()
            response.read()
            return response.status, ""
        except TimeoutError:
            return None, f"no answer within {self.timeout:g}s"
        except (OSError, http.client.HTTPException) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
