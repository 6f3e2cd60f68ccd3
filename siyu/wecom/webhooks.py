"""Inbound callback verification: which connection, is it fresh, is it signed, what does it say.

Reads only; `services.raw_callback_store` writes what passes. Every rejection raises `CallbackRejected` with a
stable reason, which the view logs (logger "siyu.wecom.callback") and turns into a 4xx.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from siyu.wecom.crypto import CallbackCryptoError, WeComCrypto
from siyu.wecom.errors import CallbackRejected
from siyu.wecom.models import WeComConnection
from siyu.wecom.parsing import ParsedCallback, parse_callback
from siyu.wecom.selectors import callback_nonce_reused, connection_crypto, connection_for_callback

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

    @property
    def dedupe_key(self) -> str:
        return self.parsed.dedupe_key(corp_id=self.connection.corp_id)


def _connection_and_crypto(key: str) -> tuple[WeComConnection, WeComCrypto]:
    connection = connection_for_callback(key=key)
    if connection is None:
        raise CallbackRejected("unknown_connection", key[:64])
    crypto = connection_crypto(connection)
    if crypto is None:
        raise CallbackRejected("not_configured", f"connection {connection.id} has no callback token or AES key")
    return connection, crypto


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
    """Check, decrypt and parse a POSTed callback. Cheap checks first: no crypto or parsing for stale requests."""
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
    # After the signature: only a request signed with our token gets to cost a query.
    since = now - dt.timedelta(seconds=2 * max_skew())
    if callback_nonce_reused(connection_id=connection.id, nonce=nonce, msg_signature=msg_signature, since=since):
        raise CallbackRejected("nonce_reused", nonce)
    return VerifiedCallback(
        connection=connection,
        msg_signature=msg_signature,
        timestamp=timestamp,
        nonce=nonce,
        xml=xml,
        parsed=parsed,
        received_at=now,
    )
