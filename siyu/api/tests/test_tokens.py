"""API tokens: issuing, hashing, revoking, the `siyu api-token` command, and what authenticates."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import pytest
from django.core.management import CommandError, call_command

from siyu.api.models import APIToken
from siyu.api.services import api_token_create, api_token_mark_used, api_token_revoke
from siyu.api.tests.conftest import ApiClient
from siyu.core.errors import NotFound, PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.testing import World


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("api-token", *args, stdout=out)
    return out.getvalue()


def test_create_stores_only_the_hash_and_audits(world: World) -> None:
    membership = world.memberships["store1"]
    issued = api_token_create(actor=world.actor("hq"), membership_id=membership.id, name="  POS sync  ")

    token = APIToken.objects.get(id=issued.token.id)
    assert token.tenant_id == world.tenant_a.id
    assert token.membership_id == membership.id
    assert token.name == "POS sync"
    assert token.prefix == issued.secret[:8]
    assert token.token_hash == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert issued.secret not in {token.name, token.prefix, token.token_hash}
    assert len(issued.secret) == 43
    audit = AuditLog.objects.get(action="api_token.create")
    assert (audit.tenant_id, audit.actor_id, audit.target_id) == (
        world.tenant_a.id,
        world.users["hq"].pk,
        str(token.id),
    )
    assert audit.detail == {
        "name": "POS sync",
        "prefix": token.prefix,
        "membership_id": membership.id,
        "role": "store_manager",
    }


@pytest.mark.parametrize("persona", ["region1", "store1", "guide1", "franchisee1"])
def test_only_hq_issues_tokens(world: World, persona: str) -> None:
    with pytest.raises(PermissionDenied):
        api_token_create(actor=world.actor(persona), membership_id=world.memberships[persona].id, name="mine")
    assert APIToken.objects.count() == 0
    assert not AuditLog.objects.filter(action="api_token.create").exists()


def test_cannot_issue_for_another_brands_member(world: World) -> None:
    with pytest.raises(NotFound) as exc:
        api_token_create(actor=world.actor("hq"), membership_id=world.memberships["outsider"].id, name="x")
    assert exc.value.field == "membership_id"
    assert APIToken.objects.count() == 0


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_token_name_is_required_and_bounded(world: World, name: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        api_token_create(actor=world.actor("hq"), membership_id=world.memberships["hq"].id, name=name)
    assert exc.value.field == "name"


def test_revoke_is_immediate_idempotent_and_audited_once(world: World) -> None:
    issued = api_token_create(actor=world.actor("hq"), membership_id=world.memberships["hq"].id, name="t")
    client = ApiClient(issued.secret)
    assert client.get("/me").status == 200

    first = api_token_revoke(actor=world.actor("hq"), token_id=issued.token.id)
    again = api_token_revoke(actor=world.actor("hq"), token_id=issued.token.id)

    assert first.revoked_at is not None
    assert again.revoked_at == first.revoked_at
    assert AuditLog.objects.filter(action="api_token.revoke", target_id=str(issued.token.id)).count() == 1
    assert client.get("/me").status == 401


def test_revoke_other_brands_token_is_not_found(world: World) -> None:
    issued = api_token_create(actor=world.actor("outsider"), membership_id=world.memberships["outsider"].id, name="t")
    with pytest.raises(NotFound):
        api_token_revoke(actor=world.actor("hq"), token_id=issued.token.id)
    assert APIToken.objects.get(id=issued.token.id).revoked_at is None


def test_inactive_user_token_no_longer_authenticates(world: World) -> None:
    issued = api_token_create(actor=world.actor("hq"), membership_id=world.memberships["store1"].id, name="t")
    user = world.users["store1"]
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert ApiClient(issued.secret).get("/me").status == 401


def test_last_used_is_recorded_at_most_once_a_minute(world: World) -> None:
    issued = api_token_create(actor=world.actor("hq"), membership_id=world.memberships["hq"].id, name="t")
    assert issued.token.last_used_at is None
    ApiClient(issued.secret).get("/me")
    first = APIToken.objects.get(id=issued.token.id).last_used_at
    assert first is not None

    api_token_mark_used(token_id=issued.token.id, at=first + dt.timedelta(seconds=30))
    assert APIToken.objects.get(id=issued.token.id).last_used_at == first
    later = first + dt.timedelta(minutes=2)
    api_token_mark_used(token_id=issued.token.id, at=later)
    assert APIToken.objects.get(id=issued.token.id).last_used_at == later


def test_token_acts_with_the_members_current_role(world: World) -> None:
    """The token carries no role of its own: changing the membership changes what the token may see."""
    issued = api_token_create(actor=world.actor("hq"), membership_id=world.memberships["store1"].id, name="t")
    client = ApiClient(issued.secret)
    assert client.get("/customers").body["count"] == 1
    membership = world.memberships["store1"]
    membership.store = world.stores["S3"]
    membership.save(update_fields=["store"])
    ids = {item["id"] for item in client.get("/customers").body["items"]}
    assert ids == {world.customers["c3"].id}


# --- the command -------------------------------------------------------------------------------------------


def test_command_create_prints_secret_once_and_it_works(world: World) -> None:
    out = _run("create", "--tenant", "chengguang", "--user", "region1", "--name", "BI export")
    lines = out.splitlines()
    token = APIToken.objects.get()
    assert lines[0] == f"Token {token.id} for region1 (region_manager), named 'BI export':"
    secret = lines[1]
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    me = ApiClient(secret).get("/me")
    assert (me.status, me.body["username"], me.body["role"]) == (200, "region1", "region_manager")
    audit = AuditLog.objects.get(action="api_token.create")
    assert audit.actor_id is None  # the shell acts as the system, not as a person


def test_command_default_name(world: World) -> None:
    _run("create", "--tenant", "chengguang", "--user", "guide1")
    assert APIToken.objects.get().name == "guide1 API token"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--tenant", "nope", "--user", "hq"], "brand 'nope' not found"),
        (["create", "--tenant", "chengguang", "--user", "outsider"], "user 'outsider' is not a member of this brand"),
        (["create", "--tenant", "chengguang", "--user", "ghost"], "user 'ghost' is not a member of this brand"),
        (["revoke", "--tenant", "chengguang", "--id", "999999"], "API token 999999 not found"),
        (["revoke", "--tenant", "chengguang", "--prefix", "zzzzzzzz"], "0 tokens have prefix 'zzzzzzzz'"),
    ],
)
def test_command_errors(world: World, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _run(*args)
    assert APIToken.objects.count() == 0


def test_command_list_shows_prefixes_never_secrets(world: World) -> None:
    a = api_token_create(actor=Actor.system(world.tenant_a.id), membership_id=world.memberships["hq"].id, name="one")
    b = api_token_create(
        actor=Actor.system(world.tenant_a.id), membership_id=world.memberships["store1"].id, name="two"
    )
    other = api_token_create(
        actor=Actor.system(world.tenant_b.id), membership_id=world.memberships["outsider"].id, name="theirs"
    )
    api_token_revoke(actor=Actor.system(world.tenant_a.id), token_id=b.token.id)

    out = _run("list", "--tenant", "chengguang")
    rows = out.splitlines()[1:]
    assert len(rows) == 2
    assert a.token.prefix in out
    assert b.token.prefix in out
    assert other.token.prefix not in out
    assert a.secret not in out
    assert b.secret not in out
    active = _run("list", "--tenant", "chengguang", "--active").splitlines()[1:]
    assert len(active) == 1
    assert active[0].split()[1] == a.token.prefix


def test_command_revoke_by_prefix(world: World) -> None:
    issued = api_token_create(actor=Actor.system(world.tenant_a.id), membership_id=world.memberships["hq"].id, name="t")
    out = _run("revoke", "--tenant", "chengguang", "--prefix", issued.token.prefix)
    assert out.strip() == f"Revoked token {issued.token.id} ({issued.token.prefix}…, 't')."
    assert APIToken.objects.get().revoked_at is not None
    assert ApiClient(issued.secret).get("/me").status == 401


def test_command_cannot_revoke_another_brands_token(world: World) -> None:
    issued = api_token_create(
        actor=Actor.system(world.tenant_b.id), membership_id=world.memberships["outsider"].id, name="t"
    )
    with pytest.raises(CommandError, match="not found"):
        _run("revoke", "--tenant", "chengguang", "--id", str(issued.token.id))
    assert APIToken.objects.get().revoked_at is None
