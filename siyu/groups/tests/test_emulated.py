"""The groups of a seeded emulator corp, read over HTTP with the real client and mirrored by the services."""

from __future__ import annotations

from collections import Counter

from siyu.analytics.models import Event
from siyu.core.scopes import Actor
from siyu.core.selectors import guide_list
from siyu.groups.models import CustomerGroup
from siyu.groups.selectors import group_list, group_member_list
from siyu.groups.services import group_upsert
from siyu.wecom import transport
from siyu.wecom.sync import SyncOptions, sync_run
from siyu.wecom.tests.emulated import Brand, db_state, expected_state


def test_every_group_of_the_corp_mirrored_from_groupchat_get(brand: Brand) -> None:
    # Guides and customers first (the members and contacts of the corp), then each group by hand.
    sync_run(
        tenant_id=brand.tenant.id,
        options=SyncOptions(client_factory=brand.client, phases=["members", "contacts"]),
    )
    hq = Actor.system(brand.tenant.id)
    guides = dict(guide_list(actor=hq).values_list("wecom_userid", "id"))
    with brand.client(brand.connection) as client:
        refs = client.groupchat_list_page(owner_userids=sorted(guides), limit=1000).chats
        chats = [client.groupchat_get(ref["chat_id"]) for ref in refs]
    for chat in chats:
        result = group_upsert(actor=hq, data=transport.group_input(chat, guides[chat["owner"]]))
        assert result.created

    with brand.server.emulator.lock:
        corp = brand.corp
        assert db_state(brand.tenant)["groups"] == expected_state(corp)["groups"]
        customers_in_groups = sum(1 for c in corp.group_chats.values() for m in c.member_list if m.type == 2)
    assert len(chats) == CustomerGroup.objects.filter(tenant=brand.tenant).count() == 10
    assert Counter(Event.objects.filter(tenant=brand.tenant, type="group.joined").values_list("type", flat=True)) == {
        "group.joined": customers_in_groups
    }
    # Every member row of an external contact found its customer: the contacts were synced first.
    for g in group_list(actor=hq):
        for m in group_member_list(actor=hq, group_id=g.id):
            assert (m.customer_id is not None) == (m.member_type == 2)
            assert (m.guide_id is not None) == (m.member_type == 1)
