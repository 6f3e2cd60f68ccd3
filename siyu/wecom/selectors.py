"""Reads of the WeCom connector: connections (with their decrypted secrets) and the raw-callback log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from django.conf import settings
from django.db.models import QuerySet

from siyu.core import pii
from siyu.core.errors import NotFound
from siyu.core.scopes import Actor
from siyu.wecom.client import WeComClient
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.models import RawCallback, WeComConnection

# Column names bound into each ciphertext (see siyu.core.pii), so a value copied to another column won't decrypt.
FIELD_CONTACT_SECRET = "wecom.contact_secret"  # noqa: S105 - a column name, not a secret
FIELD_APP_SECRET = "wecom.app_secret"  # noqa: S105
FIELD_CALLBACK_TOKEN = "wecom.callback_token"  # noqa: S105
FIELD_ENCODING_AES_KEY = "wecom.encoding_aes_key"


@dataclass(frozen=True)
class ConnectionSecrets:
    contact_secret: str
    app_secret: str
    callback_token: str
    encoding_aes_key: str

    def __repr__(self) -> str:
        # Never let a secret reach a log line or a traceback's locals through repr().
        return "ConnectionSecrets(<redacted>)"


def connection_secrets(connection: WeComConnection) -> ConnectionSecrets:
    """The connection's secrets in clear. For the client and the callback crypto, never for display."""
    return ConnectionSecrets(
        contact_secret=pii.decrypt(connection.contact_secret_enc, field=FIELD_CONTACT_SECRET),
        app_secret=pii.decrypt(connection.app_secret_enc, field=FIELD_APP_SECRET),
        callback_token=pii.decrypt(connection.callback_token_enc, field=FIELD_CALLBACK_TOKEN),
        encoding_aes_key=pii.decrypt(connection.encoding_aes_key_enc, field=FIELD_ENCODING_AES_KEY),
    )


@lru_cache(maxsize=256)
def _crypto(corp_id: str, token_enc: str, aes_key_enc: str) -> WeComCrypto:
    # Keyed by the ciphertexts: pii.encrypt uses a fresh nonce, so any change of token or key is a new entry.
    return WeComCrypto(
        pii.decrypt(token_enc, field=FIELD_CALLBACK_TOKEN),
        pii.decrypt(aes_key_enc, field=FIELD_ENCODING_AES_KEY),
        corp_id,
    )


def connection_crypto(connection: WeComConnection) -> WeComCrypto | None:
    """The callback crypto of a connection, or None while its token or EncodingAESKey is not configured.

    Cached per process: the callback endpoint would otherwise decrypt two secrets on every request.
    """
    if not connection.callback_token_enc or not connection.encoding_aes_key_enc:
        return None
    return _crypto(connection.corp_id, connection.callback_token_enc, connection.encoding_aes_key_enc)


def connection_client(connection: WeComConnection, *, app: Literal["contact", "app"] = "contact") -> WeComClient:
    """A client for the connection's corp, with the customer-contact secret (default) or the app secret.

    Close it when done (`with connection_client(c) as client:`); tokens are cached beyond its life.
    """
    secrets = connection_secrets(connection)
    return WeComClient(
        connection.api_base_url,
        connection.corp_id,
        secrets.contact_secret if app == "contact" else secrets.app_secret,
        timeout=float(settings.SIYU_WECOM_TIMEOUT),
    )


def connection_for_callback(*, key: str) -> WeComConnection | None:
    """The connection a callback URL names, by numeric id or by corp id (corp ids never are all digits)."""
    qs = WeComConnection.objects.all()
    if key.isdigit():
        return qs.filter(id=int(key)).first()
    return qs.filter(corp_id=key).first()


def connection_get(*, actor: Actor) -> WeComConnection | None:
    """The actor's brand's connection, if one is set up."""
    return WeComConnection.objects.filter(tenant_id=actor.tenant_id).first()


def connection_for_tenant(*, tenant_id: int) -> WeComConnection | None:
    """For jobs, which run as the system and know only the tenant."""
    return WeComConnection.objects.filter(tenant_id=tenant_id).first()


def callback_nonce_reused(*, connection_id: int, nonce: str, msg_signature: str, since: dt.datetime) -> bool:
    """Whether another request (another signature) already used this nonce since `since`.

    The same nonce with the same signature is the same request again: a retry, answered as a duplicate.
    """
    return (
        RawCallback.objects.filter(connection_id=connection_id, nonce=nonce, received_at__gte=since)
        .exclude(msg_signature=msg_signature)
        .exists()
    )


def raw_callback_list(
    *, actor: Actor, status: str = "", event_type: str = "", change_type: str = ""
) -> QuerySet[RawCallback]:
    """The brand's callback log, newest first. HQ only: raw callbacks name customers of every store."""
    if not actor.is_brand_wide:
        return RawCallback.objects.none()
    qs = RawCallback.objects.filter(tenant_id=actor.tenant_id)
    if status:
        qs = qs.filter(status=status)
    if event_type:
        qs = qs.filter(event_type=event_type)
    if change_type:
        qs = qs.filter(change_type=change_type)
    return qs.order_by("-received_at", "-id")


def access_raw_callback(*, actor: Actor, raw_callback_id: int) -> RawCallback:
    row = raw_callback_list(actor=actor).filter(id=raw_callback_id).first()
    if row is None:
        raise NotFound(f"callback {raw_callback_id} not found", field="raw_callback_id")
    return row
