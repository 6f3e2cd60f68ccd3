"""Inbound callback verification: which connection, is it fresh, is it signed, what does it say.

Reads only; `services.raw_callbacks_store` writes what passes (and checks the nonce against what is stored, in
the same transaction). Every rejection raises `CallbackRejected` with a stable reason, which the endpoint logs
(logger "siyu.wecom.callback") and turns into a 4xx.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from functools import cached_property

from django.conf import settings
from django.utils import timezone

from siyu.wecom.crypto import CallbackCryptoError, WeComCrypto
from siyu.wecom.errors import CallbackRejected
from siyu.wecom.models import WeComConnection
from siyu.wecom.parsing import ParsedCallback, parse_callback
from siyu.wecom.selectors import connection_crypto, connection_for_callback

# A customer-contact event is well under 2 KB; group events with long member lists stay far below this.
MAX_BODY_BYTES = 256 * 1024


def max_skew() -> int:
    """Seconds a callback's timestamp may differ from our clock before it counts as a replay."""
    return int(settings.SIYU_WECOM_CALLBACK_MAX_SKEW)


@dataclass(frozen=True)
class VerifiedCallback:
    """A POSTed callback that passed every check, decrypted and parsed, ready to store."""

    connection: WeComConnection
    msg_signature: str
    timestamp: str
    nonce: str
    xml: str
    parsed: ParsedCallback
    received_at: dt.datetime

    @cached_property
    def dedupe_key(self) -> str:
        # Cached: a sha256 over the event's ids, asked for several times while the callback is stored.
        return self.parsed.dedupe_key(corp_id=self.connection.corp_id)

    @property
    def nonce_window_start(self) -> dt.datetime:
        """A nonce used since then by another request makes this one a replay (a timestamp may be off by the
        skew either way, hence twice the skew)."""
        return self.received_at - dt.timedelta(seconds=2 * max_skew())


# Every callback needs its connection and crypto, and they change only when an admin edits the token or key: each
# process keeps them this long instead of reading the row on every request. connection_create/update forget them
# at once in their own process; other processes follow within this many seconds (WeCom retries what they refuse
# meanwhile). Unknown keys are not kept, so random URLs cannot grow the cache.
RECEIVER_TTL_SECONDS = 10.0
_RECEIVERS_MAX = 1024


@dataclass(frozen=True)
class _Receiver:
    connection: WeComConnection
    crypto: WeComCrypto | None
    expires: float


_receivers: dict[str, _Receiver] = {}


def receivers_forget() -> None:
    """Drop this process's cached connections (after a connection is created or changed)."""
    _receivers.clear()


def _connection_and_crypto(key: str) -> tuple[WeComConnection, WeComCrypto]:
    now = time.monotonic()
    receiver = _receivers.get(key)
    if receiver is None or receiver.expires < now:
        connection = connection_for_callback(key=key)
        if connection is None:
            raise CallbackRejected("unknown_connection", key[:64])
        receiver = _Receiver(connection, connection_crypto(connection), now + RECEIVER_TTL_SECONDS)
        if len(_receivers) >= _RECEIVERS_MAX:
            _receivers.clear()
        # A plain dict store is atomic under the GIL; two threads filling the same key store equal values.
        _receivers[key] = receiver
    if receiver.crypto is None:
        raise CallbackRejected(
            "not_configured", f"connection {receiver.connection.id} has no callback token or AES key"
        )
    return receiver.connection, receiver.crypto


def _signed_params(msg_signature: str | None, timestamp: str | None, nonce: str | None) -> tuple[str, str, str]:
    if not msg_signature:
        raise CallbackRejected("unsigned")
    if not timestamp or not nonce:
        raise CallbackRejected("missing_params", "timestamp and nonce are required")
    if len(msg_signature) > 64 or len(nonce) > 64:
        raise CallbackRejected("missing_params", "msg_signature or nonce too long")
    return msg_signature, timestamp, nonce


def _check_fresh(timestamp: str, now: dt.datetime) -> None:
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise CallbackRejected("bad_timestamp", "timestamp is not unix seconds")
    skew = abs(now.timestamp() - int(timestamp))
    if skew > max_skew():
        raise CallbackRejected("stale_timestamp", f"{int(skew)} s from now")


def verify_url(
    *, key: str, msg_signature: str | None, timestamp: str | None, nonce: str | None, echostr: str | None
) -> str:
    """Check WeCom's URL-verification GET; returns the plaintext to echo."""
    _, crypto = _connection_and_crypto(key)
    msg_signature, timestamp, nonce = _signed_params(msg_signature, timestamp, nonce)
    if not echostr:
        raise CallbackRejected("missing_params", "echostr is required")
    _check_fresh(timestamp, timezone.now())
    # Base64 never contains spaces: a space is a "+" that reached us unencoded and was read as form-encoding.
    echostr = echostr.replace(" ", "+")
    try:
        return crypto.verify_url(msg_signature=msg_signature, timestamp=timestamp, nonce=nonce, echostr=echostr)
    except CallbackCryptoError as exc:
        raise CallbackRejected(exc.reason, exc.detail) from exc


def verify_message(
    *,
    key: str,
    msg_signature: str | None,
    timestamp: str | None,
    nonce: str | None,
    body: bytes,
    now: dt.datetime | None = None,
) -> VerifiedCallback:
    """Check, decrypt and parse a POSTed callback. Cheap checks first: no crypto or parsing for stale requests.

    The nonce is checked when the callback is stored (services.raw_callbacks_store), against the rows it is
    stored with: one query for a group of callbacks instead of one per request.
    """
    connection, crypto = _connection_and_crypto(key)
    msg_signature, timestamp, nonce = _signed_params(msg_signature, timestamp, nonce)
    now = now or timezone.now()
    _check_fresh(timestamp, now)
    if len(body) > MAX_BODY_BYTES:
        raise CallbackRejected("body_too_large", f"{len(body)} bytes")
    try:
        xml = crypto.decrypt_message(body=body, msg_signature=msg_signature, timestamp=timestamp, nonce=nonce)
        parsed = parse_callback(xml)
    except CallbackCryptoError as exc:
        raise CallbackRejected(exc.reason, exc.detail) from exc
    return VerifiedCallback(
        connection=connection,
        msg_signature=msg_signature,
        timestamp=timestamp,
        nonce=nonce,
        xml=xml,
        parsed=parsed,
        received_at=now,
    )
