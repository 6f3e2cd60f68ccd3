"""The WeCom connection: who may set it up, validation, secrets encrypted at rest, the client it builds."""

from __future__ import annotations

import pytest

from siyu.core.errors import Conflict, PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog
from siyu.testing import World
from siyu.wecom.client import WeComClient
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.models import DEFAULT_API_BASE_URL, WeComConnection
from siyu.wecom.parsing import parse_callback
from siyu.wecom.selectors import connection_client, connection_crypto, connection_secrets
from siyu.wecom.services import connection_create, connection_update
from siyu.wecom.tests.support import AES_KEY, SECRET, TOKEN


def _create(world: World, persona: str = "hq", **overrides: str) -> WeComConnection:
    kwargs = {"corp_id": "wwNEW", "callback_token": TOKEN, "encoding_aes_key": AES_KEY} | overrides
    return connection_create(actor=world.actor(persona), **kwargs)


def test_secrets_are_stored_encrypted_and_read_back(world: World) -> None:
    connection = _create(world, contact_secret=SECRET, app_secret="app-secret", agent_id="1000002")
    row = WeComConnection.objects.get(id=connection.id)
    stored = [row.contact_secret_enc, row.app_secret_enc, row.callback_token_enc, row.encoding_aes_key_enc]
    assert all(value.startswith("v1:") for value in stored)
    assert not any(secret in " ".join(stored) for secret in (SECRET, "app-secret", TOKEN, AES_KEY))
    secrets = connection_secrets(row)
    assert (secrets.contact_secret, secrets.app_secret, secrets.callback_token, secrets.encoding_aes_key) == (
        SECRET,
        "app-secret",
        TOKEN,
        AES_KEY,
    )
    assert repr(secrets) == "ConnectionSecrets(<redacted>)"
    assert (row.tenant_id, row.corp_id, row.agent_id, row.api_base_url) == (
        world.tenant_a.id,
        "wwNEW",
        "1000002",
        DEFAULT_API_BASE_URL,
    )


def test_creation_is_audited_without_values(world: World) -> None:
    connection = _create(world, contact_secret=SECRET)
    audit = AuditLog.objects.get(action="wecom_connection.create")
    assert (audit.tenant_id, audit.actor_id, audit.target_id) == (
        world.tenant_a.id,
        world.users["hq"].pk,
        str(connection.id),
    )
    assert audit.detail == {
        "corp_id": "wwNEW",
        "fields": [
            "corp_id",
            "agent_id",
            "api_base_url",
            "contact_secret",
            "app_secret",
            "callback_token",
            "encoding_aes_key",
        ],
    }


@pytest.mark.parametrize("persona", ["region1", "store1", "guide1", "franchisee1"])
def test_only_hq_may_connect(world: World, persona: str) -> None:
    with pytest.raises(PermissionDenied):
        _create(world, persona)
    assert WeComConnection.objects.count() == 0
    assert not AuditLog.objects.filter(action__startswith="wecom_connection").exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"corp_id": ""}, "corp_id"),
        ({"corp_id": "ww corp"}, "corp_id"),
        ({"corp_id": "12345"}, "corp_id"),
        ({"callback_token": "has space"}, "callback_token"),
        ({"callback_token": "t" * 33}, "callback_token"),
        ({"encoding_aes_key": "short"}, "encoding_aes_key"),
        ({"agent_id": "app"}, "agent_id"),
        ({"api_base_url": "ftp://x/"}, "api_base_url"),
    ],
)
def test_validation(world: World, overrides: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        _create(world, **overrides)
    assert info.value.field == field
    assert WeComConnection.objects.count() == 0


def test_one_connection_per_brand_and_one_brand_per_corp(world: World) -> None:
    _create(world)
    with pytest.raises(Conflict, match="already has"):
        _create(world, corp_id="wwOTHER")
    with pytest.raises(Conflict, match="another brand"):
        _create(world, "outsider")
    assert WeComConnection.objects.count() == 1


def test_update_changes_only_what_is_given(world: World) -> None:
    connection = _create(world, contact_secret=SECRET)
    old_crypto = connection_crypto(connection)
    new_key = "A" * 43
    updated = connection_update(
        actor=world.actor("hq"),
        changes={"encoding_aes_key": new_key, "api_base_url": "http://127.0.0.1:8900/cgi-bin"},
    )
    assert updated.api_base_url == "http://127.0.0.1:8900/cgi-bin/"  # the client joins paths onto it
    secrets = connection_secrets(WeComConnection.objects.get(id=connection.id))
    assert (secrets.contact_secret, secrets.callback_token, secrets.encoding_aes_key) == (SECRET, TOKEN, new_key)
    # The cached crypto follows the new key at once.
    new_crypto = connection_crypto(updated)
    assert new_crypto is not old_crypto
    assert new_crypto is not None
    assert new_crypto.decrypt(WeComCrypto(TOKEN, new_key, "wwNEW").encrypt("hi")) == "hi"
    audit = AuditLog.objects.filter(action="wecom_connection.update").get()
    assert audit.detail == {"fields": ["encoding_aes_key", "api_base_url"]}


def test_update_refuses_unknown_fields_and_other_roles(world: World) -> None:
    _create(world)
    with pytest.raises(ValidationFailed, match="cannot update tenant"):
        connection_update(actor=world.actor("hq"), changes={"tenant": "x"})
    with pytest.raises(PermissionDenied):
        connection_update(actor=world.actor("store1"), changes={"agent_id": "1"})
    with pytest.raises(ValidationFailed, match="no WeCom connection"):
        connection_update(actor=world.actor("outsider"), changes={"agent_id": "1"})


def test_the_client_uses_the_connection(world: World) -> None:
    connection = _create(world, contact_secret=SECRET, app_secret="app-secret", api_base_url="http://emu:8900/cgi-bin/")
    with connection_client(connection) as client:
        assert isinstance(client, WeComClient)
        assert (client.base_url, client.corp_id, client._secret) == ("http://emu:8900/cgi-bin/", "wwNEW", SECRET)
    with connection_client(connection, app="app") as client:
        assert client._secret == "app-secret"


def test_suite_form_events_parse_like_self_built_ones() -> None:
    # Third-party / 代开发 suites use InfoType and TimeStamp instead of Event and CreateTime.
    parsed = parse_callback(
        "<xml><SuiteId><![CDATA[ww4asffe99e54c0f4c]]></SuiteId><AuthCorpId><![CDATA[wxf8b4f85f3a794e77]]></AuthCorpId>"
        "<InfoType><![CDATA[change_external_contact]]></InfoType><TimeStamp>1403610513</TimeStamp>"
        "<ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID>"
        "<ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mACH71w]]></ExternalUserID>"
        "<State><![CDATA[teststate]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>"
    )
    assert (parsed.event_type, parsed.change_type) == ("change_external_contact", "add_external_contact")
    assert parsed.created_at is not None
    assert int(parsed.created_at.timestamp()) == 1403610513
    assert parsed.fields["WelcomeCode"] == "WELCOMECODE"
