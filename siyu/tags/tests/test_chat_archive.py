"""Keyword tagging end to end: customers chat in the emulator (WeCom), siyu reads the session archive over HTTP,
matches the brand's rules and tags the customers who said the words, once, resumably, brand by brand."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from django.core.cache import cache

from siyu.analytics.models import Event
from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.customers.models import Identity
from siyu.emulator.seed import SeedSpec
from siyu.emulator.simulator import KINDS
from siyu.tags import services
from siyu.tags.models import ChatArchiveCursor, CustomerTag, KeywordRule, Tag, TagSource
from siyu.tags.services import chat_archive_pull, keyword_rule_create, tag_group_create
from siyu.tags.tests.conftest import Chats
from siyu.wecom.archive import ArchiveClient, archive_client
from siyu.wecom.client import RetryPolicy
from siyu.wecom.models import WeComConnection
from siyu.wecom.selectors import connection_secrets
from siyu.wecom.sync import SyncOptions, sync_run
from siyu.wecom.tests.emulated import ANCHOR, connect_brand, emulator_serving


def keyword_tags(tenant_id: int) -> set[tuple[int, str, str]]:
    """(customer id, tag name, rule) of every tag applied on keywords in the brand."""
    rows = CustomerTag.objects.filter(tenant_id=tenant_id, source=TagSource.KEYWORD).select_related("tag")
    return {(r.customer_id, r.tag.name, r.rule) for r in rows}


def sensitive_rule(chats: Chats, tag: Tag, **kwargs: object) -> KeywordRule:
    fields: dict[str, object] = {"name": "敏感肌", "keywords": ["敏感肌"], "tag_ids": [tag.id], **kwargs}
    return keyword_rule_create(actor=chats.world.actor("hq"), **fields)  # type: ignore[arg-type]


def test_a_customer_asking_about_sensitive_skin_gets_the_tag(chats: Chats, sensitive: Tag) -> None:
    world = chats.world
    rule = sensitive_rule(chats, sensitive)
    seq = chats.say("wmc1", "想了解一下敏感肌的面霜", to="guide1")

    pull = chat_archive_pull(tenant_id=world.tenant_a.id)

    assert (pull.status, pull.seq, pull.messages, pull.matched, pull.tagged) == ("done", seq, 1, 1, 1)
    c1 = world.customers["c1"]
    row = CustomerTag.objects.get(customer=c1, tag=sensitive)
    assert (row.source, row.rule, row.guide_id) == (TagSource.KEYWORD, f"keyword_rule:{rule.id}", None)
    message = chats.admin("chat_messages")["messages"][-1]
    assert row.created_at == dt.datetime.fromtimestamp(message["msgtime"] / 1000, tz=dt.UTC)
    event = Event.objects.get(type="tag.added", customer_id=c1.id, properties__tag_id=sensitive.id)
    assert event.properties == {
        "tag_id": sensitive.id,
        "tag": "敏感肌",
        "source": "keyword",
        "rule": f"keyword_rule:{rule.id}",
    }
    cursor = ChatArchiveCursor.objects.get(tenant=world.tenant_a)
    assert (cursor.corp_id, cursor.seq, cursor.messages, cursor.matched, cursor.tagged, cursor.error) == (
        chats.connections["a"].corp_id,
        seq,
        1,
        1,
        1,
        "",
    )


def test_an_exclusion_word_vetoes_the_rule(chats: Chats, sensitive: Tag) -> None:
    world = chats.world
    sensitive_rule(chats, sensitive, exclusions=["不是敏感肌"])
    chats.say("wmc1", "我不是敏感肌，是干皮，面霜推荐哪款？", to="guide1")
    chats.say("wmc2", "敏感肌能用这个精华吗？", to="guide2")

    pull = chat_archive_pull(tenant_id=world.tenant_a.id)

    assert (pull.messages, pull.matched, pull.tagged) == (2, 1, 1)
    assert {c for c, _, _ in keyword_tags(world.tenant_a.id)} == {world.customers["c2"].id}


def test_folding_and_modes_over_the_archive(chats: Chats, sensitive: Tag) -> None:
    """Full-width and upper-case Latin letters match; `all` needs every keyword; `whole` the whole message."""
    world = chats.world
    hq = world.actor("hq")
    group = tag_group_create(actor=hq, name="意向", tags=["防晒", "VC", "确认"])
    tags = {t.name: t for t in group.tags.all()}
    keyword_rule_create(actor=hq, name="防晒", keywords=["spf", "防晒"], mode="all", tag_ids=[tags["防晒"].id])
    keyword_rule_create(actor=hq, name="VC", keywords=["vc"], mode="exact", tag_ids=[tags["VC"].id])
    keyword_rule_create(actor=hq, name="确认", keywords=["好的"], mode="whole", tag_ids=[tags["确认"].id])
    chats.say("wmc1", "这款防晒ＳＰＦ５０吗？", to="guide1")  # full-width letters and digits
    chats.say("wmc2", "有SPF吗", to="guide2")  # only one of the two: no 防晒
    chats.say("wmc2", "ＶＣ，有货吗", to="guide2")  # VC as a word of its own
    chats.say("wmc3", "VC精华多少钱", to="guide3")  # inside a run of letters and Chinese: not exact
    chats.say("wmc3", "好的！", to="guide3")
    chats.say("wmc1", "好的，那我考虑一下", to="guide1")  # more than the keyword: not whole

    chat_archive_pull(tenant_id=world.tenant_a.id)

    c = world.customers
    assert {(cid, name) for cid, name, _ in keyword_tags(world.tenant_a.id)} == {
        (c["c1"].id, "防晒"),
        (c["c2"].id, "VC"),
        (c["c3"].id, "确认"),
    }


def test_who_and_which_chats_a_rule_reads(chats: Chats, sensitive: Tag) -> None:
    world = chats.world
    hq = world.actor("hq")
    extra = tag_group_create(actor=hq, name="渠道", tags=["群聊敏感肌", "导购提及"])
    tags = {t.name: t for t in extra.tags.all()}
    sensitive_rule(chats, sensitive, scope="direct")
    keyword_rule_create(actor=hq, name="群里", keywords=["敏感肌"], scope="group", tag_ids=[tags["群聊敏感肌"].id])
    keyword_rule_create(
        actor=hq, name="导购说", keywords=["敏感肌"], scope="direct", customer_only=False, tag_ids=[tags["导购提及"].id]
    )
    chat_id = chats.group("guide1", ["wmc1", "wmc3"])
    chats.say("wmc3", "群里有敏感肌的姐妹吗", chat_id=chat_id)  # a customer in a group
    chats.say("guide1", "敏感肌建议先用小样", chat_id=chat_id)  # a guide in a group: tags nobody
    chats.say("guide2", "您是敏感肌的话可以试试这款", to="wmc2")  # a guide to a customer, one-to-one

    pull = chat_archive_pull(tenant_id=world.tenant_a.id)

    c = world.customers
    assert {(cid, name) for cid, name, _ in keyword_tags(world.tenant_a.id)} == {
        (c["c3"].id, "群聊敏感肌"),
        (c["c2"].id, "导购提及"),
    }
    assert (pull.messages, pull.matched, pull.tagged) == (3, 2, 2)


def test_pulling_again_changes_nothing(chats: Chats, sensitive: Tag) -> None:
    world = chats.world
    sensitive_rule(chats, sensitive)
    chats.say("wmc1", "敏感肌用哪款？", to="guide1")
    chats.say("wmc1", "还是敏感肌的问题", to="guide1")  # a second match: the tag is recorded once
    first = chat_archive_pull(tenant_id=world.tenant_a.id)
    assert (first.messages, first.matched, first.tagged) == (2, 2, 1)
    state = (keyword_tags(world.tenant_a.id), Event.objects.count(), AuditLog.objects.count())

    again = chat_archive_pull(tenant_id=world.tenant_a.id)
    assert (again.status, again.pages, again.messages, again.tagged, again.seq) == ("done", 1, 0, 0, first.seq)

    # Even when the whole archive is read once more (a lost cursor), no tag or event is added twice.
    ChatArchiveCursor.objects.filter(tenant=world.tenant_a).update(seq=0)
    reread = chat_archive_pull(tenant_id=world.tenant_a.id)
    assert (reread.messages, reread.matched, reread.tagged) == (2, 2, 0)
    assert (keyword_tags(world.tenant_a.id), Event.objects.count(), AuditLog.objects.count()) == state


def test_a_tag_the_customer_already_has_is_left_as_it_was(chats: Chats, sensitive: Tag) -> None:
    world = chats.world
    hq = world.actor("hq")
    keyword_rule_create(actor=hq, name="护肤", keywords=["面霜"], tag_ids=[world.tags["护肤"].id])  # c1 has it
    chats.say("wmc1", "面霜还有货吗", to="guide1")
    pull = chat_archive_pull(tenant_id=world.tenant_a.id)
    assert (pull.matched, pull.tagged) == (1, 0)
    row = CustomerTag.objects.get(customer=world.customers["c1"], tag=world.tags["护肤"])
    assert (row.source, row.rule) == (TagSource.MANUAL, "")


def test_a_pull_that_dies_resumes_from_its_last_committed_page(
    chats: Chats, sensitive: Tag, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = chats.world
    sensitive_rule(chats, sensitive)
    seqs = [
        chats.say("wmc1", "你好", to="guide1"),
        chats.say("wmc2", "在吗", to="guide2"),
        chats.say("wmc2", "敏感肌能用吗", to="guide2"),
        chats.say("wmc3", "我也是敏感肌", to="guide3"),
        chats.say("wmc1", "敏感肌呢？", to="guide1"),
    ]
    first = chat_archive_pull(tenant_id=world.tenant_a.id, page_size=2, max_pages=1)
    assert (first.seq, first.messages, first.tagged) == (seqs[1], 2, 0)

    calls = []
    real_add = services.customer_tag_add

    def dies_on_the_second_tag(**kwargs: object) -> CustomerTag:
        calls.append(kwargs["customer_id"])
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real_add(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services, "customer_tag_add", dies_on_the_second_tag)
    with pytest.raises(RuntimeError):
        chat_archive_pull(tenant_id=world.tenant_a.id, page_size=2)
    # The page with two matches rolled back whole: neither its first tag nor the cursor moved.
    assert ChatArchiveCursor.objects.get(tenant=world.tenant_a).seq == seqs[1]
    assert keyword_tags(world.tenant_a.id) == set()

    monkeypatch.setattr(services, "customer_tag_add", real_add)
    rest = chat_archive_pull(tenant_id=world.tenant_a.id, page_size=2)
    assert (rest.seq, rest.pages, rest.messages, rest.tagged) == (seqs[-1], 2, 3, 3)
    c = world.customers
    assert {cid for cid, _, _ in keyword_tags(world.tenant_a.id)} == {c["c1"].id, c["c2"].id, c["c3"].id}
    cursor = ChatArchiveCursor.objects.get(tenant=world.tenant_a)
    assert (cursor.messages, cursor.matched, cursor.tagged) == (5, 3, 3)


def test_a_page_another_pull_committed_meanwhile_is_not_tagged_twice(
    chats: Chats, sensitive: Tag, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pulls read the same page; the one that commits second sees the cursor moved and goes on from there."""
    world = chats.world
    sensitive_rule(chats, sensitive)
    chats.say("wmc1", "敏感肌用哪款？", to="guide1")
    last = chats.say("wmc2", "敏感肌", to="guide2")
    real_page = ArchiveClient.chat_messages
    raced = []

    def page_then_race(self: ArchiveClient, *, after: int = 0, limit: int = 1000) -> object:
        page = real_page(self, after=after, limit=limit)
        if not raced:  # the other pull commits this very page between our read and our commit
            raced.append(ChatArchiveCursor.objects.filter(tenant=world.tenant_a).update(seq=last))
        return page

    monkeypatch.setattr(ArchiveClient, "chat_messages", page_then_race)
    pull = chat_archive_pull(tenant_id=world.tenant_a.id)
    assert (pull.seq, pull.messages, pull.tagged) == (last, 0, 0)
    assert keyword_tags(world.tenant_a.id) == set()


def test_brands_read_their_own_archive_with_their_own_rules(chats: Chats, sensitive: Tag) -> None:
    world = chats.world
    b_group = tag_group_create(actor=world.actor("outsider"), name="肤质", tags=["敏感肌"])
    b_tag = b_group.tags.get()
    b_rule = keyword_rule_create(actor=world.actor("outsider"), name="敏感肌", keywords=["敏感肌"], tag_ids=[b_tag.id])
    chats.say("wmc1", "我是敏感肌", to="guide1")  # brand A's customer, no rule in brand A
    chats.say("wmb1", "今天天气不错", to="guide1", brand="b")

    a = chat_archive_pull(tenant_id=world.tenant_a.id)
    b = chat_archive_pull(tenant_id=world.tenant_b.id)

    assert (a.messages, a.matched, a.tagged) == (1, 0, 0)
    assert (b.messages, b.matched, b.tagged) == (1, 0, 0)
    assert CustomerTag.objects.filter(source=TagSource.KEYWORD).count() == 0
    chats.say("wmb1", "敏感肌可以用吗", to="guide1", brand="b")
    assert chat_archive_pull(tenant_id=world.tenant_b.id).tagged == 1
    assert keyword_tags(world.tenant_b.id) == {(world.customers["b1"].id, "敏感肌", f"keyword_rule:{b_rule.id}")}
    assert keyword_tags(world.tenant_a.id) == set()
    cursors = {c.tenant_id: (c.corp_id, c.seq) for c in ChatArchiveCursor.objects.all()}
    assert cursors == {
        world.tenant_a.id: (chats.connections["a"].corp_id, 1),
        world.tenant_b.id: (chats.connections["b"].corp_id, 2),
    }


def test_a_disabled_rule_tags_nobody(chats: Chats, sensitive: Tag) -> None:
    world = chats.world
    sensitive_rule(chats, sensitive, enabled=False)
    chats.say("wmc1", "敏感肌", to="guide1")
    assert chat_archive_pull(tenant_id=world.tenant_a.id).tagged == 0


def test_an_unreachable_archive_is_recorded_and_read_later(
    chats: Chats, sensitive: Tag, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = chats.world
    sensitive_rule(chats, sensitive)
    chats.say("wmc1", "敏感肌", to="guide1")

    def broken(connection: WeComConnection) -> ArchiveClient:
        return ArchiveClient(
            "http://archive.invalid/",
            connection.corp_id,
            connection_secrets(connection).contact_secret,
            retry=RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.001),
            transport=httpx.MockTransport(lambda request: httpx.Response(502)),
        )

    monkeypatch.setattr(services, "archive_client", broken)
    failed = chat_archive_pull(tenant_id=world.tenant_a.id)
    assert (failed.status, failed.messages) == ("failed", 0)
    cursor = ChatArchiveCursor.objects.get(tenant=world.tenant_a)
    assert (cursor.seq, cursor.error) == (0, "WeCom chat_messages failed: errcode -2: HTTP 502")

    monkeypatch.setattr(services, "archive_client", archive_client)
    assert chat_archive_pull(tenant_id=world.tenant_a.id).tagged == 1
    assert ChatArchiveCursor.objects.get(tenant=world.tenant_a).error == ""


def test_brands_without_a_readable_archive_are_skipped(chats: Chats) -> None:
    world = chats.world
    WeComConnection.objects.filter(tenant=world.tenant_a).update(api_base_url="https://qyapi.weixin.qq.com/cgi-bin/")
    assert chat_archive_pull(tenant_id=world.tenant_a.id).status == "no_archive"
    WeComConnection.objects.filter(tenant=world.tenant_a).delete()
    assert chat_archive_pull(tenant_id=world.tenant_a.id).status == "not_connected"
    assert not ChatArchiveCursor.objects.exists()


SIM_SPEC = SeedSpec(
    seed=7,
    corp_id="wwchatsim00000001",
    anchor=ANCHOR,
    regions=1,
    stores_per_region=2,
    guides_per_store=2,
    customers=60,
    group_chats=4,
)
ONLY_MESSAGES = dict.fromkeys(KINDS, 0) | {"message": 1, "group_message": 0.3}


def test_the_behaviour_simulators_chats_tag_exactly_the_customers_who_said_the_words(db: None) -> None:
    """A synced corp, 400 simulated messages (one-to-one and in groups, customers and guides), three rules: siyu
    tags exactly the customers whose own messages the rules match, by a plain substring reading of the archive."""
    with emulator_serving(SIM_SPEC) as server:
        cache.clear()
        brand = connect_brand(server, slug="chatsim")
        sync_run(tenant_id=brand.tenant.id, options=SyncOptions(client_factory=brand.client, sleep=lambda _: None))
        actor = Actor.system(brand.tenant.id)
        group = tag_group_create(actor=actor, name="聊天意向", tags=["肤质", "售后", "会员价"])
        tags = {t.name: t.id for t in group.tags.all()}
        rules = {
            "肤质": ({"keywords": ["敏感肌", "干皮", "油皮"], "exclusions": ["混油皮"]}, "any"),
            "售后": ({"keywords": ["退货", "退款", "换货"], "exclusions": []}, "any"),
            "会员价": ({"keywords": ["会员", "价"], "exclusions": []}, "all"),
        }
        for name, (words, mode) in rules.items():
            keyword_rule_create(actor=actor, name=name, mode=mode, tag_ids=[tags[name]], **words)
        brand.admin("simulate/run", {"steps": 400, "seed": 11, "mix": ONLY_MESSAGES})

        pull = chat_archive_pull(tenant_id=brand.tenant.id)

        with server.emulator.lock:
            said = [(m.sender, m.content) for m in brand.corp.chat_messages]
    customers = dict(
        Identity.objects.filter(tenant=brand.tenant, kind=Identity.Kind.WECOM_EXTERNAL_USERID).values_list(
            "value", "customer_id"
        )
    )
    expected = set()
    for sender, content in said:
        for name, (words, mode) in rules.items():
            hits = [w in content for w in words["keywords"]]
            vetoed = any(x in content for x in words["exclusions"])
            if sender in customers and (all(hits) if mode == "all" else any(hits)) and not vetoed:
                expected.add((customers[sender], name))
    actual = {(cid, name) for cid, name, _ in keyword_tags(brand.tenant.id)}
    assert actual == expected
    assert {name for _, name in expected} == set(rules)  # every rule had something to find
    assert (pull.status, pull.messages, pull.tagged) == ("done", len(said), len(expected))
